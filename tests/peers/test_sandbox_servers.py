"""The sandboxes on real sockets: timeouts, and the `refundctl sandbox` wiring."""

from __future__ import annotations

import argparse

import httpx
import pytest

from config.settings import Settings
from domain.types import KeyState, PayoutState
from peers.alipay import AlipayClient
from peers.payouts import GatewayRefund, GatewayUnavailable
from peers.supplier import SupplierClient, SupplierUnavailable
from peers.webhooks import SIGNATURE_HEADER, sign_webhook
from peers.wechatpay import WechatPayClient
from sandbox.run import SandboxURLs, add_arguments
from tests.peers.conftest import WEBHOOK_SECRET, Keys


def alipay_client(
    http: httpx.AsyncClient, urls: SandboxURLs, keys: Keys, s: Settings
) -> AlipayClient:
    return AlipayClient(
        http,
        url=urls.alipay,
        app_id=s.alipay_app_id,
        app_private_key=keys.private("alipay_app"),
        alipay_public_key=keys.public("alipay_platform"),
    )


def wechat_client(
    http: httpx.AsyncClient, urls: SandboxURLs, keys: Keys, s: Settings
) -> WechatPayClient:
    return WechatPayClient(
        http,
        base_url=urls.wechat,
        mchid=s.wechat_mchid,
        serial_no=s.wechat_serial_no,
        merchant_private_key=keys.private("wechat_merchant"),
        platform_keys=keys.wechat_keys(),
        apiv3_key=s.wechat_apiv3_key,
    )


async def test_wechat_timeout_then_retry_pays_once(
    servers: SandboxURLs, network_http: httpx.AsyncClient, keys: Keys, sandbox_settings: Settings
) -> None:
    client = wechat_client(network_http, servers, keys, sandbox_settings)
    await network_http.post(
        f"{servers.wechat}/sandbox/faults", json={"mode": "timeout", "count": 1}
    )

    async def refund() -> GatewayRefund:
        return await client.refund(
            transaction_id="TX-timeout",
            out_refund_no="R-T1",
            amount=300,
            total=500,
            reason="x",
            notify_url=None,
        )

    with pytest.raises(GatewayUnavailable):
        await refund()
    retried = await refund()
    assert retried.state is PayoutState.SUCCEEDED
    listed = await network_http.get(
        f"{servers.wechat}/sandbox/refunds", params={"transaction_id": "TX-timeout"}
    )
    [recorded] = listed.json()["refunds"]
    assert recorded["amount"] == 300 and recorded["requests"] == 2


async def test_alipay_timeout_then_retry_pays_once(
    servers: SandboxURLs, network_http: httpx.AsyncClient, keys: Keys, sandbox_settings: Settings
) -> None:
    client = alipay_client(network_http, servers, keys, sandbox_settings)
    base = servers.alipay.removesuffix("/gateway.do")
    await network_http.post(f"{base}/sandbox/faults", json={"mode": "timeout", "count": 1})
    with pytest.raises(GatewayUnavailable):
        await client.refund(trade_no="TRADE-T", out_request_no="R-T2", amount=500, reason="x")
    retried = await client.refund(trade_no="TRADE-T", out_request_no="R-T2", amount=500, reason="x")
    assert retried.raw_status == "fund_change=N"  # the first call had already refunded
    queried = await client.query(trade_no="TRADE-T", out_request_no="R-T2")
    assert queried.state is PayoutState.SUCCEEDED
    listed = await network_http.get(f"{base}/sandbox/refunds", params={"transaction_id": "TRADE-T"})
    assert len(listed.json()["refunds"]) == 1


async def test_supplier_timeout_is_transient_and_lock_still_idempotent(
    servers: SandboxURLs, network_http: httpx.AsyncClient, sandbox_settings: Settings
) -> None:
    client = SupplierClient(
        network_http,
        url_for=lambda _: servers.supplier,
        api_key=sandbox_settings.supplier_api_key,
        secret=sandbox_settings.supplier_secret,
    )
    await network_http.post(
        f"{servers.supplier}/sandbox/faults", json={"mode": "timeout", "count": 1}
    )
    with pytest.raises(SupplierUnavailable):
        await client.lock_key("sup-a", "K-T", idempotency_key="R-T3-lock")
    assert await client.lock_key("sup-a", "K-T", idempotency_key="R-T3-lock") is KeyState.LOCKED
    shown = (await network_http.get(f"{servers.supplier}/sandbox/keys/K-T")).json()
    assert shown["state"] == "locked" and shown["idempotency_keys"] == ["R-T3-lock"]


async def test_platform_webhook_on_a_socket(
    servers: SandboxURLs, network_http: httpx.AsyncClient
) -> None:
    body = b'{"refund_id":"R-W","status":"submitted"}'
    answer = await network_http.post(
        servers.platform_webhook,
        content=body,
        headers={SIGNATURE_HEADER: sign_webhook(WEBHOOK_SECRET, body)},
    )
    assert answer.status_code == 200


def test_cli_arguments_default_to_the_settings_ports() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([])
    assert (args.supplier_port, args.alipay_port, args.wechat_port, args.platform_port) == (
        8101,
        8102,
        8103,
        8104,
    )
    assert str(args.keys_dir) == "var/keys"
    assert args.wechat_notification_signing == "request"
