"""The bench's throwaway stack, described for `refundctl.stack` (the code `refundctl dev` and the
tests start theirs with): the dev server of temporal-dev.yml on a temporary database file, a
fresh SQLite database (or `--database-url`), the sandbox peers, the refund worker, the API and
an EmptyWorkflow worker, all on 127.0.0.1 and free ports, logs in the run's temp dir."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench.empty import DEFAULT_TASK_QUEUE as EMPTY_TASK_QUEUE

if TYPE_CHECKING:
    from config.settings import Settings
    from refundctl.procs import LogFile
    from refundctl.stack import Mode, StackSpec

__all__ = ["EMPTY_TASK_QUEUE", "BenchError", "BenchStack", "redact", "running_stack"]

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", ""}


class BenchError(RuntimeError):
    """The bench could not set up its stack or could not measure what it was asked to."""


@dataclass
class BenchStack:
    mode: str
    temporal_address: str
    api_url: str
    api_key: str
    database_url: str
    settings: Settings
    pids: dict[str, int | None]
    logs: dict[str, LogFile]
    temporal_version: str

    @property
    def reviewer_key(self) -> str:
        """The reviewers' key (the review queue's reads): the platform key with a suffix."""
        return reviewer_key(self.api_key)

    @property
    def admin_key(self) -> str:
        """The admins' key (declaring and confirming `--incident`): the platform key with a
        suffix."""
        return admin_key(self.api_key)


def reviewer_key(api_key: str) -> str:
    return api_key + "_reviewer"


def admin_key(api_key: str) -> str:
    return api_key + "_admin"


def check_local_database(url: str) -> None:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return
    host = parsed.host or ""
    if host not in LOOPBACK_HOSTS:
        raise BenchError(
            f"--database-url points at {host!r}: the bench only targets this host (127.0.0.1)"
        )


def redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def bench_spec(
    mode: Mode, tmp: Path, database_url: str, api_key: str, *, worker_processes: int = 1
) -> StackSpec:
    """Every service in `mode` (subprocesses, as in production, or all in this process)."""
    from config.settings import Settings
    from refundctl.stack import (
        ApiSpec,
        DevServerSpec,
        LogSpec,
        SandboxSpec,
        StackSpec,
        WorkerSpec,
    )
    from sandbox.run import SandboxConfig

    def empty_command(settings: Settings) -> list[str]:
        address = settings.temporal_address
        queue = EMPTY_TASK_QUEUE
        return [sys.executable, "-m", "bench.empty", "--address", address, "--task-queue", queue]

    async def serve_empty(settings: Settings, stop: asyncio.Event) -> None:
        from bench.empty import serve_empty

        await serve_empty(settings.temporal_address, task_queue=EMPTY_TASK_QUEUE, stop=stop)

    settings = Settings(
        environment="dev",
        database_url=database_url,
        api_keys=(
            f"{api_key}:platform,{reviewer_key(api_key)}:reviewer,{admin_key(api_key)}:admin"
        ),
        policy_path="",
        supplier_urls="",
        http_timeout_seconds=5.0,
    )
    return StackSpec(
        settings=settings,
        temporal=DevServerSpec(headless=True, db_file=tmp / "temporal.db"),
        sandboxes=SandboxSpec(
            SandboxConfig.on_free_ports(
                tmp / "keys",
            ),
            mode=mode,
        ),
        workers=[
            WorkerSpec(mode=mode, args=("--processes", str(worker_processes))),
            WorkerSpec(
                name="empty-worker",
                mode=mode,
                task_queue=EMPTY_TASK_QUEUE,
                command=empty_command,
                serve=serve_empty,
            ),
        ],
        apis=[ApiSpec(mode=mode)],
        migrate=True,
        logs=LogSpec(dir=tmp),
    )


@contextlib.asynccontextmanager
async def running_stack(
    args: argparse.Namespace, tmp: Path, api_key: str
) -> AsyncIterator[BenchStack]:
    """Temporal, database, sandboxes, refund worker, API and EmptyWorkflow worker."""
    from refundctl.devserver import temporal_version
    from refundctl.stack import start_stack

    if args.database_url:
        check_local_database(args.database_url)
        database_url = args.database_url
    else:
        database_url = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    version = await asyncio.to_thread(temporal_version)
    spec = bench_spec(args.mode, tmp, database_url, api_key, worker_processes=args.worker_processes)
    async with start_stack(spec) as stack:
        try:
            yield BenchStack(
                mode=args.mode,
                temporal_address=stack.temporal_address,
                api_url=stack.api_url,
                api_key=api_key,
                database_url=database_url,
                settings=stack.settings,
                pids=stack.pids(),
                logs=stack.logs,
                temporal_version=version,
            )
        finally:
            dead = [s for s in stack.services.values() if s.exit_code is not None]
            if dead:
                print(
                    "WARNING: "
                    + ", ".join(f"{s.name} exited with {s.exit_code}" for s in dead)
                    + " during the run",
                    file=sys.stderr,
                )
