"""The keys WeChat Pay signs with, chosen as WeChat chooses them: by `Wechatpay-Serial`.

WeChat Pay signs answers and notifications with one of two kinds of key:

* a **platform certificate** (X.509, serial in hex, with an expiry; several may be valid at
  once around a rotation, and new ones are downloaded from `GET /v3/certificates`, encrypted
  with the merchant's APIv3 key);
* the **WeChat Pay public key** (id `PUB_KEY_ID_...`), which merchants have been moving to since
  2024. WeChat signs an answer with it only when the request names it in `Wechatpay-Serial`;
  during a merchant's migration it signs notifications with either kind.

Every answer and notification names its key in `Wechatpay-Serial`; one signed under a serial we
do not know, by a certificate that is not valid today, or with a timestamp further off than the
allowed clock skew is refused as `SignatureInvalid` (outcome unknown, never "refused") with a
`sub_code` that says which.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from peers.payouts import SignatureInvalid
from peers.signing import WECHATPAY_AUTH_SCHEMA, rsa_verify, wechatpay_response_message

__all__ = [
    "DEFAULT_MAX_CLOCK_SKEW_SECONDS",
    "PUBLIC_KEY_ID_PREFIX",
    "PlatformCertificate",
    "WechatPayKeys",
    "certificate_serial",
    "is_public_key_id",
    "load_certificates",
]

PUBLIC_KEY_ID_PREFIX = "PUB_KEY_ID_"
DEFAULT_MAX_CLOCK_SKEW_SECONDS = 300

# `sub_code`s of the SignatureInvalid raised here, for the payout record and the SRE.
UNSIGNED = "UNSIGNED"  # a Wechatpay-* header is missing
SIGNATURE_TYPE = "SIGNATURE_TYPE"  # not WECHATPAY2-SHA256-RSA2048
UNKNOWN_SERIAL = "UNKNOWN_SERIAL"  # no certificate or public key under that serial
CERTIFICATE_EXPIRED = "CERTIFICATE_EXPIRED"  # or not yet valid
BAD_SIGNATURE = "BAD_SIGNATURE"  # the key is known; the signature does not verify
CLOCK_SKEW = "CLOCK_SKEW"  # verified, but the timestamp is too far from our clock


def is_public_key_id(serial: str) -> bool:
    return serial.startswith(PUBLIC_KEY_ID_PREFIX)


def certificate_serial(certificate: x509.Certificate) -> str:
    """The serial as WeChat writes it: upper-case hex."""
    return f"{certificate.serial_number:X}"


def _serial_number(serial: str) -> int | None:
    """A certificate serial as a number (hex, any case, leading zeros or not); None if not hex."""
    text = serial.strip()
    if not text or len(text) > 64 or not all(c in "0123456789abcdefABCDEF" for c in text):
        return None
    return int(text, 16)


@dataclass(frozen=True)
class PlatformCertificate:
    serial_number: int
    public_key: rsa.RSAPublicKey
    not_before: datetime
    not_after: datetime

    @classmethod
    def of(cls, certificate: x509.Certificate) -> PlatformCertificate:
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise TypeError("a WeChat Pay platform certificate holds an RSA key")
        return cls(
            serial_number=certificate.serial_number,
            public_key=key,
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
        )

    @property
    def serial(self) -> str:
        return f"{self.serial_number:X}"

    def valid_at(self, moment: datetime) -> bool:
        return self.not_before <= moment <= self.not_after


def load_certificates(paths: Iterable[str | Path]) -> list[x509.Certificate]:
    """Certificates from PEM files (one or several certificates each) and directories (every
    `*.pem` in them that holds certificates; key files next to them are skipped)."""
    found: list[x509.Certificate] = []
    for path in map(Path, paths):
        if path.is_dir():
            for file in sorted(path.glob("*.pem")):
                data = file.read_bytes()
                if b"-----BEGIN CERTIFICATE-----" in data:
                    found.extend(x509.load_pem_x509_certificates(data))
        else:
            found.extend(x509.load_pem_x509_certificates(path.read_bytes()))
    return found


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, candidate in headers.items():
        if key.lower() == lowered:
            return candidate
    return None


class WechatPayKeys:
    """The platform certificates and/or the WeChat Pay public key one merchant trusts.

    With a public key configured, requests name it (`request_serial`), so WeChat signs answers
    with it; certificates configured next to it keep verifying what WeChat still signs with
    them (notifications during a migration).
    """

    def __init__(
        self,
        *,
        certificates: Iterable[x509.Certificate | PlatformCertificate] = (),
        public_key: rsa.RSAPublicKey | None = None,
        public_key_id: str | None = None,
        max_clock_skew_seconds: int = DEFAULT_MAX_CLOCK_SKEW_SECONDS,
    ) -> None:
        if (public_key is None) != (not public_key_id):
            raise ValueError("the WeChat Pay public key and its id go together")
        if public_key_id and not is_public_key_id(public_key_id):
            raise ValueError(f"a WeChat Pay public key id starts with {PUBLIC_KEY_ID_PREFIX}")
        self._certificates: dict[int, PlatformCertificate] = {}
        self.add_certificates(certificates)
        if not self._certificates and public_key is None:
            raise ValueError("WeChat Pay needs a platform certificate or its public key")
        self._public_key = public_key
        self._public_key_id = public_key_id or None
        self.max_clock_skew_seconds = max_clock_skew_seconds

    @property
    def public_key_id(self) -> str | None:
        """What every request names in `Wechatpay-Serial` (None: certificates only)."""
        return self._public_key_id

    @property
    def certificates(self) -> list[PlatformCertificate]:
        return sorted(self._certificates.values(), key=lambda c: c.not_after)

    def add_certificates(
        self, certificates: Iterable[x509.Certificate | PlatformCertificate]
    ) -> int:
        """Trust these certificates too (from configuration or `/v3/certificates`); returns
        how many were new."""
        added = 0
        for certificate in certificates:
            platform = (
                certificate
                if isinstance(certificate, PlatformCertificate)
                else PlatformCertificate.of(certificate)
            )
            if platform.serial_number not in self._certificates:
                added += 1
            self._certificates[platform.serial_number] = platform
        return added

    def knows(self, serial: str) -> bool:
        if self._public_key_id is not None and hmac.compare_digest(serial, self._public_key_id):
            return True
        number = _serial_number(serial)
        return number is not None and number in self._certificates

    def key_for(self, serial: str, *, now: datetime | None = None) -> rsa.RSAPublicKey:
        """The key WeChat signed with under `serial`, or SignatureInvalid saying why not."""
        if self._public_key is not None and self._public_key_id is not None:
            if hmac.compare_digest(serial, self._public_key_id):
                return self._public_key
        number = None if is_public_key_id(serial) else _serial_number(serial)
        certificate = self._certificates.get(number) if number is not None else None
        if certificate is None:
            raise SignatureInvalid(
                f"wechat signed with {serial!r}, which is no certificate or public key we know",
                sub_code=UNKNOWN_SERIAL,
            )
        if not certificate.valid_at(now or datetime.now(UTC)):
            raise SignatureInvalid(
                f"wechat platform certificate {certificate.serial} is valid only from "
                f"{certificate.not_before:%Y-%m-%d} to {certificate.not_after:%Y-%m-%d}",
                sub_code=CERTIFICATE_EXPIRED,
            )
        return certificate.public_key

    def verify(self, headers: Mapping[str, str], body: bytes, *, now: float | None = None) -> str:
        """Check an answer's or notification's signature; return the serial it was signed
        under, or raise SignatureInvalid with the reason as `sub_code`."""
        timestamp = _header(headers, "Wechatpay-Timestamp")
        nonce = _header(headers, "Wechatpay-Nonce")
        signature = _header(headers, "Wechatpay-Signature")
        serial = _header(headers, "Wechatpay-Serial")
        if not timestamp or not nonce or not signature or not serial:
            raise SignatureInvalid("wechat answer is not signed", sub_code=UNSIGNED)
        signature_type = _header(headers, "Wechatpay-Signature-Type")
        if signature_type is not None and signature_type != WECHATPAY_AUTH_SCHEMA:
            raise SignatureInvalid(
                f"wechat signature type {signature_type!r} is not supported",
                sub_code=SIGNATURE_TYPE,
            )
        moment = time.time() if now is None else now
        key = self.key_for(serial, now=datetime.fromtimestamp(moment, UTC))
        if not rsa_verify(key, wechatpay_response_message(timestamp, nonce, body), signature):
            raise SignatureInvalid(
                f"wechat signature under {serial} does not verify", sub_code=BAD_SIGNATURE
            )
        try:
            skew = abs(moment - int(timestamp))
        except ValueError:
            skew = float("inf")
        if skew > self.max_clock_skew_seconds:
            # Signed by WeChat, but stale (or our clock is off): a replay cannot be told from
            # a late answer, so nothing in it is acted on.
            raise SignatureInvalid(
                f"wechat timestamp {timestamp} is {skew:.0f} s from our clock "
                f"(allowed: {self.max_clock_skew_seconds} s)",
                sub_code=CLOCK_SKEW,
            )
        return serial

    def encryption_key(self, *, now: datetime | None = None) -> tuple[rsa.RSAPublicKey, str]:
        """(key, serial) for a sensitive field: the public key when configured, else the
        valid certificate that expires last (as WeChat's SDKs choose)."""
        if self._public_key is not None and self._public_key_id is not None:
            return self._public_key, self._public_key_id
        moment = now or datetime.now(UTC)
        valid = [c for c in self.certificates if c.valid_at(moment)]
        if not valid:
            raise LookupError("no valid WeChat Pay platform certificate to encrypt for")
        newest = valid[-1]
        return newest.public_key, newest.serial
