"""AlipayClient against the sandbox Alipay gateway, both signing and verifying for real."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from domain.types import PayoutState
from peers.alipay import AlipayClient
from peers.payouts import NOT_FOUND, GatewayRefused, GatewayUnavailable, SignatureInvalid
from tests.peers.conftest import Keys, TamperingTransport, make_alipay

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
