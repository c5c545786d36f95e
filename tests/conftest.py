"""Session fixtures for the integration tests: a real Temporal dev server, the database
(SQLite, or PostgreSQL when CI exports DATABASE_URL), the sandbox peers on real ports,
the worker, and the API served by uvicorn. Tests talk to the API over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from api.app import create_app
from config.settings import Settings
from domain.policy import default_policy_text
from sandbox.run import SandboxConfig, SandboxURLs, running_sandboxes
from store.migrate import upgrade
from tests.harness import free_port, session_database, temporal_dev_server
from tests.system import KEYS, System
from workers.main import serve


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
    keys = tmp / "keys"
    # A policy file of the session's own, so tests can change the policy at run time.
    policy = tmp / "policy.yaml"
    policy.write_text(default_policy_text(), encoding="utf-8")
    return Settings(
        policy_path=str(policy),
        environment="test",
        database_url=database_url,
        temporal_address=temporal_address,
        api_keys=",".join(f"{k}:{role}" for role, k in KEYS.items()) + ",pk-other:platform",
        alipay_private_key_path=str(keys / "alipay_app_private.pem"),
        alipay_public_key_path=str(keys / "alipay_platform_public.pem"),
        wechat_private_key_path=str(keys / "wechat_merchant_private.pem"),
        wechat_platform_certs=str(keys / "wechat_platform_cert.pem"),
        wechat_public_key_path=str(keys / "wechat_pubkey_public.pem"),
        http_timeout_seconds=2.0,
        # Every console test signs in from 127.0.0.1: far more often than a person would.
        console_sign_in_limit="1000/minute",
    )


def pointed_at(settings: Settings, urls: SandboxURLs, api_port: int) -> Settings:
    """The settings of a service talking to these sandboxes, reachable on `api_port`."""
    return settings.model_copy(
        update={
            "supplier_url": urls.supplier,
            "alipay_url": urls.alipay,
            "wechat_url": urls.wechat,
            "platform_webhook_url": urls.platform_webhook,
            "public_base_url": f"http://127.0.0.1:{api_port}",
        }
    )


class QuietServer(uvicorn.Server):
    """Leaves SIGINT/SIGTERM to pytest: the server shares the test process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serve_api(settings: Settings, port: int) -> AsyncIterator[str]:
    server = QuietServer(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture(scope="session")
async def system(
    tmp_path_factory: pytest.TempPathFactory, database_url: str, temporal_address: str
) -> AsyncIterator[System]:
    tmp = tmp_path_factory.mktemp("system")
    settings = base_settings(tmp, database_url, temporal_address)
    sandbox_config = SandboxConfig(
        supplier_port=0,
        alipay_port=0,
        wechat_port=0,
        platform_port=0,
        keys_dir=tmp / "keys",
        settle_after=0.5,
        fault_delay=4.0,
        notify_retry_delays=(0.2, 0.5),
    )
    api_port = free_port()
    async with running_sandboxes(sandbox_config, settings=settings) as urls:
        settings = pointed_at(settings, urls, api_port)
        stop = asyncio.Event()
        worker = asyncio.create_task(serve(settings, stop=stop))
        async with serve_api(settings, api_port) as api_url, httpx.AsyncClient(timeout=10) as http:
            yield System(settings=settings, api_url=api_url, sandboxes=urls, http=http)
        stop.set()
        await worker
