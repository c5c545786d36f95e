"""`refundctl dev`: one command runs the whole system locally.

The processes are a `refundctl.stack` (the same code the bench, the chaos run and the tests
start theirs with): keys and schema first, then Temporal, the sandbox peers the worker talks
to, the worker, the API that starts workflows; then the demo data through the API. A child that
crashes is restarted with back-off (one line says which, its exit code and the delay); Ctrl-C
stops them all in the reverse order. Each child's output is on the terminal as `name | line`
and in `var/log/<name>.log`.
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
)
from refundctl.procs import (
    ChildProcess,
    ProcessExited,
    port_is_open,
    prefixed_writer,
    refundctl_argv,
)
from refundctl.stack import (
    ApiSpec,
    DevServerSpec,
    LogSpec,
    RestartPolicy,
    SandboxSpec,
    StackSpec,
    WorkerSpec,
    run_until_signalled,
    start_stack,
)

VAR_DIR = PROJECT_ROOT / "var"
LOG_DIR = VAR_DIR / "log"
DEMO_KEYS_FILE = VAR_DIR / "demo-keys.json"
DEMO_CONSOLE = VAR_DIR / "demo-console.json"  # written by the seed (sandbox/console_demo.py)
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///var/kami.db"  # relative to the project root
API_HOST = "127.0.0.1"
DEFAULT_API_PORT = 8000
WORKER_METRICS_PORT = 9091

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


def _absolute_sqlite(url: str) -> str:
    """A relative SQLite path means "in the project": the launcher migrates it, the children
    (run in the project root) use it, wherever `refundctl dev` was started from."""
    prefix, sep, path = url.partition(":///")
    if not sep or not prefix.startswith("sqlite") or path.startswith("/") or path == ":memory:":
        return url
    return f"{prefix}:///{PROJECT_ROOT / path}"


def _banner(
    *,
    api_url: str,
    temporal_address: str,
    ui_url: str | None,
    keys: Mapping[str, str],
    database_url: str,
    seeded: bool,
    worker_metrics: str = "",
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
        f"  Logs          {LOG_DIR}/<process>.log",
        "",
        f"  Metrics       {api_url}/metrics (API)",
        f"                {worker_metrics or '(worker metrics off: port in use)'} (worker)",
        f"  Codec         {api_url}/codec (the Temporal UI decrypts payloads with it)",
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


def worker_metrics_address() -> str:
    """The worker's /metrics (with the Temporal SDK's runtime metrics), if its port is free."""
    if port_is_open(API_HOST, WORKER_METRICS_PORT):
        return ""
    return f"{API_HOST}:{WORKER_METRICS_PORT}"


def dev_stack(args: argparse.Namespace, api_keys: str, database_url: str) -> StackSpec:
    """What `refundctl dev` runs: every process on its fixed local port, data in var/."""
    from config.settings import Settings
    from sandbox.run import SandboxConfig

    settings = Settings(
        environment="dev",
        database_url=database_url,
        api_keys=api_keys,
        worker_metrics_address=worker_metrics_address(),
        codec_cors_origins=f"http://127.0.0.1:{args.ui_port},http://localhost:{args.ui_port}",
    )
    ports = SANDBOX_PEERS
    return StackSpec(
        settings=settings,
        temporal=DevServerSpec(
            port=args.port,
            ui_port=args.ui_port,
            headless=False,
            db_file=DEFAULT_DB_FILE,
            ui_codec_endpoint=f"http://{API_HOST}:{args.api_port}/codec",
        ),
        sandboxes=SandboxSpec(
            SandboxConfig(
                supplier_port=ports["supplier"],
                alipay_port=ports["alipay"],
                wechat_port=ports["wechatpay"],
                platform_port=ports["platform"],
                keys_dir=VAR_DIR / "keys",
            ),
            # Someone who points the webhooks at a receiver of their own keeps it.
            platform_webhook="PLATFORM_WEBHOOK_URL" not in os.environ,
        ),
        workers=[WorkerSpec()],
        apis=[ApiSpec(host=API_HOST, port=args.api_port)],
        migrate=True,
        logs=LogSpec(dir=LOG_DIR, echo=True),
        restart=RestartPolicy(),
    )


def _notice(line: str) -> None:
    print(f"refundctl dev: {line}", file=sys.stderr, flush=True)


async def _main(args: argparse.Namespace) -> int:
    required = ["migrate", "sandbox", "worker", "api"] + ([] if args.no_seed else ["seed"])
    _check_commands(required)

    busy = [p for p in (args.api_port, *SANDBOX_PEERS.values()) if port_is_open(API_HOST, p)]
    if busy:
        raise DevError(f"ports already in use: {busy} (is another `refundctl dev` running?)")

    VAR_DIR.mkdir(parents=True, exist_ok=True)
    database_url = _absolute_sqlite(
        args.database_url or os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    )
    if os.environ.get("API_KEYS"):
        # Someone chose their own keys; use them rather than overriding with demo keys.
        keys = _keys_from_env(os.environ["API_KEYS"])
        api_keys = os.environ["API_KEYS"]
    else:
        keys = load_demo_keys()
        api_keys = ",".join(f"{key}:{role}" for role, key in keys.items())

    async with start_stack(dev_stack(args, api_keys, database_url)) as stack:
        seeded = False
        if not args.no_seed:
            from refundctl.stack import settings_env

            platform_key = keys.get("platform") or keys.get("admin", "")
            try:
                await _run_to_completion(
                    "seed",
                    refundctl_argv("seed"),
                    {
                        **settings_env(stack.settings),
                        "API_BASE": stack.api_url,
                        "PLATFORM_API_KEY": platform_key,
                    },
                )
                seeded = True
            except ProcessExited as exc:
                # The services are up and usable without demo data; say so and keep running.
                print(f"\nWARNING: seeding the demo shop failed:\n{exc}\n", file=sys.stderr)

        print(
            _banner(
                api_url=stack.api_url,
                temporal_address=stack.temporal_address,
                ui_url=stack.temporal_ui_url,
                keys=keys,
                database_url=database_url,
                seeded=seeded,
                worker_metrics=(
                    f"http://{stack.settings.worker_metrics_address}/metrics"
                    if stack.settings.worker_metrics_address
                    else ""
                ),
            ),
            flush=True,
        )
        # Crashed children come back with back-off; this returns only if one may not.
        died = await stack.supervise(notice=_notice)
        print(
            f"\n{died.name} exited unexpectedly with code {died.exit_code}; stopping the rest",
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
