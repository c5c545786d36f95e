"""Throwaway WeChat Pay platform keys and certificates, and answers signed with them, for
the tests of how the client chooses and trusts WeChat's keys."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from peers.signing import new_self_signed_certificate, wechatpay_sign_response

BODY = b'{"status":"SUCCESS"}'


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
