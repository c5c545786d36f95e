"""WeChat Pay's keys as WeChat does them: platform certificates chosen by serial, with expiry,
several at once and refreshed from /v3/certificates; the WeChat Pay public key named on every
request; both during a migration; a clock-skew allowance."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI

from config.settings import SANDBOX_WECHAT_PUBLIC_KEY_ID, Settings
from domain.types import PayoutState
from peers.from_settings import wechat_client, wechat_keys
from peers.payouts import AbnormalRefundRequest, RefundOrder, SignatureInvalid
from peers.signing import (
    SANDBOX_WECHAT_CERT_FILE,
    ensure_sandbox_keys,
    new_self_signed_certificate,
    wechatpay_decrypt,
    wechatpay_sign_response,
)
from peers.wechat_keys import (
    BAD_SIGNATURE,
    CERTIFICATE_EXPIRED,
    CLOCK_SKEW,
    SIGNATURE_TYPE,
    UNKNOWN_SERIAL,
    UNSIGNED,
    WechatPayKeys,
    certificate_serial,
)
from peers.wechatpay import CERTIFICATES_PATH, WechatPayClient
from sandbox.wechat_platform import SandboxPlatformKeys
from sandbox.wechatpay import create_wechat_app
from tests.peers.conftest import (
    APIV3_KEY,
    MCHID,
    MERCHANT_SERIAL,
    PUBLIC_KEY_ID,
    Keys,
    NotificationReceiver,
    asgi_client,
    make_wechat,
)

TX = "4200001234202611200000009"
BODY = b'{"status":"SUCCESS"}'


def order(out_refund_no: str, amount: int = 500) -> RefundOrder:
    return RefundOrder(
        out_refund_no=out_refund_no,
        transaction_id=TX,
        amount=amount,
        payment_total=5000,
        currency="CNY",
        reason="卡密无效，已为您退款",
    )


def certificate(
    key: rsa.RSAPrivateKey, *, days_from: float = -1, days_to: float = 365
) -> x509.Certificate:
    now = datetime.now(UTC)
    return new_self_signed_certificate(
        key,
        common_name="test platform certificate",
        not_before=now + timedelta(days=days_from),
        not_after=now + timedelta(days=days_to),
    )


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def signed(key: rsa.RSAPrivateKey, serial: str, *, age: float = 0) -> dict[str, str]:
    return wechatpay_sign_response(
        key, serial_no=serial, body=BODY, timestamp=str(int(time.time() - age))
    )


def reason(headers: dict[str, str], keys: WechatPayKeys, body: bytes = BODY) -> str | None:
    with pytest.raises(SignatureInvalid) as raised:
        keys.verify(headers, body)
    return raised.value.sub_code


# --- choosing the key --------------------------------------------------------------------------


def test_each_answer_is_verified_with_the_certificate_its_serial_names() -> None:
    old_key, new_key_ = new_key(), new_key()
    old, new = certificate(old_key, days_to=30), certificate(new_key_, days_to=400)
    keys = WechatPayKeys(certificates=[old, new])
    assert keys.verify(signed(old_key, certificate_serial(old)), BODY) == certificate_serial(old)
    assert keys.verify(signed(new_key_, certificate_serial(new)), BODY)
    # Hex as WeChat writes it, or not: lower case and leading zeros name the same certificate.
    assert keys.verify(signed(old_key, "00" + certificate_serial(old).lower()), BODY)
    # The right key under the wrong serial is a bad signature, not a pass.
    assert reason(signed(old_key, certificate_serial(new)), keys) == BAD_SIGNATURE


def test_unknown_serials_are_refused_as_such() -> None:
    key = new_key()
    keys = WechatPayKeys(certificates=[certificate(key)])
    assert reason(signed(key, "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"), keys) == UNKNOWN_SERIAL
    assert reason(signed(key, "not-a-serial"), keys) == UNKNOWN_SERIAL
    assert reason(signed(key, PUBLIC_KEY_ID), keys) == UNKNOWN_SERIAL  # no public key here


@pytest.mark.parametrize(("days_from", "days_to"), [(-400, -1), (2, 400)])
def test_a_certificate_outside_its_validity_is_refused(days_from: float, days_to: float) -> None:
    key = new_key()
    cert = certificate(key, days_from=days_from, days_to=days_to)
    keys = WechatPayKeys(certificates=[cert])
    assert reason(signed(key, certificate_serial(cert)), keys) == CERTIFICATE_EXPIRED


def test_public_key_by_its_id_and_both_kinds_during_a_migration() -> None:
    cert_key, public_key = new_key(), new_key()
    cert = certificate(cert_key)
    public_only = WechatPayKeys(public_key=public_key.public_key(), public_key_id=PUBLIC_KEY_ID)
    both = WechatPayKeys(
        certificates=[cert], public_key=public_key.public_key(), public_key_id=PUBLIC_KEY_ID
    )
    assert public_only.public_key_id == PUBLIC_KEY_ID
    assert public_only.verify(signed(public_key, PUBLIC_KEY_ID), BODY) == PUBLIC_KEY_ID
    assert reason(signed(cert_key, certificate_serial(cert)), public_only) == UNKNOWN_SERIAL
    assert reason(signed(public_key, "PUB_KEY_ID_0119999999"), public_only) == UNKNOWN_SERIAL
    assert both.verify(signed(public_key, PUBLIC_KEY_ID), BODY) == PUBLIC_KEY_ID
    assert both.verify(signed(cert_key, certificate_serial(cert)), BODY)


def test_clock_skew_allowance_is_a_setting() -> None:
    key = new_key()
    cert = certificate(key)
    serial = certificate_serial(cert)
    default = WechatPayKeys(certificates=[cert])
    assert default.max_clock_skew_seconds == 300
    assert default.verify(signed(key, serial, age=290), BODY)
    assert reason(signed(key, serial, age=600), default) == CLOCK_SKEW
    assert reason(signed(key, serial, age=-600), default) == CLOCK_SKEW  # from the future
    strict = WechatPayKeys(certificates=[cert], max_clock_skew_seconds=60)
    assert reason(signed(key, serial, age=120), strict) == CLOCK_SKEW
    lenient = WechatPayKeys(certificates=[cert], max_clock_skew_seconds=900)
    assert lenient.verify(signed(key, serial, age=600), BODY)


def test_missing_headers_and_other_signature_types_are_refused() -> None:
    key = new_key()
    cert = certificate(key)
    keys = WechatPayKeys(certificates=[cert])
    headers = signed(key, certificate_serial(cert))
    assert headers["Wechatpay-Signature-Type"] == "WECHATPAY2-SHA256-RSA2048"
    for name in ("Wechatpay-Signature", "Wechatpay-Serial", "Wechatpay-Timestamp"):
        assert reason({k: v for k, v in headers.items() if k != name}, keys) == UNSIGNED
    sm2 = {**headers, "Wechatpay-Signature-Type": "WECHATPAY2-SM2-WITH-SM3"}
    assert reason(sm2, keys) == SIGNATURE_TYPE
    lower = {k.lower(): v for k, v in headers.items()}  # as a framework may hand them over
    assert keys.verify(lower, BODY)


def test_sensitive_fields_are_encrypted_for_the_public_key_else_the_newest_valid_certificate() -> (
    None
):
    a, b, c, public_key = new_key(), new_key(), new_key(), new_key()
    older = certificate(a, days_to=100)
    newer = certificate(b, days_to=300)
    expired = certificate(c, days_from=-900, days_to=-1)
    certificates_only = WechatPayKeys(certificates=[older, newer, expired])
    key, serial = certificates_only.encryption_key()
    assert serial == certificate_serial(newer)
    assert key.public_numbers() == b.public_key().public_numbers()
    with_public_key = WechatPayKeys(
        certificates=[older, newer], public_key=public_key.public_key(), public_key_id=PUBLIC_KEY_ID
    )
    assert with_public_key.encryption_key()[1] == PUBLIC_KEY_ID


def test_keys_refuse_to_be_built_wrong() -> None:
    public_key = new_key().public_key()
    with pytest.raises(ValueError):
        WechatPayKeys()  # nothing to verify with
    with pytest.raises(ValueError):
        WechatPayKeys(public_key=public_key)  # a public key without its id
    with pytest.raises(ValueError):
        WechatPayKeys(public_key=public_key, public_key_id="0119000000")  # not PUB_KEY_ID_


# --- against the sandbox -----------------------------------------------------------------------


class Recorder:
    """Keeps every request and answer that went through a client."""

    def __init__(self) -> None:
        self.exchanges: list[tuple[httpx.Request, httpx.Response]] = []

    async def __call__(self, response: httpx.Response) -> None:
        await response.aread()
        self.exchanges.append((response.request, response))

    def paths(self) -> list[str]:
        return [request.url.path for request, _ in self.exchanges]


@pytest.fixture
async def recorded(wechat_app: FastAPI) -> AsyncIterator[tuple[httpx.AsyncClient, Recorder]]:
    recorder = Recorder()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=wechat_app),
        base_url="http://wechat.test",
        event_hooks={"response": [recorder]},
    ) as http:
        yield http, recorder
    await wechat_app.state.ledger.cancel_tasks()


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


# --- settings ----------------------------------------------------------------------------------


def key_settings(directory: Path, **changes: object) -> Settings:
    return Settings(
        environment="test",
        wechat_private_key_path=str(directory / "wechat_merchant_private.pem"),
        wechat_platform_certs=str(directory / SANDBOX_WECHAT_CERT_FILE),
        wechat_public_key_path=str(directory / "wechat_pubkey_public.pem"),
        **changes,  # type: ignore[arg-type]
    )


def test_settings_default_to_both_kinds_of_key_of_the_sandbox(tmp_path: Path) -> None:
    ensure_sandbox_keys(tmp_path)
    settings = key_settings(tmp_path)
    assert settings.wechat_public_key_id == SANDBOX_WECHAT_PUBLIC_KEY_ID
    assert settings.wechat_clock_skew_seconds == 300
    keys = wechat_keys(settings)
    assert keys.public_key_id == SANDBOX_WECHAT_PUBLIC_KEY_ID
    [cert] = keys.certificates
    sandbox_cert = x509.load_pem_x509_certificate(
        (tmp_path / SANDBOX_WECHAT_CERT_FILE).read_bytes()
    )
    assert cert.serial == certificate_serial(sandbox_cert)
    # Certificates only: an empty public key id.
    assert wechat_keys(key_settings(tmp_path, wechat_public_key_id="")).public_key_id is None


async def test_settings_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ensure_sandbox_keys(tmp_path)
    other = tmp_path / "more"
    other.mkdir()
    extra = certificate(new_key())
    (other / f"{certificate_serial(extra)}.pem").write_bytes(
        extra.public_bytes(serialization.Encoding.PEM)
    )
    (other / "README.pem").write_text("not a certificate")  # skipped
    monkeypatch.setenv("WECHAT_PLATFORM_CERTS", f"{tmp_path / SANDBOX_WECHAT_CERT_FILE},{other}")
    monkeypatch.setenv("WECHAT_PUBLIC_KEY_PATH", str(tmp_path / "wechat_pubkey_public.pem"))
    monkeypatch.setenv("WECHAT_PUBLIC_KEY_ID", "PUB_KEY_ID_0112345678")
    monkeypatch.setenv("WECHAT_CLOCK_SKEW_SECONDS", "120")
    monkeypatch.setenv("WECHAT_PRIVATE_KEY_PATH", str(tmp_path / "wechat_merchant_private.pem"))
    settings = Settings()
    keys = wechat_keys(settings)
    assert len(keys.certificates) == 2 and keys.knows(certificate_serial(extra))
    assert keys.public_key_id == "PUB_KEY_ID_0112345678"
    assert keys.max_clock_skew_seconds == 120
    async with httpx.AsyncClient() as http:
        client = wechat_client(settings, http)
        assert isinstance(client, WechatPayClient)
        assert client.encrypt_sensitive("x")[1] == "PUB_KEY_ID_0112345678"


def test_settings_refuse_what_cannot_work(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="WECHAT_PLATFORM_CERTS"):
        Settings(wechat_platform_public_key_path="var/keys/wechat_platform_public.pem")
    monkeypatch.setenv("WECHAT_PLATFORM_PUBLIC_KEY_PATH", "/etc/wechat.pem")
    with pytest.raises(ValueError, match="no longer read"):
        Settings()
    monkeypatch.delenv("WECHAT_PLATFORM_PUBLIC_KEY_PATH")
    with pytest.raises(ValueError, match="PUB_KEY_ID_"):
        Settings(wechat_public_key_id="0112345678")
    with pytest.raises(ValueError, match="WECHAT_PLATFORM_CERTS or WECHAT_PUBLIC_KEY_ID"):
        Settings(wechat_public_key_id="", wechat_platform_certs="")
    with pytest.raises(ValueError, match="WECHAT_PUBLIC_KEY_ID must be set in production"):
        Settings(
            environment="production",
            supplier_secret="s",
            platform_webhook_secret="w",
            api_keys="k:admin",
        )
