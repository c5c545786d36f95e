"""WechatPayClient against the sandbox WeChat Pay gateway, notifications included; ABNORMAL
refunds rescued to a bank card are in test_wechat_abnormal_refunds.py."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from fastapi import FastAPI

from domain.types import PayoutState
from peers.payouts import (
    NOT_FOUND,
    AnswerUntrusted,
    GatewayRefund,
    GatewayRefused,
    GatewayUnavailable,
    SignatureInvalid,
)
from peers.signing import wechatpay_encrypt, wechatpay_sign_response, wechatpay_verify_response
from peers.wechatpay import WechatPayClient
from sandbox.wechatpay import transaction_id_for
from tests.peers.conftest import (
    APIV3_KEY,
    NOTIFY_URL,
    PUBLIC_KEY_ID,
    Keys,
    NotificationReceiver,
    TamperingTransport,
    make_wechat,
)
from tests.peers.wechat_refunds import TX, order, refunds_of


async def refund(
    client: WechatPayClient, out_refund_no: str, amount: int = 5000, total: int = 5000
) -> GatewayRefund:
    return await client.refund(
        transaction_id=TX,
        out_refund_no=out_refund_no,
        amount=amount,
        total=total,
        reason="卡密无效",
        notify_url=NOTIFY_URL,
    )


async def test_refund_and_query(wechat: WechatPayClient) -> None:
    result = await wechat.refund(
        transaction_id=TX,
        out_refund_no="R-1-pay",
        amount=1200,
        total=5000,
        reason="x",
        notify_url=None,
    )
    assert result.state is PayoutState.SUCCEEDED and result.amount == 1200
    assert result.gateway_refund_id
    queried = await wechat.query(out_refund_no="R-1-pay")
    assert queried == result


async def test_same_out_refund_no_returns_the_same_refund(
    wechat: WechatPayClient, wechat_http: httpx.AsyncClient
) -> None:
    first = await wechat.refund(
        transaction_id=TX, out_refund_no="R-2", amount=100, total=5000, reason="x", notify_url=None
    )
    again = await wechat.refund(
        transaction_id=TX, out_refund_no="R-2", amount=100, total=5000, reason="x", notify_url=None
    )
    assert again.gateway_refund_id == first.gateway_refund_id
    [recorded] = await refunds_of(wechat_http)
    assert recorded["requests"] == 2


async def test_processing_settles_and_notifies_twice(
    wechat: WechatPayClient, wechat_http: httpx.AsyncClient, receiver: NotificationReceiver
) -> None:
    await wechat_http.post("/sandbox/faults", json={"mode": "processing", "count": 1})
    result = await refund(wechat, "R-3")
    assert result.state is PayoutState.PROCESSING
    assert (await wechat.query(out_refund_no="R-3")).state is PayoutState.PROCESSING

    await receiver.wait_for(2)  # settled after settle_after, announced twice
    notes = [wechat.parse_notification(headers, body) for headers, body in receiver.received]
    assert {n.notification_id for n in notes} == {notes[0].notification_id}
    note = notes[0]
    assert note.event_type == "REFUND.SUCCESS" and note.state is PayoutState.SUCCEEDED
    assert note.out_refund_no == "R-3" and note.amount == 5000
    assert note.refund_id == result.gateway_refund_id
    assert (await wechat.query(out_refund_no="R-3")).state is PayoutState.SUCCEEDED


async def test_forged_notifications_raise(
    wechat: WechatPayClient,
    receiver: NotificationReceiver,
    keys: Keys,
    other_keys: Keys,
) -> None:
    await refund(wechat, "R-4")
    await receiver.wait_for(1)
    headers, body = receiver.received[0]
    assert wechat.parse_notification(headers, body).state is PayoutState.SUCCEEDED

    # 1. the body changed after signing
    forged = body.replace(b"REFUND.SUCCESS", b"REFUND.CLOSED")
    with pytest.raises(SignatureInvalid):
        wechat.parse_notification(headers, forged)

    # 2. signed by someone other than the platform
    envelope = json.loads(body)
    envelope["resource"] = {
        "original_type": "refund",
        **wechatpay_encrypt(
            APIV3_KEY,
            json.dumps(
                {
                    "out_refund_no": "R-4",
                    "refund_id": "X",
                    "refund_status": "SUCCESS",
                    "amount": {"refund": 999999, "total": 999999},
                }
            ).encode(),
            associated_data="refund",
        ),
    }
    forged = json.dumps(envelope).encode()
    forged_headers = wechatpay_sign_response(
        other_keys.private("wechat_platform"),
        serial_no=keys.cert_serial,
        body=forged,
    )
    with pytest.raises(SignatureInvalid):
        wechat.parse_notification(forged_headers, forged)

    # 3. a validly signed envelope whose resource was not encrypted with our APIv3 key
    envelope["resource"] = {
        "original_type": "refund",
        **wechatpay_encrypt("z" * 32, b"{}", associated_data="refund"),
    }
    forged = json.dumps(envelope).encode()
    signed = wechatpay_sign_response(
        keys.private("wechat_platform"), serial_no=keys.cert_serial, body=forged
    )
    with pytest.raises(SignatureInvalid):
        wechat.parse_notification(signed, forged)


@pytest.mark.parametrize(
    ("mode", "state", "event"),
    [
        ("closed", PayoutState.CLOSED, "REFUND.CLOSED"),
        ("abnormal", PayoutState.ABNORMAL, "REFUND.ABNORMAL"),
    ],
)
async def test_closed_and_abnormal_refunds(
    wechat: WechatPayClient,
    wechat_http: httpx.AsyncClient,
    receiver: NotificationReceiver,
    mode: str,
    state: PayoutState,
    event: str,
) -> None:
    await wechat_http.post("/sandbox/faults", json={"mode": mode, "count": 1})
    result = await refund(wechat, "R-5", amount=1000)
    assert result.state is state
    # The old number stays where it is: a retry needs a new one.
    assert (await refund(wechat, "R-5", amount=1000)).state is state
    await receiver.wait_for(1)
    assert wechat.parse_notification(*receiver.received[0]).event_type == event
    retried = await refund(wechat, "R-5-2", amount=1000)
    assert retried.state is PayoutState.SUCCEEDED


async def test_refund_beyond_the_payment_total_is_refused(
    wechat: WechatPayClient, wechat_http: httpx.AsyncClient
) -> None:
    await wechat_http.put(f"/sandbox/payments/{TX}", json={"amount": 5000, "channel": "wechat"})
    await refund(wechat, "R-6a", amount=4000)
    with pytest.raises(GatewayRefused) as refused:
        await refund(wechat, "R-6b", amount=2000)
    assert refused.value.code == "INVALID_REQUEST"
    assert [r["out_refund_no"] for r in await refunds_of(wechat_http)] == ["R-6a"]


async def test_5xx_is_transient_and_records_nothing(
    wechat: WechatPayClient, wechat_http: httpx.AsyncClient
) -> None:
    await wechat_http.post("/sandbox/faults", json={"mode": "error_5xx", "count": 1})
    with pytest.raises(GatewayUnavailable):
        await refund(wechat, "R-7")
    assert await refunds_of(wechat_http) == []


async def test_query_of_an_unknown_refund_is_not_found(wechat: WechatPayClient) -> None:
    result = await wechat.query(out_refund_no="never-sent")
    assert result.state is PayoutState.PENDING and result.raw_status == NOT_FOUND


async def test_our_bad_signature_is_refused(
    wechat_http: httpx.AsyncClient, keys: Keys, other_keys: Keys
) -> None:
    misconfigured = make_wechat(wechat_http, keys, signing=other_keys)
    with pytest.raises(GatewayRefused) as refused:
        await refund(misconfigured, "R-8")
    assert refused.value.code == "SIGN_ERROR"
    assert await refunds_of(wechat_http) == []


async def test_answers_not_signed_by_the_platform_are_refused(
    wechat_app: FastAPI, wechat_http: httpx.AsyncClient, keys: Keys, other_keys: Keys
) -> None:
    with pytest.raises(SignatureInvalid):
        await make_wechat(wechat_http, keys, verifying=other_keys).query(out_refund_no="R-9")

    transport = TamperingTransport(
        httpx.ASGITransport(app=wechat_app),
        lambda body: body.replace(b'"status": "SUCCESS"', b'"status": "CLOSED"'),
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://wechat.test") as http:
        with pytest.raises(SignatureInvalid):
            await refund(make_wechat(http, keys), "R-9")


@pytest.mark.parametrize("mode", ["bad_signature", "skewed_clock"])
async def test_untrusted_answer_to_a_refund_that_happened(
    wechat: WechatPayClient,
    wechat_http: httpx.AsyncClient,
    receiver: NotificationReceiver,
    mode: str,
) -> None:
    await wechat_http.post("/sandbox/faults", json={"mode": mode, "count": 1})
    with pytest.raises(SignatureInvalid) as raised:
        await wechat.send_refund(order("R-20"))
    assert isinstance(raised.value, AnswerUntrusted)
    assert not isinstance(raised.value, GatewayRefused)
    # The gateway refunded all the same; a (correctly signed) query is what tells.
    [recorded] = await refunds_of(wechat_http)
    assert recorded["status"] == "SUCCESS" and recorded["amount"] == 1000
    assert (await wechat.query_refund(order("R-20"))).state is PayoutState.SUCCEEDED
    await receiver.wait_for(1)
    assert wechat.parse_notification(*receiver.received[0]).state is PayoutState.SUCCEEDED


async def test_skewed_clock_answer_is_signed_but_ten_minutes_old(
    wechat_app: FastAPI, keys: Keys, wechat_http: httpx.AsyncClient
) -> None:
    seen: list[httpx.Response] = []

    async def keep(response: httpx.Response) -> None:
        await response.aread()
        seen.append(response)

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=wechat_app),
        base_url="http://wechat.test",
        event_hooks={"response": [keep]},
    ) as http:
        await http.post("/sandbox/faults", json={"mode": "skewed_clock", "count": 1})
        with pytest.raises(SignatureInvalid):
            await make_wechat(http, keys).send_refund(order("R-21"))
    answer = seen[-1]
    age = time.time() - int(answer.headers["Wechatpay-Timestamp"])
    assert 590 <= age <= 620
    # Signed correctly: only the clock is off.
    assert answer.headers["Wechatpay-Serial"] == PUBLIC_KEY_ID  # the request named it
    assert wechatpay_verify_response(
        keys.public("wechat_pubkey"), answer.headers, answer.content, max_skew_seconds=None
    )


def test_wechat_transaction_ids_look_like_wechats_and_never_echo_the_trade_number() -> None:
    tx = transaction_id_for("1900000001", "KAMI-ORDER-1001")
    assert len(tx) == 28 and tx.startswith("4200") and tx.isdigit()
    assert tx == transaction_id_for("1900000001", "KAMI-ORDER-1001")  # stable per trade
    assert tx != transaction_id_for("1900000001", "KAMI-ORDER-1002")


async def test_notifications_carry_the_signature_type(
    wechat: WechatPayClient, receiver: NotificationReceiver
) -> None:
    await wechat.send_refund(order("R-27"))
    await receiver.wait_for(1)
    headers, _ = receiver.received[0]
    assert headers["wechatpay-signature-type"] == "WECHATPAY2-SHA256-RSA2048"
