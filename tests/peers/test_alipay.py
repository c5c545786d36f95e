"""AlipayClient against the sandbox Alipay gateway, both signing and verifying for real."""

from __future__ import annotations

import json
from urllib.parse import quote_plus, urlencode

import httpx
import pytest
from fastapi import FastAPI

from domain.types import PayoutState
from peers.alipay import STATUS_MISSING, AlipayClient, alipay_timestamp
from peers.payouts import (
    NOT_FOUND,
    AnswerUntrusted,
    GatewayRefused,
    GatewayUnavailable,
    RefundOrder,
    SignatureInvalid,
)
from peers.signing import alipay_sign
from tests.peers.conftest import APP_ID, Keys, TamperingTransport, make_alipay

TRADE = "2026112022001"


async def refunds_of(http: httpx.AsyncClient, trade_no: str = TRADE) -> list[dict[str, object]]:
    answer = await http.get("/sandbox/refunds", params={"transaction_id": trade_no})
    refunds: list[dict[str, object]] = answer.json()["refunds"]
    return refunds


async def test_refund_moves_money_and_query_confirms(
    alipay: AlipayClient, alipay_http: httpx.AsyncClient
) -> None:
    result = await alipay.refund(trade_no=TRADE, out_request_no="R-1-pay", amount=5000, reason="x")
    assert result.state is PayoutState.SUCCEEDED
    assert result.amount == 5000 and result.raw_status == "fund_change=Y"

    queried = await alipay.query(trade_no=TRADE, out_request_no="R-1-pay")
    assert queried.state is PayoutState.SUCCEEDED
    assert queried.raw_status == "REFUND_SUCCESS" and queried.amount == 5000

    [recorded] = await refunds_of(alipay_http)
    assert recorded["amount"] == 5000 and recorded["out_refund_no"] == "R-1-pay"


async def test_repeated_out_request_no_refunds_once_with_fund_change_n(
    alipay: AlipayClient, alipay_http: httpx.AsyncClient
) -> None:
    await alipay.refund(trade_no=TRADE, out_request_no="R-2-pay", amount=1000, reason="x")
    again = await alipay.refund(trade_no=TRADE, out_request_no="R-2-pay", amount=1000, reason="x")
    # fund_change N proves nothing by itself: the query settles it.
    assert again.state is PayoutState.PROCESSING and again.raw_status == "fund_change=N"
    assert (await alipay.query(trade_no=TRADE, out_request_no="R-2-pay")).state is (
        PayoutState.SUCCEEDED
    )
    [recorded] = await refunds_of(alipay_http)
    assert recorded["requests"] == 2 and recorded["amount"] == 1000


async def test_processing_refund_settles_on_the_third_query(
    alipay: AlipayClient, alipay_http: httpx.AsyncClient
) -> None:
    await alipay_http.post("/sandbox/faults", json={"mode": "processing", "count": 1})
    result = await alipay.refund(trade_no=TRADE, out_request_no="R-3", amount=700, reason="x")
    assert result.state is PayoutState.PROCESSING
    states = [(await alipay.query(trade_no=TRADE, out_request_no="R-3")).state for _ in range(3)]
    assert states == [PayoutState.PROCESSING, PayoutState.PROCESSING, PayoutState.SUCCEEDED]


async def test_query_of_a_refund_alipay_never_took_is_not_found(alipay: AlipayClient) -> None:
    result = await alipay.query(trade_no=TRADE, out_request_no="never-sent")
    assert result.state is PayoutState.PENDING and result.raw_status == NOT_FOUND


async def test_refund_beyond_the_payment_total_is_refused(
    alipay: AlipayClient, alipay_http: httpx.AsyncClient
) -> None:
    await alipay_http.put(f"/sandbox/payments/{TRADE}", json={"amount": 5000, "channel": "alipay"})
    await alipay.refund(trade_no=TRADE, out_request_no="R-4a", amount=3000, reason="x")
    with pytest.raises(GatewayRefused) as refused:
        await alipay.refund(trade_no=TRADE, out_request_no="R-4b", amount=3000, reason="x")
    assert refused.value.sub_code == "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"
    assert len(await refunds_of(alipay_http)) == 1


async def test_our_bad_signature_is_refused_by_the_gateway(
    alipay_http: httpx.AsyncClient, keys: Keys, other_keys: Keys
) -> None:
    misconfigured = make_alipay(alipay_http, keys, signing=other_keys)
    with pytest.raises(GatewayRefused) as refused:
        await misconfigured.refund(trade_no=TRADE, out_request_no="R-5", amount=100, reason="x")
    assert refused.value.sub_code == "isv.invalid-signature"
    assert await refunds_of(alipay_http) == []


async def test_a_tampered_answer_is_not_believed(alipay_app: FastAPI, keys: Keys) -> None:
    # A man in the middle rewrites the answer: the signature over the node no longer matches.
    transport = TamperingTransport(
        httpx.ASGITransport(app=alipay_app),
        lambda body: body.replace(b'"fund_change":"Y"', b'"fund_change":"N"'),
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://alipay.test") as http:
        with pytest.raises(SignatureInvalid):
            await make_alipay(http, keys).refund(
                trade_no=TRADE, out_request_no="R-6", amount=100, reason="x"
            )


async def test_answer_signed_by_someone_else_is_not_believed(
    alipay_http: httpx.AsyncClient, keys: Keys, other_keys: Keys
) -> None:
    client = AlipayClient(
        alipay_http,
        url="http://alipay.test/gateway.do",
        app_id="2021000000000001",
        app_private_key=keys.private("alipay_app"),
        alipay_public_key=other_keys.public("alipay_platform"),
    )
    with pytest.raises(SignatureInvalid):
        await client.query(trade_no=TRADE, out_request_no="R-7")


@pytest.mark.parametrize(
    ("mode", "error", "code"),
    [
        ("error_5xx", GatewayUnavailable, None),
        ("system_error", GatewayUnavailable, None),
        ("closed", GatewayRefused, "ACQ.TRADE_HAS_CLOSE"),
    ],
)
async def test_faults(
    alipay: AlipayClient,
    alipay_http: httpx.AsyncClient,
    mode: str,
    error: type[Exception],
    code: str | None,
) -> None:
    await alipay_http.post("/sandbox/faults", json={"mode": mode, "count": 1})
    with pytest.raises(error) as raised:
        await alipay.refund(trade_no=TRADE, out_request_no="R-8", amount=100, reason="x")
    if code is not None:
        assert isinstance(raised.value, GatewayRefused) and raised.value.sub_code == code
    assert await refunds_of(alipay_http) == []
    # The fault is spent: the same number now refunds.
    result = await alipay.refund(trade_no=TRADE, out_request_no="R-8", amount=100, reason="x")
    assert result.state is PayoutState.SUCCEEDED


async def test_unreachable_gateway_is_transient(keys: Keys) -> None:
    async with httpx.AsyncClient(timeout=0.5) as http:
        client = AlipayClient(
            http,
            url="http://127.0.0.1:9/gateway.do",
            app_id="2021000000000001",
            app_private_key=keys.private("alipay_app"),
            alipay_public_key=keys.public("alipay_platform"),
        )
        with pytest.raises(GatewayUnavailable):
            await client.query(trade_no=TRADE, out_request_no="R-9")


def order(out_request_no: str, amount: int = 100) -> RefundOrder:
    return RefundOrder(
        out_refund_no=out_request_no,
        transaction_id=TRADE,
        amount=amount,
        payment_total=5000,
        currency="CNY",
        reason="卡密无效",
    )


async def test_bad_signature_on_a_refund_that_happened_is_untrusted_not_refused(
    alipay: AlipayClient, alipay_http: httpx.AsyncClient
) -> None:
    await alipay_http.post("/sandbox/faults", json={"mode": "bad_signature", "count": 1})
    with pytest.raises(SignatureInvalid) as raised:
        await alipay.send_refund(order("R-10"))
    assert isinstance(raised.value, AnswerUntrusted) and not isinstance(
        raised.value, GatewayRefused
    )
    # The money moved: what the gateway holds is a refund, and a signed query says so.
    [recorded] = await refunds_of(alipay_http)
    assert recorded["status"] == "SUCCESS" and recorded["amount"] == 100
    queried = await alipay.query_refund(order("R-10"))
    assert queried.state is PayoutState.SUCCEEDED and queried.raw_status == "REFUND_SUCCESS"


async def test_unsigned_system_error_is_transient_and_keeps_its_codes(
    alipay: AlipayClient, alipay_http: httpx.AsyncClient
) -> None:
    await alipay_http.post("/sandbox/faults", json={"mode": "unsigned_system_error", "count": 1})
    with pytest.raises(GatewayUnavailable) as raised:
        await alipay.send_refund(order("R-11"))
    assert (raised.value.code, raised.value.sub_code) == ("20000", "isp.unknow-error")
    assert await refunds_of(alipay_http) == []
    # Alipay's advice for 20000: the same request again, same number.
    assert (await alipay.send_refund(order("R-11"))).state is PayoutState.SUCCEEDED
    [recorded] = await refunds_of(alipay_http)
    assert recorded["requests"] == 1 and recorded["status"] == "SUCCESS"


async def test_unsigned_system_error_is_what_alipay_sends(
    alipay_http: httpx.AsyncClient, keys: Keys
) -> None:
    await alipay_http.post("/sandbox/faults", json={"mode": "unsigned_system_error", "count": 1})
    params = {
        "app_id": APP_ID,
        "method": "alipay.trade.refund",
        "charset": "utf-8",
        "sign_type": "RSA2",
        "timestamp": alipay_timestamp(),
        "version": "1.0",
        "biz_content": json.dumps(
            {"trade_no": TRADE, "refund_amount": "1.00", "out_request_no": "R-11b"}
        ),
    }
    params["sign"] = alipay_sign(keys.private("alipay_app"), params)
    answer = await alipay_http.post("/gateway.do", data=params)
    assert answer.status_code == 200
    assert answer.json() == {
        "alipay_trade_refund_response": {
            "code": "20000",
            "msg": "Service Currently Unavailable",
            "sub_code": "isp.unknow-error",
            "sub_msg": "系统繁忙",
        }
    }
    assert await refunds_of(alipay_http) == []


async def test_no_status_stays_processing_until_settled_by_hand(
    alipay: AlipayClient, alipay_http: httpx.AsyncClient
) -> None:
    await alipay_http.post("/sandbox/faults", json={"mode": "no_status", "count": 1})
    sent = await alipay.send_refund(order("R-12", amount=300))
    assert sent.state is PayoutState.PROCESSING and sent.raw_status == "fund_change=N"
    for _ in range(5):  # never settles by itself, however often it is asked
        found = await alipay.query_refund(order("R-12", amount=300))
        assert found.state is PayoutState.PROCESSING
        assert found.raw_status == STATUS_MISSING and found.amount == 300
    [recorded] = await refunds_of(alipay_http)
    # Recorded once; every query_refund sent it again (fund_change N) without paying twice.
    assert recorded["status"] == "PROCESSING" and recorded["amount"] == 300
    assert recorded["requests"] == 6 and recorded["queries"] == 5

    settled = await alipay_http.put("/sandbox/refunds/R-12", json={"status": "SUCCESS"})
    assert settled.status_code == 200 and settled.json()["status"] == "SUCCESS"
    found = await alipay.query_refund(order("R-12", amount=300))
    assert found.state is PayoutState.SUCCEEDED and found.raw_status == "REFUND_SUCCESS"


async def test_settling_an_unknown_refund_by_hand_is_404(alipay_http: httpx.AsyncClient) -> None:
    answer = await alipay_http.put("/sandbox/refunds/nope", json={"status": "SUCCESS"})
    assert answer.status_code == 404


async def test_the_sdks_get_with_everything_in_the_query_string_is_served(
    alipay_http: httpx.AsyncClient, keys: Keys
) -> None:
    """Alipay's own SDKs call `GET /gateway.do?...` (values quote_plus-encoded)."""
    params = {
        "app_id": APP_ID,
        "method": "alipay.trade.refund",
        "charset": "utf-8",
        "sign_type": "RSA2",
        "timestamp": alipay_timestamp(),
        "version": "1.0",
        "biz_content": json.dumps(
            {"trade_no": TRADE, "refund_amount": "2.50", "out_request_no": "R-13 a+b"},
            separators=(",", ":"),
        ),
    }
    params["sign"] = alipay_sign(keys.private("alipay_app"), params)
    answer = await alipay_http.get("/gateway.do?" + urlencode(params, quote_via=quote_plus))
    node = answer.json()["alipay_trade_refund_response"]
    assert node["code"] == "10000" and node["fund_change"] == "Y"
    [recorded] = await refunds_of(alipay_http)
    assert recorded["out_refund_no"] == "R-13 a+b" and recorded["amount"] == 250
