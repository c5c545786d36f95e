"""python-alipay-sdk 3.4.0 against our side of Alipay's OpenAPI.

1. The SDK as an app against the sandbox gateway: its GET /gateway.do requests (every parameter
   in the query string, quote_plus-encoded) must pass the sandbox's RSA2 check, and the
   sandbox's answers must pass the SDK's own response verification.
2. Our adapter (`peers.alipay`) against answers signed by the SDK's own `_sign`, served through
   an httpx MockTransport; and our request signature checked with the SDK's `_verify`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from alipay import AliPay
from alipay.exceptions import AliPayException, AliPayValidationError

from domain.types import PayoutState
from peers.alipay import AlipayClient
from peers.payouts import AnswerUntrusted, GatewayUnavailable, RefundOrder, SignatureInvalid
from tests.peers.conftest import APP_ID, Keys

pytestmark = pytest.mark.contract

TRADE = "2026112922001400000000000001"


def sdk(keys: Keys, gateway: str) -> AliPay:
    """The SDK as an app would set it up, pointed at the sandbox."""
    alipay = AliPay(
        appid=APP_ID,
        app_notify_url=None,
        app_private_key_string=keys.paths["alipay_app"][0].read_text(),
        alipay_public_key_string=keys.paths["alipay_platform"][1].read_text(),
        sign_type="RSA2",
    )
    alipay._gateway = gateway + "/gateway.do"  # where the SDK sends every call
    return alipay


async def ledger(base: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        refunds: list[dict[str, Any]] = (await http.get(f"{base}/sandbox/refunds")).json()[
            "refunds"
        ]
        return refunds


async def arm(base: str, mode: str) -> None:
    async with httpx.AsyncClient() as http:
        (
            await http.post(f"{base}/sandbox/faults", json={"mode": mode, "count": 1})
        ).raise_for_status()


# --- 1. the SDK against the sandbox ---------------------------------------------------------


async def test_refund_and_query_pass_both_ways(keys: Keys, alipay_base: str) -> None:
    alipay = sdk(keys, alipay_base)
    # The SDK raises AliPayValidationError on an answer whose sign does not verify.
    refund = await asyncio.to_thread(
        alipay.api_alipay_trade_refund,
        refund_amount="12.50",
        trade_no=TRADE,
        out_request_no="C-1 first+refund",
        refund_reason="卡密无效",
    )
    assert refund["code"] == "10000" and refund["fund_change"] == "Y"
    assert refund["trade_no"] == TRADE and refund["refund_fee"] == "12.50"
    queried = await asyncio.to_thread(
        alipay.api_alipay_trade_fastpay_refund_query,
        out_request_no="C-1 first+refund",
        trade_no=TRADE,
    )
    assert queried["code"] == "10000" and queried["refund_status"] == "REFUND_SUCCESS"
    assert queried["refund_amount"] == "12.50"
    [recorded] = await ledger(alipay_base)
    assert recorded["out_refund_no"] == "C-1 first+refund" and recorded["amount"] == 1250
    assert recorded["reason"] == "卡密无效"

    # The same number again refunds nothing more, as Alipay documents.
    again = await asyncio.to_thread(
        alipay.api_alipay_trade_refund,
        refund_amount="12.50",
        trade_no=TRADE,
        out_request_no="C-1 first+refund",
    )
    assert again["fund_change"] == "N"
    assert len(await ledger(alipay_base)) == 1


async def test_a_refund_alipay_never_took_is_a_verified_empty_answer(
    keys: Keys, alipay_base: str
) -> None:
    queried = await asyncio.to_thread(
        sdk(keys, alipay_base).api_alipay_trade_fastpay_refund_query,
        out_request_no="C-2",
        trade_no=TRADE,
    )
    assert queried["code"] == "10000" and "refund_status" not in queried


async def test_the_sdk_refuses_what_the_faults_send(keys: Keys, alipay_base: str) -> None:
    alipay = sdk(keys, alipay_base)
    await arm(alipay_base, "bad_signature")
    with pytest.raises(AliPayValidationError):
        await asyncio.to_thread(
            alipay.api_alipay_trade_refund,
            refund_amount="1.00",
            trade_no=TRADE,
            out_request_no="C-3",
        )
    await arm(alipay_base, "unsigned_system_error")
    with pytest.raises(AliPayException) as unsigned:
        await asyncio.to_thread(
            alipay.api_alipay_trade_refund,
            refund_amount="1.00",
            trade_no=TRADE,
            out_request_no="C-4",
        )
    assert "code:20000" in str(unsigned.value)
    # bad_signature refunded (SUCCESS), unsigned_system_error recorded nothing.
    assert [(r["out_refund_no"], r["status"]) for r in await ledger(alipay_base)] == [
        ("C-3", "SUCCESS")
    ]


async def test_the_sandbox_refuses_the_sdk_signing_with_another_key(
    keys: Keys, alipay_base: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from peers.signing import ensure_sandbox_keys

    other = tmp_path_factory.mktemp("other-alipay")
    stranger = ensure_sandbox_keys(other)
    alipay = AliPay(
        appid=APP_ID,
        app_private_key_string=stranger["alipay_app"][0].read_text(),
        alipay_public_key_string=keys.paths["alipay_platform"][1].read_text(),
    )
    alipay._gateway = alipay_base + "/gateway.do"
    # A signed business error: the SDK verifies it and hands it over.
    refused = await asyncio.to_thread(
        alipay.api_alipay_trade_refund, refund_amount="1.00", trade_no=TRADE, out_request_no="C-5"
    )
    assert (refused["code"], refused["sub_code"]) == ("40002", "isv.invalid-signature")
    assert await ledger(alipay_base) == []


# --- 2. our adapter against the SDK's signatures --------------------------------------------


class SdkSignedGateway:
    """An Alipay stand-in whose answers are signed by python-alipay-sdk's own `_sign`, with the
    platform's private key (the SDK signs with whatever it holds as the app key)."""

    def __init__(self, keys: Keys) -> None:
        self.signer = AliPay(
            appid=APP_ID,
            app_private_key_string=keys.paths["alipay_platform"][0].read_text(),
            alipay_public_key_string=keys.paths["alipay_app"][1].read_text(),
        )
        # Verifies requests with the app's public key, as Alipay does.
        self.verifier = AliPay(
            appid=APP_ID,
            app_private_key_string=keys.paths["alipay_platform"][0].read_text(),
            alipay_public_key_string=keys.paths["alipay_app"][1].read_text(),
        )
        self.mode = "ok"
        self.requests: list[dict[str, str]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        params = dict(parse_qsl(request.content.decode("utf-8"), keep_blank_values=True))
        self.requests.append(params)
        method = params["method"]
        biz = json.loads(params["biz_content"])
        if method == "alipay.trade.refund":
            node: dict[str, Any] = {
                "code": "10000",
                "msg": "Success",
                "trade_no": biz["trade_no"],
                "out_trade_no": "KAMI-O-1",
                "buyer_logon_id": "159****5620",
                "fund_change": "Y",
                "refund_fee": biz["refund_amount"],
            }
        else:
            node = {
                "code": "10000",
                "msg": "Success",
                "trade_no": biz["trade_no"],
                "out_request_no": biz["out_request_no"],
                "refund_amount": "5.00",
                "total_amount": "5.00",
                "refund_status": "REFUND_SUCCESS",
            }
        if self.mode == "unsigned_20000":
            node = {
                "code": "20000",
                "msg": "Service Currently Unavailable",
                "sub_code": "isp.unknow-error",
                "sub_msg": "系统繁忙",
            }
        key = method.replace(".", "_") + "_response"
        # Alipay's layout: the node's exact text, then the sign over it.
        node_text = json.dumps(node, ensure_ascii=False, separators=(",", ":"))
        sign = self.signer._sign(node_text)  # the SDK's RSA2 signer
        if self.mode == "tampered":
            node_text = node_text.replace('"fund_change":"Y"', '"fund_change":"N"')
        if self.mode == "unsigned_20000":
            body = f'{{"{key}":{node_text}}}'
        else:
            body = f'{{"{key}":{node_text},"sign":"{sign}"}}'
        return httpx.Response(
            200, content=body.encode("utf-8"), headers={"Content-Type": "application/json"}
        )

    def request_signature_verifies(self, params: dict[str, str]) -> bool:
        """Our request's `sign`, checked with the SDK's RSA2 verifier over the canonical string
        built the way the SDK builds it when it signs (`_ordered_data`, `k=v` joined by &)."""
        unsigned = {k: v for k, v in params.items() if k != "sign"}
        ordered = self.verifier._ordered_data(unsigned)
        message = "&".join(f"{k}={v}" for k, v in ordered)
        return bool(self.verifier._verify(message, params["sign"]))


def our_client(http: httpx.AsyncClient, keys: Keys) -> AlipayClient:
    return AlipayClient(
        http,
        url="http://alipay.test/gateway.do",
        app_id=APP_ID,
        app_private_key=keys.private("alipay_app"),
        alipay_public_key=keys.public("alipay_platform"),
    )


def order(out_request_no: str) -> RefundOrder:
    return RefundOrder(
        out_refund_no=out_request_no,
        transaction_id=TRADE,
        amount=500,
        payment_total=500,
        currency="CNY",
        reason="卡密无效",
    )


async def test_our_adapter_accepts_answers_signed_by_the_sdk(keys: Keys) -> None:
    gateway = SdkSignedGateway(keys)
    async with httpx.AsyncClient(transport=httpx.MockTransport(gateway.handle)) as http:
        client = our_client(http, keys)
        sent = await client.send_refund(order("C-6"))
        assert sent.state is PayoutState.SUCCEEDED and sent.raw_status == "fund_change=Y"
        found = await client.query_refund(order("C-6"))
        assert found.state is PayoutState.SUCCEEDED and found.amount == 500

        gateway.mode = "tampered"
        with pytest.raises(SignatureInvalid):
            await client.send_refund(order("C-7"))
        gateway.mode = "unsigned_20000"
        with pytest.raises(GatewayUnavailable) as unavailable:
            await client.send_refund(order("C-7"))
        assert (unavailable.value.code, unavailable.value.sub_code) == ("20000", "isp.unknow-error")
        assert not isinstance(unavailable.value, AnswerUntrusted)

    assert all(gateway.request_signature_verifies(params) for params in gateway.requests)
    assert gateway.requests[0]["method"] == "alipay.trade.refund"
