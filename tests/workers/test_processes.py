"""`refundctl worker --processes 2`: two worker processes on one host, the second a child of
the first; both poll the task queue, and the child stops with the parent — gracefully on
SIGTERM, at once if the parent is killed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from refundctl.ready import wait_for_poller
from refundctl.stack.launch import settings_env
from tests.system import System, unique

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat[1] == str(pid):
            found.append(int(entry.name))
    return found


async def eventually(predicate: object, within: float = 30.0) -> None:
    assert callable(predicate)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL])
async def test_a_second_worker_process_runs_and_stops_with_the_first(
    system: System, stop: signal.Signals
) -> None:
    # The system's settings: its database, its sandboxes and the keys they made, so both
    # processes can really start (a worker without its gateway keys exits at once).
    settings = system.settings.model_copy(update={"task_queue": unique("processes")})
    with tempfile.TemporaryFile() as output:
        parent = subprocess.Popen(
            [sys.executable, "-m", "refundctl.cli", "worker", "--processes", "2"],
            env={**os.environ, **settings_env(settings)},
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            await eventually(lambda: len(children_of(parent.pid)) == 1)
            (child,) = children_of(parent.pid)
            # Both are workers, not just processes: each polls the queue under its own pid.
            for pid in (parent.pid, child):
                try:
                    await wait_for_poller(
                        settings.temporal_address,
                        pid=pid,
                        since=float("inf"),
                        task_queue=settings.task_queue,
                        timeout_seconds=60,
                    )
                except TimeoutError as exc:
                    output.seek(0)
                    pytest.fail(f"{exc}\n{output.read().decode(errors='replace')[-4000:]}")
            parent.send_signal(stop)
            await eventually(lambda: not Path(f"/proc/{child}").exists() or _zombie(child))
            if stop == signal.SIGTERM:
                assert parent.wait(timeout=30) == 0
        finally:
            if parent.poll() is None:
                parent.kill()
            parent.wait(timeout=15)


def _zombie(pid: int) -> bool:
    try:
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) == "Z"
    except OSError:
        return True
