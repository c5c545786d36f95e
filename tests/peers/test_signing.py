"""The signature primitives both the clients and the sandbox gateways rely on."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from config.settings import Settings
from peers.payouts import fen_to_yuan, yuan_to_fen
from peers.signing import (
    SANDBOX_WECHAT_CERT_FILE,
    DecryptionFailed,
    alipay_sign,
    alipay_sign_content,
    alipay_verify,
    ensure_keypair,
    ensure_sandbox_keys,
    load_public_key,
    parse_wechatpay_authorization,
    rsa_verify,
    wechatpay_authorization,
    wechatpay_decrypt,
    wechatpay_encrypt,
    wechatpay_request_message,
    wechatpay_sign_response,
    wechatpay_verify_response,
)
from tests.peers.conftest import APIV3_KEY, Keys


def test_ensure_keypair_is_idempotent(tmp_path: Path) -> None:
    private, public = tmp_path / "k" / "a.pem", tmp_path / "k" / "a.pub.pem"
    ensure_keypair(private, public)
    first = private.read_bytes(), public.read_bytes()
    ensure_keypair(private, public)
    assert (private.read_bytes(), public.read_bytes()) == first
    assert private.stat().st_mode & 0o077 == 0  # the private key is not world-readable


def test_sandbox_keys_use_the_settings_file_names(keys: Keys) -> None:
    names = {p.name for pair in keys.paths.values() for p in pair}
    defaults = Settings()
    configured = {
        Path(path).name
        for path in (
            defaults.alipay_private_key_path,
            defaults.alipay_public_key_path,
            defaults.wechat_private_key_path,
            defaults.wechat_public_key_path,
        )
    }
    assert configured <= names
    assert len(names) == 10
    [certificate] = defaults.wechat_platform_cert_paths()
    assert (keys.dir / Path(certificate).name).exists()


def test_sandbox_certificate_is_kept_until_it_no_longer_fits(tmp_path: Path) -> None:
    paths = ensure_sandbox_keys(tmp_path)
    cert_path = tmp_path / SANDBOX_WECHAT_CERT_FILE
    first = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert first.public_key() == load_public_key(paths["wechat_platform"][1])
    assert first.not_valid_after_utc > datetime.now(UTC) + timedelta(days=365)
    ensure_sandbox_keys(tmp_path)
    assert x509.load_pem_x509_certificate(cert_path.read_bytes()) == first
    # A new platform key gets a new certificate (random serial).
    for path in paths["wechat_platform"]:
        path.unlink()
    ensure_sandbox_keys(tmp_path)
    second = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert second.serial_number != first.serial_number
    assert second.public_key() == load_public_key(paths["wechat_platform"][1])


def test_alipay_canonical_string_sorts_and_skips_sign_and_empty_values() -> None:
    params = {"b": "2", "a": "1", "sign": "xyz", "empty": "", "sign_type": "RSA2"}
    assert alipay_sign_content(params) == "a=1&b=2&sign_type=RSA2"
    assert alipay_sign_content(params, exclude=frozenset({"sign_type"})) == "a=1&b=2"


def test_alipay_signature_round_trip_and_tamper(keys: Keys) -> None:
    params = {"app_id": "1", "biz_content": json.dumps({"refund_amount": "50.00"})}
    signature = alipay_sign(keys.private("alipay_app"), params)
    assert alipay_verify(keys.public("alipay_app"), params, signature)
    assert not alipay_verify(keys.public("alipay_app"), {**params, "app_id": "2"}, signature)
    assert not alipay_verify(keys.public("alipay_platform"), params, signature)
    assert not alipay_verify(keys.public("alipay_app"), params, "not base64!")


def test_wechatpay_authorization_header_signs_the_documented_message(keys: Keys) -> None:
    header = wechatpay_authorization(
        keys.private("wechat_merchant"),
        mchid="1900000001",
        serial_no="SERIAL",
        method="GET",
        url_path="/v3/refund/domestic/refunds/R-1?x=1",
        body=b"",
        timestamp="1554208460",
        nonce="593BEC0C930BF1AFEB40B4A08C8FB242",
    )
    assert header.startswith('WECHATPAY2-SHA256-RSA2048 mchid="1900000001",nonce_str="593B')
    auth = parse_wechatpay_authorization(header)
    assert auth is not None and auth.serial_no == "SERIAL" and auth.timestamp == "1554208460"
    message = wechatpay_request_message(
        "GET", "/v3/refund/domestic/refunds/R-1?x=1", "1554208460", auth.nonce_str, b""
    )
    assert message == (
        b"GET\n/v3/refund/domestic/refunds/R-1?x=1\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n"
    )
    assert rsa_verify(keys.public("wechat_merchant"), message, auth.signature)
    assert parse_wechatpay_authorization("Bearer abc") is None


def test_wechatpay_response_signature_and_replay_window(keys: Keys) -> None:
    body = b'{"status":"SUCCESS"}'
    headers = wechatpay_sign_response(keys.private("wechat_platform"), serial_no="P", body=body)
    public = keys.public("wechat_platform")
    assert wechatpay_verify_response(public, headers, body, expected_serial="P")
    lowered = {k.lower(): v for k, v in headers.items()}
    assert wechatpay_verify_response(public, lowered, body)
    assert not wechatpay_verify_response(public, headers, body + b" ")
    assert not wechatpay_verify_response(public, headers, body, expected_serial="OTHER")
    late = float(headers["Wechatpay-Timestamp"]) + 3600
    assert not wechatpay_verify_response(public, headers, body, now=late)


def test_aead_aes_256_gcm_round_trip_and_tamper() -> None:
    resource = wechatpay_encrypt(
        APIV3_KEY, b'{"refund_status":"SUCCESS"}', associated_data="refund"
    )
    assert resource["algorithm"] == "AEAD_AES_256_GCM"
    plain = wechatpay_decrypt(
        APIV3_KEY,
        nonce=resource["nonce"],
        associated_data="refund",
        ciphertext=resource["ciphertext"],
    )
    assert json.loads(plain) == {"refund_status": "SUCCESS"}
    with pytest.raises(DecryptionFailed):
        wechatpay_decrypt(
            APIV3_KEY,
            nonce=resource["nonce"],
            associated_data="transaction",  # associated data is authenticated too
            ciphertext=resource["ciphertext"],
        )
    with pytest.raises(DecryptionFailed):
        wechatpay_decrypt(
            "f" * 32,
            nonce=resource["nonce"],
            associated_data="refund",
            ciphertext=resource["ciphertext"],
        )


@pytest.mark.parametrize(
    ("fen", "yuan"), [(5000, "50.00"), (1, "0.01"), (0, "0.00"), (123456789, "1234567.89")]
)
def test_amounts_convert_only_at_the_alipay_boundary(fen: int, yuan: str) -> None:
    assert fen_to_yuan(fen) == yuan
    assert yuan_to_fen(yuan) == fen


def test_yuan_with_fractions_of_a_fen_is_refused() -> None:
    with pytest.raises(ValueError):
        yuan_to_fen("1.005")
    with pytest.raises(ValueError):
        yuan_to_fen("abc")
