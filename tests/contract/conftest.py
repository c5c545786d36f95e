"""Contract tests: code nobody here wrote against ours.

`wechatpayv3` and `python-alipay-sdk` (test-only dependencies) are synchronous clients built on
`requests` and `urlopen`, so the sandboxes run as real servers on free ports and the libraries
are called in a thread (`asyncio.to_thread`) while this loop serves them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from peers.signing import ensure_sandbox_keys
from sandbox.alipay import create_alipay_app
from sandbox.wechatpay import create_wechat_app
from tests.peers.conftest import APIV3_KEY, APP_ID, MCHID, MERCHANT_SERIAL, Keys

# A WeChat Pay transaction id (28 digits, 4200...) for the refunds of the wechatpayv3 tests.
TX = "4200001234202611290000000001"


class _QuietServer(uvicorn.Server):
    """Leaves signals to pytest: the server shares the test process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """`app` on a free port of 127.0.0.1 until the block ends; yields its base URL."""
    server = _QuietServer(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("server stopped while starting")
        await asyncio.sleep(0.01)
    port = next(sock.getsockname()[1] for listener in server.servers for sock in listener.sockets)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@dataclass
class Receiver:
    """A merchant's notify endpoint that keeps what arrives, headers as a framework hands
    them over (lower-case names, as wechatpayv3 expects from FastAPI)."""

    url: str = ""
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/notify")
        async def notify(request: Request) -> JSONResponse:
            self.received.append((dict(request.headers), await request.body()))
            self.arrived.set()
            return JSONResponse({"code": "SUCCESS", "message": "成功"})

        return app

    async def wait_for(self, count: int, within: float = 5.0) -> None:
        async with asyncio.timeout(within):
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    directory = tmp_path_factory.mktemp("contract-keys")
    return Keys(dir=directory, paths=ensure_sandbox_keys(directory))


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    async with serving(receiver.app()) as url:
        receiver.url = url + "/notify"
        yield receiver


@pytest.fixture
async def wechat_url(keys: Keys) -> AsyncIterator[str]:
    """A fresh sandbox WeChat Pay gateway (certificate + public key) on a real socket."""
    app = create_wechat_app(
        mchid=MCHID,
        merchant_serial_no=MERCHANT_SERIAL,
        merchant_public_key=keys.public("wechat_merchant"),
        platform_keys=keys.sandbox_platform(),
        apiv3_key=APIV3_KEY,
        settle_after=0.2,
        settle_after_queries=None,
        fault_delay=0.0,
        notify_retry_delays=(0.1,),
    )
    async with serving(app) as url:
        yield url


@pytest.fixture
async def alipay_base(keys: Keys) -> AsyncIterator[str]:
    """A fresh sandbox Alipay gateway on a real socket (base URL, without /gateway.do)."""
    app = create_alipay_app(
        app_id=APP_ID,
        app_public_key=keys.public("alipay_app"),
        platform_private_key=keys.private("alipay_platform"),
        settle_after=60.0,
        settle_after_queries=3,
        fault_delay=0.0,
    )
    async with serving(app) as url:
        yield url
