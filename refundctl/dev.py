"""`refundctl dev`: one command runs the whole system locally.

Order matters and is the order of dependencies: keys and schema first, then Temporal, then the
sandbox peers the worker talks to, then the worker, then the API that starts workflows, then
the demo data through the API. Ctrl-C stops them in the reverse order.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path

from refundctl.cli import COMMANDS
from refundctl.devserver import (
    DEFAULT_DB_FILE,
    DEFAULT_PORT,
    DEFAULT_UI_PORT,
    PROJECT_ROOT,
    DevServerError,
    launch_dev_server,
    wait_for_poller,
)
from refundctl.procs import (
    ChildProcess,
    ProcessExited,
    Supervisor,
    port_is_open,
    prefixed_writer,
    refundctl_argv,
    run_until_signalled,
    wait_for_http,
    wait_for_port,
)

VAR_DIR = PROJECT_ROOT / "var"
DEMO_KEYS_FILE = VAR_DIR / "demo-keys.json"
DEMO_CONSOLE = VAR_DIR / "demo-console.json"  # written by the seed (sandbox/console_demo.py)
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///var/kami.db"  # relative to the project root
API_HOST = "127.0.0.1"
DEFAULT_API_PORT = 8000

# The sandbox peers and where `refundctl sandbox` serves them (config/settings.py defaults).
SANDBOX_PEERS = {
    "supplier": 8101,
    "alipay": 8102,
    "wechatpay": 8103,
    "platform": 8104,
}
PLATFORM_WEBHOOK_PATH = "/webhooks/refunds"

ROLES = ("platform", "reviewer", "admin")
_KEY_PREFIX = {"platform": "pk_dev", "reviewer": "rk_dev", "admin": "ak_dev"}


class DevError(RuntimeError):
    """A piece of the local system is missing or did not start."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-seed", action="store_true", help="do not record the demo shop")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="Temporal gRPC port (default 7233)"
    )
    parser.add_argument(
        "--ui-port", type=int, default=DEFAULT_UI_PORT, help="Temporal UI port (default 8233)"
    )
    parser.add_argument(
        "--api-port", type=int, default=DEFAULT_API_PORT, help="HTTP API port (default 8000)"
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help=f"database of the API and worker (default $DATABASE_URL, else {DEFAULT_DATABASE_URL})",
    )


# --- preparation -----------------------------------------------------------------------------


def _check_commands(names: list[str]) -> None:
    """Fail before starting anything if a command's module is not there yet.

    `refundctl` imports every command module to build its parser, so one missing module breaks
    every subcommand; naming it here beats a traceback from a child process.
    """
    missing = [
        f"`refundctl {name}` needs module {COMMANDS[name][0]}"
        for name in names
        if importlib.util.find_spec(COMMANDS[name][0]) is None
    ]
    missing += [
        f"`refundctl` cannot start without module {module}"
        for name, (module, _) in COMMANDS.items()
        if name not in names and importlib.util.find_spec(module) is None
    ]
    if missing:
        raise DevError("missing pieces:\n  " + "\n  ".join(missing))


def _ensure_signing_keys() -> None:
    try:
        signing = importlib.import_module("peers.signing")
    except ImportError as exc:
        raise DevError(f"cannot create the sandbox signing keys: {exc}") from exc
    signing.ensure_sandbox_keys(VAR_DIR / "keys")


def load_demo_keys(path: Path = DEMO_KEYS_FILE) -> dict[str, str]:
    """role -> API key, generated once and kept in var/demo-keys.json so that scripts, browser
    tabs and the printed banner stay valid across restarts."""
    keys: dict[str, str] = {}
    if path.exists():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DevError(f"{path} is unreadable ({exc}); delete it to get new keys") from exc
        if isinstance(stored, dict):
            keys = {r: k for r, k in stored.items() if r in ROLES and isinstance(k, str) and k}
    if set(keys) != set(ROLES):
        for role in ROLES:
            keys.setdefault(role, f"{_KEY_PREFIX[role]}_{secrets.token_hex(16)}")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(keys, indent=2) + "\n", encoding="utf-8")
        tmp.chmod(0o600)  # they grant admin on the local API
        tmp.replace(path)
    return keys


def _keys_from_env(api_keys: str) -> dict[str, str]:
    """role -> first key of that role in an API_KEYS value ("key:role,key:role")."""
    keys: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in api_keys.split(","))):
        key, _, role = pair.rpartition(":")
        keys.setdefault(role, key)
    return keys


# --- running ---------------------------------------------------------------------------------


async def _run_to_completion(name: str, argv: list[str], env: Mapping[str, str]) -> None:
    child = ChildProcess(name, argv, env=env, cwd=PROJECT_ROOT, output=prefixed_writer(name))
    async with child:
        code = await child.wait()
    if code != 0:
        raise ProcessExited(child)


def _banner(
    *,
    api_url: str,
    temporal_address: str,
    ui_url: str | None,
    keys: Mapping[str, str],
    database_url: str,
    seeded: bool,
) -> str:
    lines = [
        "",
        "=" * 72,
        "  kami-refunds is running",
        "",
        f"  API docs      {api_url}/docs",
        f"  Temporal UI   {ui_url or '(headless)'}",
        f"  Temporal      {temporal_address}",
        f"  Database      {database_url}",
        "",
        "  Sandbox peers (control surface under /sandbox):",
    ]
    lines += [f"    {name:<10}  http://127.0.0.1:{port}" for name, port in SANDBOX_PEERS.items()]
    lines += ["", "  API keys (Authorization: Bearer <key>):"]
    lines += [f"    {role:<10}  {key}" for role, key in keys.items()]
    if seeded:
        lines += ["", "  Demo shop recorded (refundctl seed)."]
    lines += ["", f"  Reviewer console  {api_url}/console  (or sign in with the reviewer key)"]
    demo = json.loads(DEMO_CONSOLE.read_text("utf-8")) if seeded and DEMO_CONSOLE.exists() else {}
    lines += [
        f"    account {user:<6} password {pw}" for user, pw in demo.get("accounts", {}).items()
    ]
    if demo.get("buyer_page"):
        lines += [f"  Demo buyer page   {demo['buyer_page']}"]
    lines += ["", "  Ctrl-C stops everything.", "=" * 72, ""]
    return "\n".join(lines)


async def _main(args: argparse.Namespace) -> int:
    required = ["migrate", "sandbox", "worker", "api"] + ([] if args.no_seed else ["seed"])
    _check_commands(required)

    busy = [p for p in (args.api_port, *SANDBOX_PEERS.values()) if port_is_open(API_HOST, p)]
    if busy:
        raise DevError(f"ports already in use: {busy} (is another `refundctl dev` running?)")

    VAR_DIR.mkdir(parents=True, exist_ok=True)
    _ensure_signing_keys()

    api_url = f"http://{API_HOST}:{args.api_port}"
    database_url = args.database_url or os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    if os.environ.get("API_KEYS"):
        # Someone chose their own keys; use them rather than overriding with demo keys.
        keys = _keys_from_env(os.environ["API_KEYS"])
        api_keys = os.environ["API_KEYS"]
    else:
        keys = load_demo_keys()
        api_keys = ",".join(f"{key}:{role}" for role, key in keys.items())
    temporal_address = f"127.0.0.1:{args.port}"
    env = {
        "ENVIRONMENT": "dev",
        "DATABASE_URL": database_url,
        "TEMPORAL_ADDRESS": temporal_address,
        "API_KEYS": api_keys,
        "PUBLIC_BASE_URL": api_url,
        "PLATFORM_WEBHOOK_URL": os.environ.get(
            "PLATFORM_WEBHOOK_URL",
            f"http://127.0.0.1:{SANDBOX_PEERS['platform']}{PLATFORM_WEBHOOK_PATH}",
        ),
        # Children print through our pipes; unbuffered output keeps the interleaving honest.
        "PYTHONUNBUFFERED": "1",
    }

    await _run_to_completion("migrate", refundctl_argv("migrate"), env)

    async with Supervisor() as supervisor:
        temporal = await launch_dev_server(
            port=args.port,
            ui_port=args.ui_port,
            db_file=DEFAULT_DB_FILE,
            output=prefixed_writer("temporal"),
        )
        supervisor.adopt(temporal.process)

        sandbox = await supervisor.start(
            "sandbox",
            refundctl_argv("sandbox"),
            env=env,
            cwd=PROJECT_ROOT,
            output=prefixed_writer("sandbox"),
        )
        for port in SANDBOX_PEERS.values():
            await wait_for_port("127.0.0.1", port, timeout_seconds=60, process=sandbox)

        worker = await supervisor.start(
            "worker",
            refundctl_argv("worker"),
            env=env,
            cwd=PROJECT_ROOT,
            output=prefixed_writer("worker"),
        )
        await wait_for_poller(temporal.address, worker, timeout_seconds=60)

        api = await supervisor.start(
            "api",
            refundctl_argv("api", "--host", API_HOST, "--port", str(args.api_port)),
            env=env,
            cwd=PROJECT_ROOT,
            output=prefixed_writer("api"),
        )
        await wait_for_http(f"{api_url}/docs", timeout_seconds=60, process=api)

        seeded = False
        if not args.no_seed:
            platform_key = keys.get("platform") or keys.get("admin", "")
            try:
                await _run_to_completion(
                    "seed",
                    refundctl_argv("seed"),
                    {**env, "API_BASE": api_url, "PLATFORM_API_KEY": platform_key},
                )
                seeded = True
            except ProcessExited as exc:
                # The services are up and usable without demo data; say so and keep running.
                print(f"\nWARNING: seeding the demo shop failed:\n{exc}\n", file=sys.stderr)

        print(
            _banner(
                api_url=api_url,
                temporal_address=temporal.address,
                ui_url=temporal.ui_url,
                keys=keys,
                database_url=database_url,
                seeded=seeded,
            ),
            flush=True,
        )

        died = await supervisor.wait_for_exit()
        print(
            f"\n{died.name} exited unexpectedly with code {died.returncode}; stopping the rest",
            file=sys.stderr,
        )
        return 1


def run(args: argparse.Namespace) -> int:
    def on_signal(count: int) -> None:
        if count == 1:
            print("\nstopping (Ctrl-C again to kill)...", file=sys.stderr, flush=True)

    try:
        code = run_until_signalled(lambda: _main(args), on_signal=on_signal)
    except (DevError, DevServerError, ProcessExited, TimeoutError) as exc:
        print(f"refundctl dev: {exc}", file=sys.stderr)
        return 1
    # Ctrl-C is the normal way to end a dev session.
    return 0 if code == 130 else code
