"""WeChat Pay's keys against the sandbox gateway: a client in public-key mode names the key on
every request and gets answers signed with it, one in certificate mode gets certificate
signatures, a migration verifies notifications signed with either, bank fields are
encrypted for the key the gateway can read, and answers outside the clock-skew allowance are
refused."""

from __future__ import annotations

import httpx
import pytest

from domain.types import PayoutState
from peers.payouts import AbnormalRefundRequest, SignatureInvalid
from peers.wechat_keys import CLOCK_SKEW, UNKNOWN_SERIAL, WechatPayKeys
from tests.peers.conftest import PUBLIC_KEY_ID, Keys, NotificationReceiver, Recorder, make_wechat
from tests.peers.wechat_refunds import order


async def test_public_key_mode_names_it_on_every_request_and_gets_answers_signed_with_it(
    recorded: tuple[httpx.AsyncClient, Recorder], keys: Keys
) -> None:
    http, recorder = recorded
    client = make_wechat(http, keys, mode="public_key")
    assert (await client.send_refund(order("K-1"))).state is PayoutState.SUCCEEDED
    assert (await client.query_refund(order("K-1"))).state is PayoutState.SUCCEEDED
    for request, response in recorder.exchanges:
        assert request.headers["Wechatpay-Serial"] == PUBLIC_KEY_ID
        assert response.headers["Wechatpay-Serial"] == PUBLIC_KEY_ID
        assert response.headers["Wechatpay-Signature-Type"] == "WECHATPAY2-SHA256-RSA2048"


async def test_certificate_mode_sends_no_serial_and_gets_certificate_signatures(
    recorded: tuple[httpx.AsyncClient, Recorder], keys: Keys
) -> None:
    http, recorder = recorded
    client = make_wechat(http, keys, mode="certificate")
    assert (await client.send_refund(order("K-2"))).state is PayoutState.SUCCEEDED
    [(request, response)] = recorder.exchanges
    assert "Wechatpay-Serial" not in request.headers
    assert response.headers["Wechatpay-Serial"] == keys.cert_serial
    assert int(keys.cert_serial, 16) == keys.certificate().serial_number


async def test_certificate_only_merchant_cannot_read_public_key_answers(
    wechat_http: httpx.AsyncClient, keys: Keys, receiver: NotificationReceiver
) -> None:
    """A public-key answer to a certificate-only client is unknown, not refused."""
    public_only = make_wechat(wechat_http, keys, mode="public_key")
    await public_only.send_refund(order("K-3"))
    certificate_only = make_wechat(wechat_http, keys, mode="certificate")
    # It asks without naming the public key, so it gets a certificate signature: fine.
    assert (await certificate_only.query_refund(order("K-3"))).state is PayoutState.SUCCEEDED
    # The notification was signed with the public key, as the refund request asked.
    await receiver.wait_for(1)
    headers, body = receiver.received[0]
    assert headers["wechatpay-serial"] == PUBLIC_KEY_ID
    assert public_only.parse_notification(headers, body).state is PayoutState.SUCCEEDED
    with pytest.raises(SignatureInvalid) as raised:
        certificate_only.parse_notification(headers, body)
    assert raised.value.sub_code == UNKNOWN_SERIAL


async def test_during_a_migration_notifications_signed_with_either_verify(
    wechat_http: httpx.AsyncClient, keys: Keys, receiver: NotificationReceiver
) -> None:
    answer = await wechat_http.put("/sandbox/signing", json={"notifications": "either"})
    assert answer.json()["notifications"] == "either"
    client = make_wechat(wechat_http, keys, mode="both")
    for n in range(16):
        await client.send_refund(order(f"K-4-{n}", amount=100))
    await receiver.wait_for(16)
    serials = set()
    for headers, body in receiver.received:
        assert client.parse_notification(headers, body).state is PayoutState.SUCCEEDED
        serials.add(headers["wechatpay-serial"])
    assert serials == {PUBLIC_KEY_ID, keys.cert_serial}  # both kinds were used


async def test_encrypted_bank_fields_name_the_key_and_the_gateway_reads_them(
    wechat_http: httpx.AsyncClient, keys: Keys
) -> None:
    for mode, expected_serial in (("certificate", keys.cert_serial), ("public_key", PUBLIC_KEY_ID)):
        client = make_wechat(wechat_http, keys, mode=mode)
        await wechat_http.post("/sandbox/faults", json={"mode": "abnormal", "count": 1})
        stuck = await client.send_refund(order(f"K-5-{mode}"))
        assert stuck.state is PayoutState.ABNORMAL and stuck.gateway_refund_id
        account, serial = client.encrypt_sensitive("6222021234567890123")
        name, _ = client.encrypt_sensitive("李四")
        assert serial == expected_serial
        rescued = await client.rescue_abnormal_refund(
            order(f"K-5-{mode}"),
            stuck.gateway_refund_id,
            AbnormalRefundRequest(
                to="USER_BANK_CARD",
                bank_type="CMB_DEBIT",
                bank_account=account,
                real_name=name,
                encrypted_with=serial,
            ),
        )
        assert rescued.state is PayoutState.PROCESSING
    listed = (await wechat_http.get("/sandbox/refunds")).json()["refunds"]
    assert [r["rescue"]["bank_account"][-4:] for r in listed] == ["0123", "0123"]
    assert [r["rescue"]["real_name"] for r in listed] == ["李*", "李*"]


async def test_skewed_clock_answers_are_refused_within_the_allowance_only(
    wechat_http: httpx.AsyncClient, keys: Keys
) -> None:
    await wechat_http.post("/sandbox/faults", json={"mode": "skewed_clock", "count": 2})
    with pytest.raises(SignatureInvalid) as raised:
        await make_wechat(wechat_http, keys).send_refund(order("K-10"))
    assert raised.value.sub_code == CLOCK_SKEW
    lenient = WechatPayKeys(
        certificates=[keys.certificate()],
        public_key=keys.public("wechat_pubkey"),
        public_key_id=PUBLIC_KEY_ID,
        max_clock_skew_seconds=900,
    )
    client = make_wechat(wechat_http, keys, platform_keys=lenient)
    assert (await client.send_refund(order("K-11"))).state is PayoutState.SUCCEEDED
