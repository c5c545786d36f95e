"""wechatpayv3 2.0.4 against our side of WeChat Pay v3.

1. The library as a merchant against the sandbox gateway, in certificate mode (`cert_dir`,
   `/v3/certificates`) and public-key mode (`public_key`/`public_key_id`): its request
   signatures must pass the sandbox, the sandbox's answers and notifications must pass its
   verification (`callback()`), and its encrypted bank fields must decrypt at the sandbox.
2. Our adapter (`peers.wechatpay`) against answers and notifications signed by the library's
   own signing code (`wechatpayv3.utils.rsa_sign`), served through an httpx MockTransport.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from wechatpayv3 import WeChatPay, WeChatPayType
from wechatpayv3.utils import rsa_sign as library_rsa_sign
from wechatpayv3.utils import rsa_verify as library_rsa_verify

from domain.types import PayoutState
from peers.payouts import RefundOrder, SignatureInvalid
from peers.wechat_keys import BAD_SIGNATURE, CLOCK_SKEW, UNKNOWN_SERIAL
from peers.wechatpay import REFUNDS_PATH
from tests.contract.conftest import Receiver
from tests.peers.conftest import APIV3_KEY, MCHID, MERCHANT_SERIAL, PUBLIC_KEY_ID, Keys, make_wechat

pytestmark = [
    pytest.mark.contract,
    # The library's own use of cryptography's naive-datetime properties (its code, not ours).
    pytest.mark.filterwarnings("ignore:Properties that return a na"),
]

TX = "4200001234202611290000000001"


def pem(path: Path) -> str:
    return path.read_text(encoding="ascii")


def library(
    keys: Keys,
    gateway: str,
    *,
    notify_url: str | None = None,
    cert_dir: Path | None = None,
    public_key: bool = False,
) -> WeChatPay:
    """The library as a merchant would set it up, pointed at `gateway` instead of WeChat.

    Certificate mode reads `cert_dir` at construction (it would download from the real
    gateway if the directory were empty, so tests seed it or use public-key mode first)."""
    pay = WeChatPay(
        wechatpay_type=WeChatPayType.NATIVE,
        mchid=MCHID,
        private_key=pem(keys.paths["wechat_merchant"][0]),
        cert_serial_no=MERCHANT_SERIAL,
        appid="wx0000000000000001",
        apiv3_key=APIV3_KEY,
        notify_url=notify_url,
        cert_dir=str(cert_dir) if cert_dir else None,
        public_key=pem(keys.paths["wechat_pubkey"][1]) if public_key else None,
        public_key_id=PUBLIC_KEY_ID if public_key else None,
        timeout=(5, 10),
    )
    pay._core._gate_way = gateway  # the library's base URL (api.mch.weixin.qq.com)
    return pay


def seeded_cert_dir(tmp_path: Path, keys: Keys) -> Path:
    """A cert_dir as the library keeps it: `{serial}.pem` per platform certificate."""
    cert_dir = tmp_path / "wechat-certs"
    cert_dir.mkdir()
    (cert_dir / f"{keys.cert_serial}.pem").write_bytes(
        keys.certificate().public_bytes(serialization.Encoding.PEM)
    )
    return cert_dir


async def call(function: Any, *args: Any, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    """Run a library call in a thread (it blocks on `requests`); its JSON answer."""
    code, text = await asyncio.to_thread(function, *args, **kwargs)
    return code, json.loads(text) if text else {}


async def ledger(gateway: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        refunds: list[dict[str, Any]] = (await http.get(f"{gateway}/sandbox/refunds")).json()[
            "refunds"
        ]
        return refunds


async def arm(gateway: str, mode: str, count: int = 1) -> None:
    async with httpx.AsyncClient() as http:
        answer = await http.post(f"{gateway}/sandbox/faults", json={"mode": mode, "count": count})
        answer.raise_for_status()


# --- 1. the library against the sandbox ---------------------------------------------------------


@pytest.mark.parametrize("mode", ["public_key", "certificate"])
async def test_refund_and_query_pass_both_ways(
    keys: Keys, wechat_url: str, receiver: Receiver, tmp_path: Path, mode: str
) -> None:
    pay = library(
        keys,
        wechat_url,
        notify_url=receiver.url,
        public_key=mode == "public_key",
        cert_dir=seeded_cert_dir(tmp_path, keys) if mode == "certificate" else None,
    )
    # The library raises 'failed to verify the signature' on any answer it cannot verify.
    code, refund = await call(
        pay.refund,
        out_refund_no=f"C-1-{mode}",
        amount={"refund": 1200, "total": 5000, "currency": "CNY"},
        transaction_id=TX,
        reason="卡密无效，已为您退款",
    )
    assert code == 200 and refund["status"] == "SUCCESS"
    assert refund["out_refund_no"] == f"C-1-{mode}" and refund["amount"]["refund"] == 1200
    code, queried = await call(pay.query_refund, f"C-1-{mode}")
    assert code == 200 and queried["refund_id"] == refund["refund_id"]

    # Its callback() accepts the sandbox's notification and decrypts it.
    await receiver.wait_for(1)
    headers, body = receiver.received[0]
    expected = PUBLIC_KEY_ID if mode == "public_key" else keys.cert_serial
    assert headers["wechatpay-serial"] == expected
    notice = await asyncio.to_thread(pay.callback, headers, body)
    assert notice is not None and notice["event_type"] == "REFUND.SUCCESS"
    assert notice["resource"]["out_refund_no"] == f"C-1-{mode}"
    assert notice["resource"]["refund_status"] == "SUCCESS"
    [recorded] = await ledger(wechat_url)
    assert recorded["amount"] == 1200 and recorded["reason"] == "卡密无效，已为您退款"


async def test_a_refund_by_out_trade_no_gets_wechats_own_transaction_id(
    keys: Keys, wechat_url: str
) -> None:
    pay = library(keys, wechat_url, public_key=True)
    code, refund = await call(
        pay.refund,
        out_refund_no="C-2",
        amount={"refund": 100, "total": 800, "currency": "CNY"},
        out_trade_no="KAMI-O-1001",
    )
    assert code == 200
    assert refund["out_trade_no"] == "KAMI-O-1001"
    tx = refund["transaction_id"]
    assert tx != "KAMI-O-1001" and len(tx) == 28 and tx.startswith("4200") and tx.isdigit()


async def test_certificates_are_downloaded_encrypted_and_a_rotation_followed(
    keys: Keys, wechat_url: str, tmp_path: Path
) -> None:
    cert_dir = seeded_cert_dir(tmp_path, keys)
    pay = library(keys, wechat_url, cert_dir=cert_dir)
    # What the library does with an empty cert_dir: GET /v3/certificates, decrypt each with
    # the APIv3 key, keep the valid ones (and write them to cert_dir as {serial}.pem).
    await asyncio.to_thread(pay._core._update_certificates)
    assert [f"{c.serial_number:X}" for c in pay._core._certificates] == [keys.cert_serial]

    # WeChat rotates: the next answer is signed by a certificate the library has not seen;
    # it fetches /v3/certificates again and verifies.
    async with httpx.AsyncClient() as http:
        rotated = (await http.post(f"{wechat_url}/sandbox/certificates", json={})).json()
    new_serial = rotated["signing_certificate"]
    code, refund = await call(
        pay.refund,
        out_refund_no="C-3",
        amount={"refund": 100, "total": 500, "currency": "CNY"},
        transaction_id=TX,
    )
    assert code == 200 and refund["status"] == "SUCCESS"
    assert (cert_dir / f"{new_serial}.pem").exists()


@pytest.mark.parametrize("mode", ["public_key", "certificate"])
async def test_abnormal_refund_with_encrypted_bank_fields(
    keys: Keys, wechat_url: str, receiver: Receiver, tmp_path: Path, mode: str
) -> None:
    pay = library(
        keys,
        wechat_url,
        notify_url=receiver.url,
        public_key=mode == "public_key",
        cert_dir=seeded_cert_dir(tmp_path, keys) if mode == "certificate" else None,
    )
    await arm(wechat_url, "abnormal")
    code, refund = await call(
        pay.refund,
        out_refund_no=f"C-4-{mode}",
        amount={"refund": 900, "total": 900, "currency": "CNY"},
        transaction_id=TX,
    )
    assert code == 200 and refund["status"] == "ABNORMAL"
    # The library encrypts bank_account and real_name (RSA-OAEP) for its public key or newest
    # certificate and names it in Wechatpay-Serial; the sandbox must read them.
    code, rescued = await call(
        pay.abnormal_refund,
        refund["refund_id"],
        f"C-4-{mode}",
        "USER_BANK_CARD",
        bank_type="ICBC_DEBIT",
        bank_account="6222021234567890123",
        real_name="张三",
    )
    assert code == 200 and rescued["status"] == "PROCESSING"
    [recorded] = await ledger(wechat_url)
    assert recorded["rescue"] == {
        "type": "USER_BANK_CARD",
        "bank_type": "ICBC_DEBIT",
        "bank_account": "***************0123",
        "real_name": "张*",
    }
    # ABNORMAL, then SUCCESS once the bank card received it: both announced, both verified.
    await receiver.wait_for(2)
    events = [
        (await asyncio.to_thread(pay.callback, headers, body))["event_type"]
        for headers, body in receiver.received
    ]
    assert events == ["REFUND.ABNORMAL", "REFUND.SUCCESS"]

    # Refusals the library reports as the gateway's error codes.
    code, unknown = await call(pay.abnormal_refund, "50999", f"C-4-{mode}", "MERCHANT_BANK_CARD")
    assert (code, unknown["code"]) == (404, "RESOURCE_NOT_EXISTS")
    code, again = await call(
        pay.abnormal_refund, refund["refund_id"], f"C-4-{mode}", "MERCHANT_BANK_CARD"
    )
    assert (code, again["code"]) == (400, "INVALID_REQUEST")  # SUCCESS now, not ABNORMAL


async def test_migration_notifications_signed_with_either_pass_the_library(
    keys: Keys, wechat_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    """A merchant on the public key while WeChat still signs some notifications with a
    certificate: the library downloads the certificate and verifies both kinds."""
    async with httpx.AsyncClient() as http:
        await http.put(f"{wechat_url}/sandbox/signing", json={"notifications": "either"})
    pay = library(keys, wechat_url, notify_url=receiver.url, public_key=True)
    for n in range(12):
        await call(
            pay.refund,
            out_refund_no=f"C-5-{n}",
            amount={"refund": 10, "total": 500, "currency": "CNY"},
            transaction_id=TX,
        )
    await receiver.wait_for(12)
    serials = set()
    for headers, body in receiver.received:
        notice = await asyncio.to_thread(pay.callback, headers, body)
        assert notice is not None and notice["resource"]["refund_status"] == "SUCCESS"
        serials.add(headers["wechatpay-serial"])
    assert serials == {PUBLIC_KEY_ID, keys.cert_serial}


async def test_the_library_refuses_a_bad_signature_fault(keys: Keys, wechat_url: str) -> None:
    pay = library(keys, wechat_url, public_key=True)
    await arm(wechat_url, "bad_signature")
    with pytest.raises(Exception, match="failed to verify the signature"):
        await call(
            pay.refund,
            out_refund_no="C-6",
            amount={"refund": 100, "total": 500, "currency": "CNY"},
            transaction_id=TX,
        )
    [recorded] = await ledger(wechat_url)  # refunded all the same: the fault is realistic
    assert recorded["status"] == "SUCCESS"


# --- 2. our adapter against the library's signatures -------------------------------------------


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
