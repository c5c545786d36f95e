"""Fixtures for the crash tests; the rig itself (and why it looks the way it does) is in
`tests/crash/rig.py`."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import httpx
import pytest

from sandbox.run import SandboxConfig, running_sandboxes
from store.db import make_engine
from tests.conftest import base_settings, pointed_at, serve_api
from tests.crash.rig import (
    FAULT_DELAY,
    TASK_QUEUE,
    WORKER_HTTP_TIMEOUT,
    CrashSystem,
    worker_env,
)
from tests.harness import free_port, worker_process
from tests.system import System


@pytest.fixture(scope="session")
async def crash_system(
    tmp_path_factory: pytest.TempPathFactory, database_url: str, temporal_address: str
) -> AsyncIterator[CrashSystem]:
    tmp = tmp_path_factory.mktemp("crash")
    crash_dir = tmp / "crashpoints"
    crash_dir.mkdir()
    settings = base_settings(tmp, database_url, temporal_address).model_copy(
        update={"task_queue": TASK_QUEUE, "http_timeout_seconds": WORKER_HTTP_TIMEOUT}
    )
    sandbox_config = SandboxConfig(
        supplier_port=0,
        alipay_port=0,
        wechat_port=0,
        platform_port=0,
        keys_dir=tmp / "keys",
        settle_after=0.5,
        fault_delay=FAULT_DELAY,
        notify_retry_delays=(0.2, 0.5, 1.0, 2.0),
    )
    api_port = free_port()
    async with running_sandboxes(sandbox_config, settings=settings) as urls:
        settings = pointed_at(settings, urls, api_port)
        # The worker's output, line by line: shown by pytest for a failing test.
        logging.getLogger("refundctl.child.crash-worker").setLevel(logging.INFO)
        worker = worker_process(
            temporal_address=temporal_address,
            database_url=database_url,
            env=worker_env(settings, crash_dir),
            name="crash-worker",
        )
        engine = make_engine(database_url)
        async with (
            serve_api(settings, api_port) as api_url,
            httpx.AsyncClient(timeout=10) as http,
        ):
            rig = CrashSystem(
                system=System(settings=settings, api_url=api_url, sandboxes=urls, http=http),
                worker=worker,
                temporal_address=temporal_address,
                crash_dir=crash_dir,
                engine=engine,
            )
            rig.disarm_all()
            try:
                await rig.start_worker()
                yield rig
            finally:
                with contextlib.suppress(Exception):
                    await worker.stop(grace_seconds=5)
                await engine.dispose()


@pytest.fixture
async def crash(crash_system: CrashSystem) -> AsyncIterator[CrashSystem]:
    """Per test: every crash point disarmed, no gateway fault armed, a live worker."""
    crash_system.disarm_all()
    await crash_system.clear_gateway_faults()
    await crash_system.start_worker()
    yield crash_system
    crash_system.disarm_all()
