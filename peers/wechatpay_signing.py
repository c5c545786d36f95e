"""WeChat Pay v3's signatures and encryption (see `peers.signing`).

Requests carry a WECHATPAY2-SHA256-RSA2048 `Authorization` header signed with the merchant
key; answers and notifications carry `Wechatpay-*` headers signed by a platform certificate
or the WeChat Pay public key; notification resources (and downloaded certificates) are
AEAD_AES_256_GCM-encrypted with the APIv3 key; sensitive request fields are RSA-OAEP
encrypted for the platform. Pure functions, shared by our client and the sandbox gateway.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from peers.rsa_keys import rsa_sign, rsa_verify

WECHATPAY_AUTH_SCHEMA = "WECHATPAY2-SHA256-RSA2048"


class DecryptionFailed(ValueError):
    """The notification resource did not decrypt: wrong key, nonce, or tampered ciphertext."""


def new_nonce() -> str:
    """32 random alphanumeric characters, as WeChat Pay's examples use."""
    return secrets.token_hex(16).upper()


def wechatpay_request_message(
    method: str, url_path: str, timestamp: str, nonce: str, body: bytes
) -> bytes:
    """`METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n`; GET requests sign an empty body."""
    head = f"{method.upper()}\n{url_path}\n{timestamp}\n{nonce}\n".encode()
    return head + body + b"\n"


def wechatpay_response_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """What the platform signs on answers and notifications: `TIMESTAMP\\nNONCE\\nBODY\\n`."""
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


@dataclass(frozen=True)
class WechatpayAuthorization:
    mchid: str
    nonce_str: str
    signature: str
    timestamp: str
    serial_no: str


def wechatpay_authorization(
    private_key: rsa.RSAPrivateKey,
    *,
    mchid: str,
    serial_no: str,
    method: str,
    url_path: str,
    body: bytes,
    timestamp: str | None = None,
    nonce: str | None = None,
) -> str:
    """The `Authorization` header value for a WeChat Pay v3 request."""
    timestamp = timestamp or str(int(time.time()))
    nonce = nonce or new_nonce()
    signature = rsa_sign(
        private_key, wechatpay_request_message(method, url_path, timestamp, nonce, body)
    )
    return (
        f'{WECHATPAY_AUTH_SCHEMA} mchid="{mchid}",nonce_str="{nonce}",'
        f'signature="{signature}",timestamp="{timestamp}",serial_no="{serial_no}"'
    )


def parse_wechatpay_authorization(header: str) -> WechatpayAuthorization | None:
    """Parse an `Authorization` header; None when it is not a well-formed WeChat Pay one."""
    schema, _, rest = header.strip().partition(" ")
    if schema != WECHATPAY_AUTH_SCHEMA:
        return None
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or len(value) < 2 or value[0] != '"' or value[-1] != '"':
            return None
        fields[key] = value[1:-1]
    try:
        return WechatpayAuthorization(
            mchid=fields["mchid"],
            nonce_str=fields["nonce_str"],
            signature=fields["signature"],
            timestamp=fields["timestamp"],
            serial_no=fields["serial_no"],
        )
    except KeyError:
        return None


def wechatpay_sign_response(
    private_key: rsa.RSAPrivateKey,
    *,
    serial_no: str,
    body: bytes,
    timestamp: str | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The `Wechatpay-*` headers the platform puts on an answer or a notification."""
    timestamp = timestamp or str(int(time.time()))
    nonce = nonce or new_nonce()
    return {
        "Wechatpay-Signature-Type": WECHATPAY_AUTH_SCHEMA,
        "Wechatpay-Timestamp": timestamp,
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": rsa_sign(
            private_key, wechatpay_response_message(timestamp, nonce, body)
        ),
        "Wechatpay-Serial": serial_no,
    }


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive lookup that also works on plain dicts (httpx/starlette are already)."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, candidate in headers.items():
        if key.lower() == lowered:
            return candidate
    return None


def wechatpay_verify_response(
    public_key: rsa.RSAPublicKey,
    headers: Mapping[str, str],
    body: bytes,
    *,
    expected_serial: str | None = None,
    max_skew_seconds: int | None = 300,
    now: float | None = None,
) -> bool:
    """Check the platform's signature on an answer or notification.

    A timestamp more than `max_skew_seconds` away is refused, as WeChat Pay advises, so that a
    recorded notification cannot be replayed days later.
    """
    timestamp = _header(headers, "Wechatpay-Timestamp")
    nonce = _header(headers, "Wechatpay-Nonce")
    signature = _header(headers, "Wechatpay-Signature")
    serial = _header(headers, "Wechatpay-Serial")
    if not timestamp or not nonce or not signature or not serial:
        return False
    if expected_serial is not None and not hmac.compare_digest(serial, expected_serial):
        return False
    if max_skew_seconds is not None:
        try:
            skew = abs((time.time() if now is None else now) - int(timestamp))
        except ValueError:
            return False
        if skew > max_skew_seconds:
            return False
    return rsa_verify(public_key, wechatpay_response_message(timestamp, nonce, body), signature)


def wechatpay_decrypt(
    apiv3_key: str, *, nonce: str, associated_data: str, ciphertext: str
) -> bytes:
    """Decrypt a notification `resource` (AEAD_AES_256_GCM; ciphertext is base64 with the tag)."""
    key = apiv3_key.encode("utf-8")
    if len(key) != 32:
        raise DecryptionFailed("the APIv3 key must be 32 bytes")
    try:
        return AESGCM(key).decrypt(
            nonce.encode("utf-8"),
            base64.b64decode(ciphertext, validate=True),
            associated_data.encode("utf-8") or None,
        )
    except (InvalidTag, ValueError) as exc:
        raise DecryptionFailed("notification resource did not decrypt") from exc


def wechatpay_encrypt(
    apiv3_key: str, plaintext: bytes, *, associated_data: str, nonce: str | None = None
) -> dict[str, str]:
    """The inverse of `wechatpay_decrypt`, for the sandbox: returns a `resource` object."""
    nonce = nonce or secrets.token_hex(6)  # WeChat uses 12-character nonces
    ciphertext = AESGCM(apiv3_key.encode("utf-8")).encrypt(
        nonce.encode("utf-8"), plaintext, associated_data.encode("utf-8") or None
    )
    return {
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": base64.b64encode(ciphertext).decode("ascii"),
        "associated_data": associated_data,
        "nonce": nonce,
    }


def wechatpay_encrypt_sensitive(public_key: rsa.RSAPublicKey, text: str) -> str:
    """A sensitive request field (bank account, real name) for WeChat Pay: RSAES-OAEP with
    SHA-1 and MGF1-SHA-1 under the platform's public key, base64 (only WeChat can read it)."""
    ciphertext = public_key.encrypt(
        text.encode("utf-8"),
        padding.OAEP(
            mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None
        ),
    )
    return base64.b64encode(ciphertext).decode("ascii")


def wechatpay_decrypt_sensitive(private_key: rsa.RSAPrivateKey, ciphertext_b64: str) -> str:
    """The inverse of `wechatpay_encrypt_sensitive`, for the sandbox gateway; raises
    `DecryptionFailed` when the field was not encrypted for this key."""
    try:
        plaintext = private_key.decrypt(
            base64.b64decode(ciphertext_b64, validate=True),
            padding.OAEP(
                mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None
            ),
        )
        return plaintext.decode("utf-8")
    except ValueError as exc:  # bad base64, wrong key, not UTF-8
        raise DecryptionFailed("sensitive field did not decrypt") from exc
