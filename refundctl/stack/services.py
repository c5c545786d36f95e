"""One running piece of a stack, whether a subprocess or a task in this process.

A service knows how to start, how to tell it is ready (a port, a health URL, a Temporal
poller), and how to stop. Subprocesses can also be killed (SIGKILL, as a crash) and started
again with the same arguments: the chaos run and the crash tests do exactly that.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from refundctl.procs import ChildProcess

__all__ = ["ProcessService", "Service", "ServiceStopped", "TaskService"]


class ServiceStopped(RuntimeError):
    """An in-process service ended while it should run (or while starting)."""


class Service(abc.ABC):
    """The common surface of every service of a stack."""

    name: str
    # time.time() of the last start, and of the last time it passed its readiness check.
    started_at: float | None = None
    ready_at: float | None = None

    @property
    @abc.abstractmethod
    def pid(self) -> int | None:
        """The OS process running it (this process for in-process services)."""

    @property
    @abc.abstractmethod
    def exit_code(self) -> int | None:
        """Set once it ended (a crash, a kill, a stop); None while it runs or before it starts."""

    @property
    def running(self) -> bool:
        return self.started_at is not None and self.exit_code is None

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def _ready(self) -> None: ...

    async def wait_ready(self) -> None:
        """Return once the service does its job (raises if it dies meanwhile)."""
        await self._ready()
        self.ready_at = time.time()

    @abc.abstractmethod
    async def stop(self, *, hurry: asyncio.Event | None = None) -> None: ...

    async def kill(self) -> None:
        raise NotImplementedError(f"{self.name} runs in this process and cannot be killed")

    def tail(self, lines: int = 40) -> list[str]:
        return []


class ProcessService(Service):
    """A subprocess with a readiness check; `kill()` + `start()` + `wait_ready()` restarts it."""

    def __init__(
        self,
        child: ChildProcess,
        ready: Callable[[ChildProcess], Awaitable[None]],
        *,
        restartable: bool = True,
    ) -> None:
        self.child = child
        self.name = child.name
        self._ready_check = ready
        self.restartable = restartable
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self.child.pid

    @property
    def exit_code(self) -> int | None:
        return self.child.returncode

    async def start(self) -> None:
        self.ready_at = None
        await self.child.start()
        self.started_at = self.child.started_at

    async def _ready(self) -> None:
        await self._ready_check(self.child)

    async def stop(self, *, hurry: asyncio.Event | None = None) -> None:
        await self.child.stop(hurry=hurry)

    async def kill(self) -> None:
        """SIGKILL right away, as a crash would (no cleanup, no graceful shutdown)."""
        await self.child.kill()

    def tail(self, lines: int = 40) -> list[str]:
        return self.child.tail(lines)


class TaskService(Service):
    """A coroutine in this process, run until its stop event is set.

    `run(stop)` must return soon after `stop` is set; it is cancelled if it takes longer than
    `grace_seconds` (or once `hurry` is set).
    """

    def __init__(
        self,
        name: str,
        run: Callable[[asyncio.Event], Awaitable[None]],
        ready: Callable[[], Awaitable[None]],
        *,
        grace_seconds: float = 10.0,
    ) -> None:
        self.name = name
        self._run = run
        self._ready_check = ready
        self.grace_seconds = grace_seconds
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return os.getpid() if self._task is not None else None

    @property
    def exit_code(self) -> int | None:
        if self._task is None or not self._task.done():
            return None
        if self._task.cancelled() or self._task.exception() is not None:
            return 1
        return 0

    async def start(self) -> None:
        self._stop = asyncio.Event()
        run = self._run
        stop = self._stop

        async def main() -> None:
            await run(stop)

        self._task = asyncio.create_task(main(), name=f"stack-{self.name}")
        self.started_at = time.time()
        await asyncio.sleep(0)  # let it take its first step (signal handlers, servers)

    def check_alive(self) -> None:
        """Raise the task's error (or ServiceStopped) if it ended."""
        if self._task is not None and self._task.done():
            if not self._task.cancelled() and self._task.exception() is not None:
                raise ServiceStopped(f"{self.name} failed") from self._task.exception()
            raise ServiceStopped(f"{self.name} stopped")

    async def _ready(self) -> None:
        checking = asyncio.ensure_future(self._ready_check())
        try:
            while not checking.done():
                self.check_alive()
                await asyncio.wait({checking}, timeout=0.05)
            checking.result()
        finally:
            checking.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await checking

    async def stop(self, *, hurry: asyncio.Event | None = None) -> None:
        if self._task is None or self._task.done():
            return
        self._stop.set()
        waits: set[asyncio.Future[Any]] = {self._task}
        hurry_task = asyncio.ensure_future(hurry.wait()) if hurry is not None else None
        if hurry_task is not None:
            waits.add(hurry_task)
        await asyncio.wait(waits, timeout=self.grace_seconds, return_when=asyncio.FIRST_COMPLETED)
        if hurry_task is not None:
            hurry_task.cancel()
        if not self._task.done():
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task

    def raise_error(self) -> None:
        """After the service ended: re-raise what it died of, if anything."""
        if self._task is not None and self._task.done() and not self._task.cancelled():
            error = self._task.exception()
            if error is not None:
                raise error
