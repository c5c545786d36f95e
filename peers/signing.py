"""Keys and signatures for the payment gateways' protocols.

Both gateways authenticate with RSA (SHA256withRSA, PKCS#1 v1.5) in both directions: we sign
requests with our private key, they sign answers with theirs. WeChat Pay v3 also encrypts the
body of its notifications with the merchant's APIv3 key (AEAD_AES_256_GCM). The functions here
are pure so that the clients in this package and the sandbox gateways share one implementation:
a mismatch between what we sign and what a gateway verifies shows up in the tests, not in
production.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

__all__ = [
    "SANDBOX_KEY_FILES",
    "SANDBOX_WECHAT_CERT_FILE",
    "WECHATPAY_AUTH_SCHEMA",
    "DecryptionFailed",
    "WechatpayAuthorization",
    "alipay_sign",
    "alipay_sign_content",
    "alipay_verify",
    "ensure_keypair",
    "ensure_sandbox_keys",
    "ensure_self_signed_certificate",
    "load_private_key",
    "load_public_key",
    "new_nonce",
    "new_self_signed_certificate",
    "parse_wechatpay_authorization",
    "rsa_sign",
    "rsa_verify",
    "wechatpay_authorization",
    "wechatpay_decrypt",
    "wechatpay_decrypt_sensitive",
    "wechatpay_encrypt",
    "wechatpay_encrypt_sensitive",
    "wechatpay_request_message",
    "wechatpay_response_message",
    "wechatpay_sign_response",
    "wechatpay_verify_response",
]

WECHATPAY_AUTH_SCHEMA = "WECHATPAY2-SHA256-RSA2048"

# The dev keypairs, by role, as config/settings.py names them under var/keys/.
# Each entry is (private file, public file).
SANDBOX_KEY_FILES: dict[str, tuple[str, str]] = {
    # Our Alipay app key: the service signs requests, the gateway verifies with the public half.
    "alipay_app": ("alipay_app_private.pem", "alipay_app_public.pem"),
    # Alipay's own key: the gateway signs answers, the service verifies with the public half.
    "alipay_platform": ("alipay_platform_private.pem", "alipay_platform_public.pem"),
    # Our WeChat Pay merchant key (APIv3 certificate key).
    "wechat_merchant": ("wechat_merchant_private.pem", "wechat_merchant_public.pem"),
    # WeChat Pay's platform certificate key (certificate: `SANDBOX_WECHAT_CERT_FILE`): signs
    # answers and notifications for merchants that verify with platform certificates.
    "wechat_platform": ("wechat_platform_private.pem", "wechat_platform_public.pem"),
    # The "WeChat Pay public key" (its id is `PUB_KEY_ID_...`): signs answers to requests that
    # name it in `Wechatpay-Serial`, and notifications to merchants that use it.
    "wechat_pubkey": ("wechat_pubkey_private.pem", "wechat_pubkey_public.pem"),
}
# The sandbox's self-signed WeChat Pay platform certificate, next to its private key.
SANDBOX_WECHAT_CERT_FILE = "wechat_platform_cert.pem"


class DecryptionFailed(ValueError):
    """The notification resource did not decrypt: wrong key, nonce, or tampered ciphertext."""


# --- keys -------------------------------------------------------------------------------------


def ensure_keypair(private_path: str | Path, public_path: str | Path) -> None:
    """Create a 2048-bit RSA keypair as PEM files unless both already exist.

    Idempotent so the dev launcher and every test can call it: regenerating an existing pair
    would silently break a running sandbox that loaded the old public key.
    """
    private_path, public_path = Path(private_path), Path(public_path)
    if private_path.exists() and public_path.exists():
        return
    private_path.parent.mkdir(parents=True, exist_ok=True)
    public_path.parent.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # Write to temporary names first so a concurrent reader never sees half a key.
    for path, data, mode in ((private_path, private_pem, 0o600), (public_path, public_pem, 0o644)):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        tmp.write_bytes(data)
        tmp.chmod(mode)
        tmp.replace(path)


def ensure_sandbox_keys(directory: str | Path) -> dict[str, tuple[Path, Path]]:
    """Create the dev keypairs (see `SANDBOX_KEY_FILES`) in `directory` if missing, and the
    WeChat Pay platform certificate (`SANDBOX_WECHAT_CERT_FILE`) for the platform key.

    Returns role -> (private path, public path).
    """
    directory = Path(directory)
    paths: dict[str, tuple[Path, Path]] = {}
    for role, (private_name, public_name) in SANDBOX_KEY_FILES.items():
        private_path, public_path = directory / private_name, directory / public_name
        ensure_keypair(private_path, public_path)
        paths[role] = (private_path, public_path)
    ensure_self_signed_certificate(
        paths["wechat_platform"][0],
        directory / SANDBOX_WECHAT_CERT_FILE,
        common_name="Sandbox WeChat Pay platform certificate",
    )
    return paths


def new_self_signed_certificate(
    private_key: rsa.RSAPrivateKey,
    *,
    common_name: str,
    not_before: datetime,
    not_after: datetime,
    serial_number: int | None = None,
) -> x509.Certificate:
    """A throwaway X.509 certificate for `private_key`, as a sandbox platform certificate.

    The serial is random (160 bits at most, like WeChat's 40-hex-digit serials) unless given.
    """
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kami-refunds sandbox"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(serial_number or x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(private_key, hashes.SHA256())
    )


def ensure_self_signed_certificate(
    private_path: str | Path,
    cert_path: str | Path,
    *,
    common_name: str,
    valid_days: int = 5 * 365,
) -> Path:
    """Create `cert_path` for the key in `private_path` unless a certificate for that key,
    valid today, is already there (a regenerated key or an expired certificate gets a new one)."""
    cert_path = Path(cert_path)
    private_key = load_private_key(private_path)
    if cert_path.exists():
        try:
            existing = x509.load_pem_x509_certificate(cert_path.read_bytes())
        except ValueError:
            existing = None
        now = datetime.now(UTC)
        if (
            existing is not None
            and existing.public_key() == private_key.public_key()
            and existing.not_valid_before_utc <= now < existing.not_valid_after_utc
        ):
            return cert_path
    now = datetime.now(UTC)
    certificate = new_self_signed_certificate(
        private_key,
        common_name=common_name,
        not_before=now - timedelta(days=1),
        not_after=now + timedelta(days=valid_days),
    )
    tmp = cert_path.with_name(f".{cert_path.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    tmp.replace(cert_path)
    return cert_path


def load_private_key(path_or_pem: str | Path | bytes) -> rsa.RSAPrivateKey:
    """Load an RSA private key from a PEM file path or PEM bytes."""
    data = path_or_pem if isinstance(path_or_pem, bytes) else Path(path_or_pem).read_bytes()
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError("expected an RSA private key")
    return key


def load_public_key(path_or_pem: str | Path | bytes) -> rsa.RSAPublicKey:
    """Load an RSA public key from a PEM file path or PEM bytes (SubjectPublicKeyInfo)."""
    data = path_or_pem if isinstance(path_or_pem, bytes) else Path(path_or_pem).read_bytes()
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, rsa.RSAPublicKey):
        raise TypeError("expected an RSA public key")
    return key


# --- SHA256withRSA ----------------------------------------------------------------------------


def rsa_sign(private_key: rsa.RSAPrivateKey, message: bytes) -> str:
    """SHA256withRSA (PKCS#1 v1.5), base64: what both gateways call RSA2 / SHA256-RSA2048."""
    signature = private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def rsa_verify(public_key: rsa.RSAPublicKey, message: bytes, signature_b64: str) -> bool:
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


# --- Alipay (RSA2) ----------------------------------------------------------------------------


def alipay_sign_content(params: Mapping[str, str], *, exclude: frozenset[str] = frozenset()) -> str:
    """Alipay's canonical string: `k=v` pairs sorted by key, joined by `&`.

    `sign` and empty values are always left out; callers verifying asynchronous notifications
    also exclude `sign_type` (Alipay's rule differs there from requests).
    """
    skip = exclude | {"sign"}
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k not in skip and params[k])


def alipay_sign(private_key: rsa.RSAPrivateKey, params: Mapping[str, str]) -> str:
    return rsa_sign(private_key, alipay_sign_content(params).encode("utf-8"))


def alipay_verify(public_key: rsa.RSAPublicKey, params: Mapping[str, str], signature: str) -> bool:
    return rsa_verify(public_key, alipay_sign_content(params).encode("utf-8"), signature)


# --- WeChat Pay v3 (WECHATPAY2-SHA256-RSA2048) ------------------------------------------------


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
