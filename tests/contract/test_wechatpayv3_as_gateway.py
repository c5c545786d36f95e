"""Our adapter (`peers.wechatpay`) against answers and notifications signed by wechatpayv3
2.0.4's own signing code (`wechatpayv3.utils.rsa_sign`), served through an httpx
MockTransport, and our request signature checked with the library's verifier."""

from __future__ import annotations

import base64
import json
import os
import time

import httpx
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from wechatpayv3.utils import rsa_sign as library_rsa_sign
from wechatpayv3.utils import rsa_verify as library_rsa_verify

from domain.types import PayoutState
from peers.payouts import RefundOrder, SignatureInvalid
from peers.wechat_keys import BAD_SIGNATURE, CLOCK_SKEW, UNKNOWN_SERIAL
from peers.wechatpay import REFUNDS_PATH
from tests.contract.conftest import TX
from tests.peers.conftest import APIV3_KEY, MCHID, MERCHANT_SERIAL, PUBLIC_KEY_ID, Keys, make_wechat

pytestmark = [
    pytest.mark.contract,
    # The library's own use of cryptography's naive-datetime properties (its code, not ours).
    pytest.mark.filterwarnings("ignore:Properties that return a na"),
]


class LibrarySignedGateway:
    """A WeChat Pay stand-in whose answers are signed by wechatpayv3's own `rsa_sign`."""

    def __init__(self, keys: Keys, *, use_public_key: bool = True) -> None:
        self.keys = keys
        self.use_public_key = use_public_key
        self.tamper = False
        self.age = 0
        self.requests: list[httpx.Request] = []

    def headers(self, body: str, *, age: float = 0) -> dict[str, str]:
        timestamp = str(int(time.time() - age))
        nonce = base64.b16encode(os.urandom(16)).decode()
        if self.use_public_key:
            key, serial = self.keys.private("wechat_pubkey"), PUBLIC_KEY_ID
        else:
            key, serial = self.keys.private("wechat_platform"), self.keys.cert_serial
        return {
            "Wechatpay-Timestamp": timestamp,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature": library_rsa_sign(key, f"{timestamp}\n{nonce}\n{body}\n"),
            "Wechatpay-Serial": serial,
            "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
            "Content-Type": "application/json",
        }

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        out_refund_no = request.url.path.rsplit("/", 1)[-1]
        if request.method == "POST":
            out_refund_no = json.loads(request.content)["out_refund_no"]
        body = json.dumps(
            {
                "refund_id": "50300000000000000000000001",
                "out_refund_no": out_refund_no,
                "transaction_id": TX,
                "status": "SUCCESS",
                "amount": {"refund": 500, "total": 500, "currency": "CNY"},
            },
            ensure_ascii=False,
        )
        headers = self.headers(body, age=self.age)
        if self.tamper:
            body = body.replace("SUCCESS", "CLOSED")
        return httpx.Response(200, content=body.encode("utf-8"), headers=headers)


def our_order(out_refund_no: str) -> RefundOrder:
    return RefundOrder(
        out_refund_no=out_refund_no,
        transaction_id=TX,
        amount=500,
        payment_total=500,
        currency="CNY",
        reason="卡密无效",
    )


@pytest.mark.parametrize("use_public_key", [True, False])
async def test_our_adapter_accepts_answers_signed_by_the_library(
    keys: Keys, use_public_key: bool
) -> None:
    gateway = LibrarySignedGateway(keys, use_public_key=use_public_key)
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(gateway.handle), base_url="http://wechat.test"
    ) as http:
        client = make_wechat(http, keys, mode="both", refresh_certificates=False)
        assert (await client.send_refund(our_order("C-7"))).state is PayoutState.SUCCEEDED
        assert (await client.query_refund(our_order("C-7"))).state is PayoutState.SUCCEEDED

        gateway.tamper = True
        with pytest.raises(SignatureInvalid) as tampered:
            await client.send_refund(our_order("C-8"))
        assert tampered.value.sub_code == BAD_SIGNATURE
        gateway.tamper, gateway.age = False, 3600
        with pytest.raises(SignatureInvalid) as stale:
            await client.query_refund(our_order("C-8"))
        assert stale.value.sub_code == CLOCK_SKEW

    # Our request signature, checked with the library's own verifier: WeChat's request
    # message is METHOD\nPATH\nTIMESTAMP\nNONCE\nBODY\n, its verifier's TIMESTAMP\nNONCE\nBODY\n
    # with the first three lines passed as the "timestamp".
    request = gateway.requests[0]
    fields = dict(
        part.split("=", 1) for part in request.headers["Authorization"].split(" ", 1)[1].split(",")
    )
    fields = {k: v.strip('"') for k, v in fields.items()}
    assert fields["mchid"] == MCHID and fields["serial_no"] == MERCHANT_SERIAL
    assert request.headers["Wechatpay-Serial"] == PUBLIC_KEY_ID
    assert library_rsa_verify(
        f"POST\n{REFUNDS_PATH}\n{fields['timestamp']}",
        fields["nonce_str"],
        request.content.decode("utf-8"),
        fields["signature"],
        keys.public("wechat_merchant"),
    )


def library_notification(
    keys: Keys, *, serial: str, out_refund_no: str = "C-9"
) -> tuple[dict[str, str], bytes]:
    """A REFUND.SUCCESS notification as WeChat sends it, signed with the library's rsa_sign and
    encrypted with AES-256-GCM directly (not with our helpers)."""
    resource = json.dumps(
        {
            "mchid": MCHID,
            "transaction_id": TX,
            "out_trade_no": "KAMI-O-9",
            "refund_id": "50300000000000000000000009",
            "out_refund_no": out_refund_no,
            "refund_status": "SUCCESS",
            "success_time": "2026-11-29T10:00:00+08:00",
            "user_received_account": "支付用户零钱",
            "amount": {"total": 500, "refund": 500, "payer_total": 500, "payer_refund": 500},
        },
        ensure_ascii=False,
    ).encode("utf-8")
    nonce = "a1b2c3d4e5f6"
    ciphertext = AESGCM(APIV3_KEY.encode()).encrypt(nonce.encode(), resource, b"refund")
    body = json.dumps(
        {
            "id": "EV-2018022511223320873",
            "create_time": "2026-11-29T10:00:01+08:00",
            "resource_type": "encrypt-resource",
            "event_type": "REFUND.SUCCESS",
            "summary": "退款成功",
            "resource": {
                "original_type": "refund",
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": base64.b64encode(ciphertext).decode(),
                "associated_data": "refund",
                "nonce": nonce,
            },
        },
        ensure_ascii=False,
    )
    gateway = LibrarySignedGateway(keys, use_public_key=serial == PUBLIC_KEY_ID)
    return gateway.headers(body), body.encode("utf-8")


@pytest.mark.parametrize("use_public_key", [True, False])
async def test_our_adapter_accepts_notifications_signed_by_the_library(
    keys: Keys, use_public_key: bool
) -> None:
    serial = PUBLIC_KEY_ID if use_public_key else keys.cert_serial
    headers, body = library_notification(keys, serial=serial)
    async with httpx.AsyncClient() as http:
        client = make_wechat(http, keys, mode="both", refresh_certificates=False)
        notice = client.parse_notification(headers, body)
        assert notice.state is PayoutState.SUCCEEDED and notice.out_refund_no == "C-9"
        assert notice.amount == 500 and notice.notification_id == "EV-2018022511223320873"
        with pytest.raises(SignatureInvalid):
            client.parse_notification(headers, body.replace(b"REFUND.SUCCESS", b"REFUND.CLOSED"))
        with pytest.raises(SignatureInvalid) as unknown:
            client.parse_notification({**headers, "Wechatpay-Serial": "0ABC"}, body)
        assert unknown.value.sub_code == UNKNOWN_SERIAL
