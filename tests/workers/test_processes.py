"""`refundctl worker --processes 2`: two worker processes on one host, the second a child of
the first that stops with it — gracefully on SIGTERM, at once if the parent is killed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from config.settings import Settings
from refundctl.stack.launch import settings_env

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
    temporal_address: str, database_url: str, stop: signal.Signals
) -> None:
    settings = Settings(
        environment="test",
        database_url=database_url,
        temporal_address=temporal_address,
        task_queue=f"processes-{stop.name.lower()}",
    )
    parent = subprocess.Popen(
        [sys.executable, "-m", "refundctl.cli", "worker", "--processes", "2"],
        env={**os.environ, **settings_env(settings)},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await eventually(lambda: len(children_of(parent.pid)) == 1)
        (child,) = children_of(parent.pid)
        parent.send_signal(stop)
        await eventually(lambda: not Path(f"/proc/{child}").exists() or _zombie(child))
    finally:
        if parent.poll() is None:
            parent.kill()
        parent.wait(timeout=15)


def _zombie(pid: int) -> bool:
    try:
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) == "Z"
    except OSError:
        return True
