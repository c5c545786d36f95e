"""RSA keys and SHA256withRSA, as both gateways use them (see `peers.signing`).

Loading PEM keys; making the dev keypairs and the sandbox's self-signed WeChat Pay platform
certificate (idempotent, so the dev launcher and every test may call it); signing and
verifying with SHA256withRSA (PKCS#1 v1.5), what Alipay calls RSA2 and WeChat Pay
SHA256-RSA2048.
"""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

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
