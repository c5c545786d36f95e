"""wechatpayv3 2.0.4 as a merchant against the sandbox WeChat Pay gateway, in certificate mode
(`cert_dir`, `/v3/certificates`) and public-key mode (`public_key`/`public_key_id`): its
request signatures must pass the sandbox, the sandbox's answers and notifications must pass
its verification (`callback()`), and its encrypted bank fields must decrypt at the sandbox."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from wechatpayv3 import WeChatPay, WeChatPayType

from tests.contract.conftest import TX, Receiver
from tests.peers.conftest import APIV3_KEY, MCHID, MERCHANT_SERIAL, PUBLIC_KEY_ID, Keys

pytestmark = [
    pytest.mark.contract,
    # The library's own use of cryptography's naive-datetime properties (its code, not ours).
    pytest.mark.filterwarnings("ignore:Properties that return a na"),
]


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
