"""Fixtures: the sandbox peers in-process, and the real client adapters pointed at them.

Most tests talk to a sandbox through `httpx.ASGITransport` (fast, fresh state per test). Only
the timeout tests need real sockets, because client timeouts do not apply to an ASGI transport;
they share one set of uvicorn servers on free ports for the session.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from config.settings import SANDBOX_WECHAT_PUBLIC_KEY_ID, Settings
from peers.alipay import AlipayClient
from peers.signing import (
    SANDBOX_WECHAT_CERT_FILE,
    ensure_sandbox_keys,
    load_private_key,
    load_public_key,
)
from peers.supplier import SupplierClient
from peers.wechat_keys import WechatPayKeys, certificate_serial
from peers.wechatpay import WechatPayClient
from sandbox.alipay import create_alipay_app
from sandbox.run import SandboxConfig, SandboxURLs, running_sandboxes
from sandbox.supplier import create_supplier_app
from sandbox.wechat_platform import SandboxPlatformKeys
from sandbox.wechatpay import create_wechat_app

APP_ID = "2021000000000001"
MCHID = "1900000001"
MERCHANT_SERIAL = "SANDBOXMCHSERIAL0001"
APIV3_KEY = "0123456789abcdef0123456789abcdef"
SUPPLIER_KEY = "kami-refunds"
SUPPLIER_SECRET = "test-supplier-secret"
WEBHOOK_SECRET = "test-webhook-secret"
NOTIFY_URL = "http://shop.test/notify/wechat"
PUBLIC_KEY_ID = SANDBOX_WECHAT_PUBLIC_KEY_ID


@dataclass
class Keys:
    dir: Path
    paths: dict[str, tuple[Path, Path]]

    def private(self, role: str) -> Any:
        return load_private_key(self.paths[role][0])

    def public(self, role: str) -> Any:
        return load_public_key(self.paths[role][1])

    def certificate(self) -> x509.Certificate:
        """The WeChat Pay platform certificate of these keys (for `wechat_platform`)."""
        return x509.load_pem_x509_certificate((self.dir / SANDBOX_WECHAT_CERT_FILE).read_bytes())

    @property
    def cert_serial(self) -> str:
        return certificate_serial(self.certificate())

    def sandbox_platform(self) -> SandboxPlatformKeys:
        """What the sandbox WeChat gateway signs with: certificate and public key."""
        return SandboxPlatformKeys(
            [(self.certificate(), self.private("wechat_platform"))],
            (PUBLIC_KEY_ID, self.private("wechat_pubkey")),
        )

    def wechat_keys(self, mode: str = "both") -> WechatPayKeys:
        """What a merchant trusts: "certificate", "public_key" or "both" (a migration)."""
        return WechatPayKeys(
            certificates=[self.certificate()] if mode in ("certificate", "both") else [],
            public_key=self.public("wechat_pubkey") if mode != "certificate" else None,
            public_key_id=PUBLIC_KEY_ID if mode != "certificate" else None,
        )


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    directory = tmp_path_factory.mktemp("keys")
    return Keys(dir=directory, paths=ensure_sandbox_keys(directory))


@pytest.fixture(scope="session")
def other_keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    """Keys nobody trusts: what a forger (or a misconfigured service) would sign with."""
    directory = tmp_path_factory.mktemp("forged-keys")
    return Keys(dir=directory, paths=ensure_sandbox_keys(directory))


def asgi_client(app: FastAPI, base_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


class TamperingTransport(httpx.AsyncBaseTransport):
    """Passes requests through and rewrites response bodies: a man in the middle."""

    def __init__(self, inner: httpx.AsyncBaseTransport, tamper: Callable[[bytes], bytes]) -> None:
        self._inner = inner
        self._tamper = tamper

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        original = await response.aread()
        body = self._tamper(original)
        assert body != original, "the tamper function did not change the answer"
        headers = [(k, v) for k, v in response.headers.items() if k.lower() != "content-length"]
        return httpx.Response(response.status_code, headers=headers, content=body)


# --- Alipay -----------------------------------------------------------------------------------


@pytest.fixture
def alipay_app(keys: Keys) -> FastAPI:
    return create_alipay_app(
        app_id=APP_ID,
        app_public_key=keys.public("alipay_app"),
        platform_private_key=keys.private("alipay_platform"),
        settle_after=60.0,  # processing refunds settle on the 3rd query in these tests
        settle_after_queries=3,
        fault_delay=0.0,
    )


@pytest.fixture
async def alipay_http(alipay_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(alipay_app, "http://alipay.test") as http:
        yield http
    await alipay_app.state.ledger.cancel_tasks()


def make_alipay(
    http: httpx.AsyncClient, keys: Keys, *, signing: Keys | None = None
) -> AlipayClient:
    return AlipayClient(
        http,
        url="http://alipay.test/gateway.do",
        app_id=APP_ID,
        app_private_key=(signing or keys).private("alipay_app"),
        alipay_public_key=keys.public("alipay_platform"),
    )


@pytest.fixture
def alipay(alipay_http: httpx.AsyncClient, keys: Keys) -> AlipayClient:
    return make_alipay(alipay_http, keys)


# --- WeChat Pay -------------------------------------------------------------------------------


@dataclass
class NotificationReceiver:
    """The service's notify endpoint, reduced to recording what arrives."""

    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/notify/wechat")
        async def notify(request: Request) -> JSONResponse:
            self.received.append((dict(request.headers), await request.body()))
            self.arrived.set()
            return JSONResponse({"code": "SUCCESS", "message": "成功"})

        return app

    async def wait_for(self, count: int, within: float = 3.0) -> None:
        async with asyncio.timeout(within):
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()


@pytest.fixture
def receiver() -> NotificationReceiver:
    return NotificationReceiver()


@pytest.fixture
async def wechat_app(keys: Keys, receiver: NotificationReceiver) -> AsyncIterator[FastAPI]:
    async with asgi_client(receiver.app(), "http://shop.test") as notify_client:
        yield create_wechat_app(
            mchid=MCHID,
            merchant_serial_no=MERCHANT_SERIAL,
            merchant_public_key=keys.public("wechat_merchant"),
            platform_keys=keys.sandbox_platform(),
            apiv3_key=APIV3_KEY,
            settle_after=0.2,
            settle_after_queries=None,
            fault_delay=0.0,
            notify_client=notify_client,
            notify_retry_delays=(0.05, 0.05),
        )


@pytest.fixture
async def wechat_http(wechat_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(wechat_app, "http://wechat.test") as http:
        yield http
    await wechat_app.state.ledger.cancel_tasks()


def make_wechat(
    http: httpx.AsyncClient,
    keys: Keys,
    *,
    signing: Keys | None = None,
    verifying: Keys | None = None,
    mode: str = "both",
    platform_keys: WechatPayKeys | None = None,
    refresh_certificates: bool = True,
) -> WechatPayClient:
    """A client of the sandbox; `mode` says which WeChat keys it trusts (default: both, as a
    merchant migrating to the public key, and as the dev settings do)."""
    return WechatPayClient(
        http,
        base_url="http://wechat.test",
        mchid=MCHID,
        serial_no=MERCHANT_SERIAL,
        merchant_private_key=(signing or keys).private("wechat_merchant"),
        platform_keys=platform_keys or (verifying or keys).wechat_keys(mode),
        apiv3_key=APIV3_KEY,
        notify_url=NOTIFY_URL,  # what `send_refund` asks the gateway to notify
        refresh_certificates=refresh_certificates,
    )


@pytest.fixture
def wechat(wechat_http: httpx.AsyncClient, keys: Keys) -> WechatPayClient:
    return make_wechat(wechat_http, keys)


class Recorder:
    """Keeps every request and answer that went through a client."""

    def __init__(self) -> None:
        self.exchanges: list[tuple[httpx.Request, httpx.Response]] = []

    async def __call__(self, response: httpx.Response) -> None:
        await response.aread()
        self.exchanges.append((response.request, response))

    def paths(self) -> list[str]:
        return [request.url.path for request, _ in self.exchanges]


@pytest.fixture
async def recorded(wechat_app: FastAPI) -> AsyncIterator[tuple[httpx.AsyncClient, Recorder]]:
    recorder = Recorder()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=wechat_app),
        base_url="http://wechat.test",
        event_hooks={"response": [recorder]},
    ) as http:
        yield http, recorder
    await wechat_app.state.ledger.cancel_tasks()


# --- Supplier ---------------------------------------------------------------------------------


@pytest.fixture
def supplier_app() -> FastAPI:
    return create_supplier_app(api_key=SUPPLIER_KEY, secret=SUPPLIER_SECRET, fault_delay=0.0)


@pytest.fixture
async def supplier_http(supplier_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(supplier_app, "http://supplier.test") as http:
        yield http


@pytest.fixture
def supplier(supplier_http: httpx.AsyncClient) -> SupplierClient:
    return SupplierClient(
        supplier_http,
        url_for=lambda _: "http://supplier.test",
        api_key=SUPPLIER_KEY,
        secret=SUPPLIER_SECRET,
    )


# --- Real servers (session) -------------------------------------------------------------------

CLIENT_TIMEOUT = 0.3
FAULT_DELAY = 0.8


@pytest.fixture(scope="session")
def sandbox_settings() -> Settings:
    return Settings(
        environment="test",
        supplier_api_key=SUPPLIER_KEY,
        supplier_secret=SUPPLIER_SECRET,
        alipay_app_id=APP_ID,
        wechat_mchid=MCHID,
        wechat_serial_no=MERCHANT_SERIAL,
        wechat_apiv3_key=APIV3_KEY,
        platform_webhook_secret=WEBHOOK_SECRET,
    )


@pytest.fixture(scope="session")
async def servers(keys: Keys, sandbox_settings: Settings) -> AsyncIterator[SandboxURLs]:
    config = SandboxConfig(
        supplier_port=0,
        alipay_port=0,
        wechat_port=0,
        platform_port=0,
        sms_port=0,
        mail_port=0,
        smtp_port=0,
        keys_dir=keys.dir,
        settle_after=0.2,
        fault_delay=FAULT_DELAY,
        notify_retry_delays=(0.05,),
    )
    async with running_sandboxes(config, settings=sandbox_settings) as urls:
        yield urls


@pytest.fixture
async def network_http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as http:
        yield http
