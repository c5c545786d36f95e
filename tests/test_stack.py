"""The shared stack launcher (refundctl/stack): restarts with back-off, Ctrl-C stops everything.

`refundctl dev` watches its stack with `Stack.supervise()` under a `RestartPolicy`; these tests
drive the same code with a child that starts fast (the bench's EmptyWorkflow worker, which needs
only Temporal) and with `refundctl temporal` as a real process receiving SIGINT.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from config.settings import Settings
from refundctl.procs import free_port
from refundctl.stack import (
    ExternalTemporal,
    LogSpec,
    RestartPolicy,
    StackSpec,
    WorkerSpec,
    start_stack,
)

QUEUE = "stack-test-empty"


def test_restart_delays_grow_and_stop_growing() -> None:
    policy = RestartPolicy(first_delay=1.0, factor=2.0, max_delay=5.0)
    assert [policy.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def empty_worker(settings: Settings) -> list[str]:
    address = settings.temporal_address
    return [sys.executable, "-m", "bench.empty", "--address", address, "--task-queue", QUEUE]


async def wait_for(condition: Callable[[], bool], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


@pytest.mark.integration
async def test_a_crashed_child_is_restarted_with_back_off_and_says_so(
    temporal_address: str,
) -> None:
    spec = StackSpec(
        settings=Settings(environment="test"),
        temporal=ExternalTemporal(temporal_address),
        workers=[WorkerSpec(name="empty", task_queue=QUEUE, command=empty_worker)],
        restart=RestartPolicy(first_delay=0.2, factor=3.0),
        logs=LogSpec(to_logging=True),
    )
    notices: list[str] = []
    async with start_stack(spec) as stack:
        watching = asyncio.create_task(stack.supervise(notice=notices.append))
        worker = stack.process("empty")
        first_pid = worker.pid

        await worker.kill()  # SIGKILL, as a crash
        await wait_for(lambda: any("is back" in n for n in notices))
        assert notices[0] == "empty exited with code -9; restarting it in 0.2s"
        assert worker.running and worker.pid != first_pid
        assert worker.ready_at is not None  # polling its task queue again

        await worker.kill()  # again, soon after: it waits longer
        await wait_for(lambda: sum("is back" in n for n in notices) == 2)
        assert notices[2] == "empty exited with code -9; restarting it in 0.6s"
        assert not watching.done(), "a restarted child must not end the watch"
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
    assert not worker.running


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


@pytest.mark.integration
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
async def test_ctrl_c_stops_the_launcher_and_every_child(tmp_path: Path) -> None:
    launcher = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "refundctl.cli",
        "temporal",
        f"--port={free_port()}",
        "--headless",
        f"--db-file={tmp_path / 'temporal.db'}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert launcher.stdout is not None
    async with asyncio.timeout(90):
        while b"ready at" not in (line := await launcher.stdout.readline()):
            assert line, "refundctl temporal ended before it was ready"
    children = _children(launcher.pid)
    assert children, "the dev server runs as a child of the launcher"

    launcher.send_signal(signal.SIGINT)
    async with asyncio.timeout(30):
        await launcher.communicate()
    assert launcher.returncode == 0  # Ctrl-C is how it is meant to end
    for pid in children:
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid), f"child {pid} still runs"


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
