"""`refundctl worker --processes N`: N worker processes on one machine, each with its own
event loop and GIL. One worker process spends its CPU on one core; the workflow sandbox,
the SDK's payload handling and the database driver are all Python, so a second process is
how a worker host uses its second core (measured: README "Benchmark").

The process that was started runs a worker itself and starts the others as its children
(`--processes 1`, no webhook dispatcher and no sweeper: one of each is enough for a host).
Children die with it (PR_SET_PDEATHSIG), so a supervisor that kills it kills them all, and
SIGTERM/SIGINT are passed on for a graceful stop."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

__all__ = ["worker_children"]

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _child_env(n: int) -> dict[str, str]:
    """The n-th child's environment: ours, with its /metrics on the n-th port after ours
    (WORKER_METRICS_ADDRESS; port 0 stays "any free port")."""
    env = dict(os.environ)
    host, _, port = env.get("WORKER_METRICS_ADDRESS", "").rpartition(":")
    if port.isdigit() and int(port):
        env["WORKER_METRICS_ADDRESS"] = f"{host}:{int(port) + n}"
    return env


@contextlib.contextmanager
def worker_children(count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start `count` more worker processes for the lifetime of the block."""
    argv = [sys.executable, "-m", "refundctl.cli", "worker", "--processes", "1"]
    argv += ["--no-dispatcher", "--no-sweeper"]
    children = [
        subprocess.Popen(argv, preexec_fn=_die_with_parent, env=_child_env(n))
        for n in range(1, count + 1)
    ]
    try:
        yield children
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
