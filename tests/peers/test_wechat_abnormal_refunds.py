"""WeChat Pay's ABNORMAL refunds (the buyer's card is closed) against the sandbox gateway:
rescued through apply-abnormal-refund to the buyer's bank card (fields encrypted for WeChat)
or the merchant's, the rescue's refusals, and a status set by hand in WeChat's back office
announced as usual."""

from __future__ import annotations

import httpx
import pytest

from domain.types import PayoutState
from peers.payouts import AbnormalRefundRequest, GatewayRefused
from peers.wechatpay import WechatPayClient
from tests.peers.conftest import Keys, NotificationReceiver, make_wechat
from tests.peers.wechat_refunds import order, refunds_of


async def test_abnormal_refund_is_rescued_to_a_bank_card(
    wechat: WechatPayClient, wechat_http: httpx.AsyncClient, receiver: NotificationReceiver
) -> None:
    await wechat_http.post("/sandbox/faults", json={"mode": "abnormal", "count": 1})
    stuck = await wechat.send_refund(order("R-22"))
    assert stuck.state is PayoutState.ABNORMAL and stuck.gateway_refund_id
    await receiver.wait_for(1)
    assert wechat.parse_notification(*receiver.received[0]).event_type == "REFUND.ABNORMAL"

    account, serial = wechat.encrypt_sensitive("6222021234567890123")
    name, same_serial = wechat.encrypt_sensitive("张三")
    assert serial == same_serial
    rescued = await wechat.rescue_abnormal_refund(
        order("R-22"),
        stuck.gateway_refund_id,
        AbnormalRefundRequest(
            to="USER_BANK_CARD",
            bank_type="ICBC_DEBIT",
            bank_account=account,
            real_name=name,
            encrypted_with=serial,
        ),
    )
    assert rescued.state is PayoutState.PROCESSING
    assert rescued.gateway_refund_id == stuck.gateway_refund_id

    await receiver.wait_for(2)  # settles to SUCCESS, announced
    note = wechat.parse_notification(*receiver.received[1])
    assert note.event_type == "REFUND.SUCCESS" and note.out_refund_no == "R-22"
    assert (await wechat.query_refund(order("R-22"))).state is PayoutState.SUCCEEDED
    [recorded] = await refunds_of(wechat_http)
    # One refund, sent to the card the gateway could read: the fields decrypted.
    assert recorded["status"] == "SUCCESS" and recorded["amount"] == 1000
    assert recorded["rescue"] == {
        "type": "USER_BANK_CARD",
        "bank_type": "ICBC_DEBIT",
        "bank_account": "***************0123",
        "real_name": "张*",
    }


async def test_abnormal_refund_to_the_merchant_card_needs_no_bank_fields(
    wechat: WechatPayClient, wechat_http: httpx.AsyncClient
) -> None:
    await wechat_http.post("/sandbox/faults", json={"mode": "abnormal", "count": 1})
    stuck = await wechat.send_refund(order("R-23"))
    assert stuck.gateway_refund_id
    rescue = AbnormalRefundRequest(to="MERCHANT_BANK_CARD")
    rescued = await wechat.rescue_abnormal_refund(order("R-23"), stuck.gateway_refund_id, rescue)
    assert rescued.state is PayoutState.PROCESSING
    # The same call again (its answer lost): the refund as it is, not a second rescue.
    again = await wechat.rescue_abnormal_refund(order("R-23"), stuck.gateway_refund_id, rescue)
    assert again.gateway_refund_id == stuck.gateway_refund_id
    [recorded] = await refunds_of(wechat_http)
    assert recorded["rescue"] == {"type": "MERCHANT_BANK_CARD"}


async def test_abnormal_rescue_refusals(
    wechat: WechatPayClient, wechat_http: httpx.AsyncClient, keys: Keys, other_keys: Keys
) -> None:
    rescue = AbnormalRefundRequest(to="MERCHANT_BANK_CARD")
    with pytest.raises(GatewayRefused) as unknown:
        await wechat.rescue_abnormal_refund(order("R-24"), "50999999", rescue)
    assert unknown.value.code == "RESOURCE_NOT_EXISTS"

    fine = await wechat.send_refund(order("R-24"))
    assert fine.state is PayoutState.SUCCEEDED and fine.gateway_refund_id
    with pytest.raises(GatewayRefused) as not_abnormal:
        await wechat.rescue_abnormal_refund(order("R-24"), fine.gateway_refund_id, rescue)
    assert not_abnormal.value.code == "INVALID_REQUEST"

    # Bank fields the gateway cannot read (encrypted for someone else's key) are refused,
    # and the refund stays ABNORMAL.
    await wechat_http.post("/sandbox/faults", json={"mode": "abnormal", "count": 1})
    stuck = await wechat.send_refund(order("R-25"))
    assert stuck.gateway_refund_id
    stranger = make_wechat(wechat_http, keys, verifying=other_keys)
    account, serial = stranger.encrypt_sensitive("6222021234567890123")
    name, _ = stranger.encrypt_sensitive("张三")
    unreadable = AbnormalRefundRequest(
        to="USER_BANK_CARD",
        bank_type="ICBC_DEBIT",
        bank_account=account,
        real_name=name,
        encrypted_with=serial,
    )
    with pytest.raises(GatewayRefused) as refused:
        await wechat.rescue_abnormal_refund(order("R-25"), stuck.gateway_refund_id, unreadable)
    assert refused.value.code == "PARAM_ERROR"
    assert (await wechat.query_refund(order("R-25"))).state is PayoutState.ABNORMAL


async def test_refund_status_set_by_hand_is_announced(
    wechat: WechatPayClient, wechat_http: httpx.AsyncClient, receiver: NotificationReceiver
) -> None:
    await wechat_http.post("/sandbox/faults", json={"mode": "abnormal", "count": 1})
    await wechat.send_refund(order("R-26"))
    await receiver.wait_for(1)
    # The merchant sorted it out in WeChat's back office: SUCCESS, announced as usual.
    settled = await wechat_http.put("/sandbox/refunds/R-26", json={"status": "SUCCESS"})
    assert settled.status_code == 200
    await receiver.wait_for(2)
    assert wechat.parse_notification(*receiver.received[1]).state is PayoutState.SUCCEEDED
