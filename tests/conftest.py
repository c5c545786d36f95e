"""Session fixtures for the integration tests: a real Temporal dev server, the database
(SQLite, or PostgreSQL when CI exports DATABASE_URL), the sandbox peers on real ports,
the worker, and the API served by uvicorn, started by `refundctl.stack` as `refundctl dev`
starts them (in this process here). Tests talk to the API over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from config.settings import Settings
from domain.policy import default_policy_text
from refundctl.stack import (
    ApiSpec,
    ExternalTemporal,
    SandboxSpec,
    StackSpec,
    WorkerSpec,
    start_stack,
)
from refundctl.stack import serve_api as serve_api  # tests that need a second API use it
from sandbox.run import SandboxConfig
from store.migrate import upgrade
from tests.harness import session_database, temporal_dev_server
from tests.system import KEYS, System


@pytest.fixture(scope="session")
async def temporal_address() -> AsyncIterator[str]:
    async with temporal_dev_server() as address:
        yield address


@pytest.fixture(scope="session")
async def database_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    async with session_database(tmp_path_factory.mktemp("db")) as url:
        # Alembic's env runs its own event loop: keep it off this one.
        await asyncio.to_thread(upgrade, url)
        yield url


def base_settings(tmp: Path, database_url: str, temporal_address: str) -> Settings:
    """The session's settings; the stack points them at its sandboxes and their keys."""
    # A policy file of the session's own, so tests can change the policy at run time.
    policy = tmp / "policy.yaml"
    policy.write_text(default_policy_text(), encoding="utf-8")
    return Settings(
        policy_path=str(policy),
        environment="test",
        database_url=database_url,
        temporal_address=temporal_address,
        api_keys=",".join(f"{k}:{role}" for role, k in KEYS.items()) + ",pk-other:platform",
        http_timeout_seconds=2.0,
        # Every console test signs in from 127.0.0.1: far more often than a person would.
        console_sign_in_limit="1000/minute",
        # A buyer message the SMTP server keeps refusing ends "failed" after 1 s + 2 s.
        buyer_message_max_attempts=3,
    )


def system_sandboxes(
    keys_dir: Path, *, fault_delay: float, notify_retry_delays: tuple[float, ...]
) -> SandboxSpec:
    """The sandbox peers in this process on free ports, settling "processing" refunds fast."""
    return SandboxSpec(
        SandboxConfig.on_free_ports(
            keys_dir,
            settle_after=0.5,
            fault_delay=fault_delay,
            notify_retry_delays=notify_retry_delays,
        ),
        mode="inprocess",
    )


@pytest.fixture(scope="session")
async def system(
    tmp_path_factory: pytest.TempPathFactory, database_url: str, temporal_address: str
) -> AsyncIterator[System]:
    """Sandboxes, the refund worker and the API, all in this process (refundctl.stack)."""
    tmp = tmp_path_factory.mktemp("system")
    spec = StackSpec(
        settings=base_settings(tmp, database_url, temporal_address),
        temporal=ExternalTemporal(temporal_address),
        sandboxes=system_sandboxes(tmp / "keys", fault_delay=4.0, notify_retry_delays=(0.2, 0.5)),
        workers=[WorkerSpec(mode="inprocess")],
        apis=[ApiSpec(mode="inprocess")],
    )
    async with start_stack(spec) as stack, httpx.AsyncClient(timeout=10) as http:
        assert stack.sandboxes is not None
        yield System(
            settings=stack.settings, api_url=stack.api_url, sandboxes=stack.sandboxes, http=http
        )
