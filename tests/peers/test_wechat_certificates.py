"""WeChat Pay's platform certificates over their lifetime, against the sandbox gateway:
served encrypted from /v3/certificates, a rotation fetched once and trusted (or left unknown
without refresh), downloads rate-limited against made-up serials, a notification under a new
certificate verified on WeChat's retry, an expired certificate refused."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from cryptography import x509
from fastapi import FastAPI

from domain.types import PayoutState
from peers.payouts import SignatureInvalid
from peers.signing import wechatpay_decrypt
from peers.wechat_keys import CERTIFICATE_EXPIRED, UNKNOWN_SERIAL, WechatPayKeys, certificate_serial
from peers.wechatpay import CERTIFICATES_PATH
from sandbox.wechat_platform import SandboxPlatformKeys
from sandbox.wechatpay import create_wechat_app
from tests.peers.conftest import (
    APIV3_KEY,
    MCHID,
    MERCHANT_SERIAL,
    Keys,
    NotificationReceiver,
    Recorder,
    asgi_client,
    make_wechat,
)
from tests.peers.throwaway_keys import BODY, certificate, new_key, signed
from tests.peers.wechat_refunds import order


async def test_the_gateway_serves_its_certificates_encrypted_with_the_apiv3_key(
    recorded: tuple[httpx.AsyncClient, Recorder], keys: Keys
) -> None:
    http, recorder = recorded
    client = make_wechat(http, keys, mode="certificate")
    await http.post("/sandbox/certificates", json={})  # rotate: two certificates now
    assert await client.refresh_certificates() == 1  # the new one
    _, response = recorder.exchanges[-1]
    data = json.loads(response.content)["data"]
    assert len(data) == 2
    for item in data:
        encrypted = item["encrypt_certificate"]
        assert encrypted["algorithm"] == "AEAD_AES_256_GCM"
        assert encrypted["associated_data"] == "certificate"
        pem = wechatpay_decrypt(
            APIV3_KEY,
            nonce=encrypted["nonce"],
            associated_data=encrypted["associated_data"],
            ciphertext=encrypted["ciphertext"],
        )
        assert certificate_serial(x509.load_pem_x509_certificate(pem)) == item["serial_no"]
        assert item["expire_time"].endswith("+08:00")


async def test_a_rotated_certificate_is_fetched_once_and_trusted(
    recorded: tuple[httpx.AsyncClient, Recorder], keys: Keys
) -> None:
    http, recorder = recorded
    client = make_wechat(http, keys, mode="certificate")
    rotated = (await http.post("/sandbox/certificates", json={})).json()
    assert rotated["signing_certificate"] != keys.cert_serial
    assert (await client.send_refund(order("K-6"))).state is PayoutState.SUCCEEDED
    assert (await client.query_refund(order("K-6"))).state is PayoutState.SUCCEEDED
    assert recorder.paths().count(CERTIFICATES_PATH) == 1
    assert client.platform_keys.knows(rotated["signing_certificate"])


async def test_without_refresh_a_rotated_certificate_leaves_the_outcome_unknown(
    wechat_http: httpx.AsyncClient, keys: Keys
) -> None:
    client = make_wechat(wechat_http, keys, mode="certificate", refresh_certificates=False)
    await wechat_http.post("/sandbox/certificates", json={})
    with pytest.raises(SignatureInvalid) as raised:
        await client.send_refund(order("K-7"))
    assert raised.value.sub_code == UNKNOWN_SERIAL
    [recorded] = (await wechat_http.get("/sandbox/refunds")).json()["refunds"]
    assert recorded["status"] == "SUCCESS"  # the money moved: unknown is not no


async def test_refresh_is_rate_limited_against_made_up_serials(
    recorded: tuple[httpx.AsyncClient, Recorder], keys: Keys
) -> None:
    http, recorder = recorded
    client = make_wechat(http, keys, mode="certificate")
    forged = signed(new_key(), "ABCDEF0123456789")
    for _ in range(3):
        with pytest.raises(SignatureInvalid):
            client.parse_notification(forged, BODY)
    for _ in range(20):  # let the background refresh run
        if CERTIFICATES_PATH in recorder.paths():
            break
        await asyncio.sleep(0.01)
    assert recorder.paths().count(CERTIFICATES_PATH) == 1
    assert await client.refresh_certificates() == 0  # within the interval: no download
    assert recorder.paths().count(CERTIFICATES_PATH) == 1


async def test_notification_under_a_new_certificate_verifies_on_the_retry(
    wechat_app: FastAPI, wechat_http: httpx.AsyncClient, keys: Keys, receiver: NotificationReceiver
) -> None:
    client = make_wechat(wechat_http, keys, mode="certificate")
    await wechat_http.put("/sandbox/signing", json={"notifications": "certificate"})
    # Rotate behind the client's back: refunds are answered (and notified) with the new one.
    platform: SandboxPlatformKeys = wechat_app.state.platform_keys
    platform.rotate()
    await make_wechat(wechat_http, keys, mode="public_key").send_refund(order("K-8"))
    await receiver.wait_for(1)
    headers, body = receiver.received[0]
    with pytest.raises(SignatureInvalid) as raised:
        client.parse_notification(headers, body)
    assert raised.value.sub_code == UNKNOWN_SERIAL
    for _ in range(100):  # the download it started in the background
        if client.platform_keys.knows(headers["wechatpay-serial"]):
            break
        await asyncio.sleep(0.01)
    # WeChat retries the notification: now it verifies.
    assert client.parse_notification(headers, body).state is PayoutState.SUCCEEDED


async def test_answers_under_an_expired_certificate_are_refused(
    keys: Keys, receiver: NotificationReceiver
) -> None:
    key = new_key()
    expired = certificate(key, days_from=-800, days_to=-30)
    app = create_wechat_app(
        mchid=MCHID,
        merchant_serial_no=MERCHANT_SERIAL,
        merchant_public_key=keys.public("wechat_merchant"),
        platform_keys=SandboxPlatformKeys([(expired, key)]),
        apiv3_key=APIV3_KEY,
        settle_after=0.1,
        fault_delay=0.0,
    )
    async with asgi_client(app, "http://wechat.test") as http:
        client = make_wechat(
            http, keys, platform_keys=WechatPayKeys(certificates=[expired, keys.certificate()])
        )
        with pytest.raises(SignatureInvalid) as raised:
            await client.send_refund(order("K-9"))
        assert raised.value.sub_code == CERTIFICATE_EXPIRED
    await app.state.ledger.cancel_tasks()
