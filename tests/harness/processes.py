"""Service processes (`refundctl worker`, ...) run as real subprocesses, for crash tests."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from refundctl.devserver import wait_for_poller
from refundctl.procs import ChildProcess, log_sink, refundctl_argv

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def refundctl_process(
    command: str,
    *args: str,
    env: Mapping[str, str] | None = None,
    name: str | None = None,
    grace_seconds: float = 10.0,
) -> ChildProcess:
    """A not-yet-started `refundctl <command> ...` child (start it, or use `async with`).

    It runs in the project root with this interpreter; `env` is added to the current
    environment. Output goes to the `refundctl.child.<name>` logger, so pytest shows it for
    failing tests, and `ChildProcess.tail()` keeps the last lines for assertions.
    """
    label = name or command
    return ChildProcess(
        label,
        refundctl_argv(command, *args),
        env=env,
        cwd=PROJECT_ROOT,
        output=log_sink(label),
        grace_seconds=grace_seconds,
    )


def worker_process(
    *,
    temporal_address: str,
    database_url: str,
    env: Mapping[str, str] | None = None,
    name: str = "worker",
) -> ChildProcess:
    """`refundctl worker` against the given Temporal and database.

    `await w.kill()` SIGKILLs it (no graceful shutdown, like a crash); `await w.start()` brings
    up a fresh process with the same arguments; `await w.stop()` ends it politely.
    """
    return refundctl_process(
        "worker",
        env={"TEMPORAL_ADDRESS": temporal_address, "DATABASE_URL": database_url, **(env or {})},
        name=name,
    )


async def wait_for_worker(
    temporal_address: str,
    process: ChildProcess,
    *,
    task_queue: str = "refunds",
    namespace: str = "default",
    timeout_seconds: float = 60.0,
) -> None:
    """Wait until the worker `process` polls `task_queue`; after `kill()` + `start()` this
    waits for the new process, not the dead one still listed by Temporal."""
    await wait_for_poller(
        temporal_address,
        process,
        task_queue=task_queue,
        namespace=namespace,
        timeout_seconds=timeout_seconds,
    )
