"""Child processes and their output, the part of `refundctl.stack` that runs subprocesses.

Each child runs in its own session (process group) so that Ctrl-C in the terminal reaches only
the launcher, which then stops the children itself (`refundctl.stack` does it in reverse start
order). Stopping is SIGTERM to the whole group, then SIGKILL after a grace period. A child's
output is read line by line and handed to a sink: a log file, the terminal, a logger.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

__all__ = [
    "ChildProcess",
    "LogFile",
    "OutputSink",
    "ProcessExited",
    "fan_out",
    "free_port",
    "log_sink",
    "port_is_open",
    "prefixed_writer",
    "refundctl_argv",
]

logger = logging.getLogger(__name__)

# One line of a child's combined stdout/stderr, without the trailing newline.
OutputSink = Callable[[str], None]

DEFAULT_GRACE_SECONDS = 10.0
_TAIL_LINES = 200


class ProcessExited(RuntimeError):
    """A child exited while we were waiting for it to become ready (or while it should run)."""

    def __init__(self, child: ChildProcess) -> None:
        self.child = child
        tail = "\n".join(child.tail(40)) or "(no output)"
        super().__init__(
            f"{child.name} exited with code {child.returncode}: {' '.join(child.argv)}\n"
            f"--- last output of {child.name} ---\n{tail}"
        )


def refundctl_argv(command: str, *args: str) -> list[str]:
    """`refundctl <command> ...` run with this interpreter, so it works without the console
    script on PATH and always uses the same virtualenv as the caller."""
    return [sys.executable, "-m", "refundctl.cli", command, *args]


def prefixed_writer(name: str, *, width: int = 9, stream: Any = None) -> OutputSink:
    """A sink that writes `name | line` to a stream (stdout by default), for the dev launcher
    where the interleaved output of all children is the point."""

    def write(line: str) -> None:
        out = stream if stream is not None else sys.stdout
        out.write(f"{name:>{width}} | {line}\n")
        out.flush()

    return write


def log_sink(name: str, *, level: int = logging.INFO) -> OutputSink:
    """A sink that sends each line to the `refundctl.child.<name>` logger (tests, libraries)."""
    child_logger = logging.getLogger(f"refundctl.child.{name}")

    def write(line: str) -> None:
        child_logger.log(level, "%s", line)

    return write


def fan_out(*sinks: OutputSink) -> OutputSink:
    """One sink writing every line to each of `sinks` (a log file and the terminal, say)."""

    def write(line: str) -> None:
        for sink in sinks:
            sink(line)

    return write


class LogFile:
    """A child's output appended to a file; counts the lines that look like errors, so a
    report can say which child complained without anyone reading every log."""

    BAD = ("Traceback", " ERROR ", "ERROR:", "CRITICAL")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.bad_lines = 0
        self.first_bad: list[str] = []
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = path.open("a", encoding="utf-8")

    def __call__(self, line: str) -> None:
        if self._fh.closed:
            return
        self._fh.write(line + "\n")
        self._fh.flush()
        if any(b in line for b in self.BAD):
            self.bad_lines += 1
            if len(self.first_bad) < 3:
                self.first_bad.append(line[:300])

    def close(self) -> None:
        self._fh.close()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now. Another process may take it before we use it;
    callers that start servers on it will see a clear startup failure if that rare race hits."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` different free ports. Calling `free_port` several times may return the same
    port twice (each socket is closed before the next is bound, and the kernel may hand the
    port out again); these are all held open until every one is chosen."""
    with contextlib.ExitStack() as stack:
        socks = [
            stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            for _ in range(count)
        ]
        for sock in socks:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def port_is_open(host: str, port: int, *, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _load_prctl() -> Callable[..., int] | None:
    # Resolved once in the parent: calling dlopen between fork and exec can deadlock when the
    # parent has other threads (the Temporal SDK's core runs several).
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    # Children live in their own session, so a SIGKILLed supervisor (or test runner) would
    # otherwise leave them running forever; ask Linux to SIGTERM them when the parent dies.
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


class ChildProcess:
    """One supervised child: started, streamed, stopped (or killed and restarted).

    The crash tests use `kill()` + `start()` to SIGKILL a worker mid-refund and bring it back.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        output: OutputSink | None = None,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        # Child environment = ours + overrides, so PATH, HOME and the venv stay intact.
        self.env = {**os.environ, **(env or {})}
        self.cwd = str(cwd) if cwd is not None else None
        self.output = output if output is not None else log_sink(name)
        self.grace_seconds = grace_seconds
        self.started_at: float | None = None  # time.time() of the last start
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)

    # --- state -------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    def tail(self, lines: int = _TAIL_LINES) -> list[str]:
        """The last lines of output, for error messages when a child dies."""
        return list(self._tail)[-lines:]

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> Self:
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        except FileNotFoundError as exc:
            raise RuntimeError(f"cannot start {self.name}: {exc}") from exc
        self.started_at = time.time()
        self._reader = asyncio.create_task(self._pump(self._proc), name=f"{self.name}-output")
        logger.debug("started %s (pid %s): %s", self.name, self._proc.pid, self.argv)
        return self

    async def _pump(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while True:
            try:
                raw = await proc.stdout.readline()
            except ValueError:
                # A line longer than the stream limit: take what is buffered and go on.
                raw = await proc.stdout.read(64 * 1024)
            if not raw:
                return
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            self._tail.append(line)
            try:
                self.output(line)
            except Exception:  # a broken sink must not stop draining the pipe (child would block)
                logger.exception("output sink for %s failed", self.name)

    async def wait(self) -> int:
        """Wait for the child to exit and for its output to be drained; returns the exit code."""
        if self._proc is None:
            raise RuntimeError(f"{self.name} was never started")
        code = await self._proc.wait()
        if self._reader is not None:
            await self._reader
        return code

    def _signal_group(self, sig: signal.Signals) -> None:
        if self._proc is None or self._proc.returncode is not None:
            return
        # The child leads its own process group; signalling the group also reaches whatever
        # it spawned (uvicorn reloaders, shells), so nothing outlives `stop()`.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)

    async def stop(
        self, *, grace_seconds: float | None = None, hurry: asyncio.Event | None = None
    ) -> int | None:
        """SIGTERM, then SIGKILL if still alive after the grace period (or once `hurry` is set)."""
        if self._proc is None:
            return None
        if self._proc.returncode is None:
            grace = self.grace_seconds if grace_seconds is None else grace_seconds
            self._signal_group(signal.SIGTERM)
            waiter = asyncio.ensure_future(self._proc.wait())
            waits: set[asyncio.Future[Any]] = {waiter}
            hurry_task: asyncio.Future[Any] | None = None
            if hurry is not None:
                hurry_task = asyncio.ensure_future(hurry.wait())
                waits.add(hurry_task)
            await asyncio.wait(waits, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
            if hurry_task is not None:
                hurry_task.cancel()
            if not waiter.done():
                logger.warning(
                    "%s did not stop %s; killing it",
                    self.name,
                    "when asked to hurry" if hurry and hurry.is_set() else f"within {grace:.0f}s",
                )
                self._signal_group(signal.SIGKILL)
            await waiter
        else:
            # Already dead; still clean up stragglers it left in its group.
            self._signal_group(signal.SIGKILL)
        return await self.wait()

    async def kill(self) -> int | None:
        """SIGKILL right away, as a crash would (no cleanup, no graceful worker shutdown)."""
        if self._proc is None:
            return None
        self._signal_group(signal.SIGKILL)
        return await self.wait()

    async def restart(self) -> Self:
        await self.stop()
        return await self.start()

    async def __aenter__(self) -> Self:
        if not self.running:
            await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
