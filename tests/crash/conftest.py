"""Fixtures for the crash tests; the rig itself (and why it looks the way it does) is in
`tests/crash/rig.py`."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator

import httpx
import pytest

from refundctl.stack import ApiSpec, ExternalTemporal, LogSpec, StackSpec, WorkerSpec, start_stack
from store.db import make_engine
from tests.conftest import base_settings, system_sandboxes
from tests.crash.rig import (
    FAULT_DELAY,
    TASK_QUEUE,
    WORKER,
    WORKER_HTTP_TIMEOUT,
    CrashSystem,
    crash_env,
)
from tests.system import System


@pytest.fixture(scope="session")
async def crash_system(
    tmp_path_factory: pytest.TempPathFactory, database_url: str, temporal_address: str
) -> AsyncIterator[CrashSystem]:
    tmp = tmp_path_factory.mktemp("crash")
    crash_dir = tmp / "crashpoints"
    crash_dir.mkdir()
    CrashSystem.disarm_in(crash_dir)  # before the worker starts
    # The worker's output, line by line: shown by pytest for a failing test.
    logging.getLogger(f"refundctl.child.{WORKER}").setLevel(logging.INFO)
    spec = StackSpec(
        settings=base_settings(tmp, database_url, temporal_address).model_copy(
            update={"task_queue": TASK_QUEUE, "http_timeout_seconds": WORKER_HTTP_TIMEOUT}
        ),
        temporal=ExternalTemporal(temporal_address),
        # Its worker shares the session's database: it must leave the buyer messages of the
        # session's system to the system's own dispatcher and sandboxes.
        sandboxes=dataclasses.replace(
            system_sandboxes(
                tmp / "keys", fault_delay=FAULT_DELAY, notify_retry_delays=(0.2, 0.5, 1.0, 2.0)
            ),
            buyer_messages=False,
        ),
        # It shares the session's database with the `system` stack, whose sandbox supplier the
        # claims tests ask: claims are that stack's worker's to drive.
        workers=[WorkerSpec(name=WORKER, env=crash_env(crash_dir), args=("--no-claims",))],
        apis=[ApiSpec(mode="inprocess")],
        logs=LogSpec(to_logging=True),
    )
    async with start_stack(spec) as stack, httpx.AsyncClient(timeout=10) as http:
        assert stack.sandboxes is not None
        engine = make_engine(database_url)
        rig = CrashSystem(
            system=System(
                settings=stack.settings, api_url=stack.api_url, sandboxes=stack.sandboxes, http=http
            ),
            service=stack.process(WORKER),
            temporal_address=temporal_address,
            crash_dir=crash_dir,
            engine=engine,
        )
        try:
            yield rig
        finally:
            await engine.dispose()


@pytest.fixture
async def crash(crash_system: CrashSystem) -> AsyncIterator[CrashSystem]:
    """Per test: every crash point disarmed, no gateway fault armed, a live worker."""
    crash_system.disarm_all()
    await crash_system.clear_gateway_faults()
    await crash_system.start_worker()
    yield crash_system
    crash_system.disarm_all()
