"""The sandbox WeChat Pay gateway's own keys: platform certificates and the WeChat Pay public key.

Like the real gateway it holds one or more platform certificates (the valid one that expires
last signs) and, for merchants that have moved to it, the WeChat Pay public key (`PUB_KEY_ID_...`).
An answer is signed with the public key when the request names it in `Wechatpay-Serial`,
otherwise with the current certificate; notifications are signed the way the refund's request
asked, or, to play a merchant's migration, with either at random.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from peers.signing import new_self_signed_certificate, wechatpay_encrypt

__all__ = ["NotificationSigning", "SandboxPlatformKeys", "Signer"]

# How notifications are signed: as the refund's request asked (public key if it named it),
# always with a certificate, always with the public key, or either at random (migration).
NotificationSigning = Literal["request", "certificate", "public_key", "either"]

_CST = timezone(timedelta(hours=8))


@dataclass(frozen=True)
class Signer:
    serial: str  # what goes in Wechatpay-Serial
    private_key: rsa.RSAPrivateKey

    @property
    def is_public_key(self) -> bool:
        return self.serial.startswith("PUB_KEY_ID_")


class SandboxPlatformKeys:
    def __init__(
        self,
        certificates: list[tuple[x509.Certificate, rsa.RSAPrivateKey]],
        public_key: tuple[str, rsa.RSAPrivateKey] | None = None,
        *,
        notification_signing: NotificationSigning = "request",
    ) -> None:
        if not certificates:
            raise ValueError("the sandbox needs a platform certificate")
        self.certificates = list(certificates)
        self.public_key = Signer(*public_key) if public_key else None
        self.notification_signing: NotificationSigning = notification_signing
        self._random = random.Random()

    # --- signing -------------------------------------------------------------------------------

    def certificate_signer(self) -> Signer:
        """The valid certificate that expires last (the newest after a rotation)."""
        now = datetime.now(UTC)
        valid = [
            (cert, key)
            for cert, key in self.certificates
            if cert.not_valid_before_utc <= now <= cert.not_valid_after_utc
        ] or self.certificates
        cert, key = max(valid, key=lambda pair: pair[0].not_valid_after_utc)
        return Signer(f"{cert.serial_number:X}", key)

    def names_public_key(self, request_serial: str | None) -> bool:
        return self.public_key is not None and request_serial == self.public_key.serial

    def for_answer(self, request_serial: str | None) -> Signer:
        """WeChat signs with the public key only for requests that name it."""
        if self.public_key is not None and self.names_public_key(request_serial):
            return self.public_key
        return self.certificate_signer()

    def for_notification(self, requested_public_key: bool) -> Signer:
        mode = self.notification_signing
        if mode == "either":
            mode = self._random.choice(["certificate", "public_key"])
        if mode == "request":
            mode = "public_key" if requested_public_key else "certificate"
        if mode == "public_key" and self.public_key is not None:
            return self.public_key
        return self.certificate_signer()

    # --- sensitive fields ----------------------------------------------------------------------

    def decryption_key(self, serial: str) -> rsa.RSAPrivateKey | None:
        """The private half of the key a request's `Wechatpay-Serial` names, if it is ours."""
        if self.public_key is not None and serial == self.public_key.serial:
            return self.public_key.private_key
        try:
            number = int(serial, 16)
        except ValueError:
            return None
        for cert, key in self.certificates:
            if cert.serial_number == number:
                return key
        return None

    # --- certificates --------------------------------------------------------------------------

    def rotate(self, *, valid_days: int = 5 * 365) -> x509.Certificate:
        """Issue a new platform certificate (new key), which signs from now on; the old ones
        stay valid until they expire, as during WeChat's own rotations."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        newest = max(cert.not_valid_after_utc for cert, _ in self.certificates)
        now = datetime.now(UTC)
        not_after = max(now + timedelta(days=valid_days), newest + timedelta(seconds=1))
        cert = new_self_signed_certificate(
            key,
            common_name="Sandbox WeChat Pay platform certificate (rotated)",
            not_before=now - timedelta(minutes=1),
            not_after=not_after,
        )
        self.certificates.append((cert, key))
        return cert

    def certificates_document(self, apiv3_key: str) -> dict[str, object]:
        """`GET /v3/certificates`: every certificate, encrypted with the merchant's APIv3 key."""
        data = []
        for cert, _ in self.certificates:
            pem = cert.public_bytes(serialization.Encoding.PEM)
            encrypted = wechatpay_encrypt(apiv3_key, pem, associated_data="certificate")
            data.append(
                {
                    "serial_no": f"{cert.serial_number:X}",
                    "effective_time": _beijing(cert.not_valid_before_utc),
                    "expire_time": _beijing(cert.not_valid_after_utc),
                    "encrypt_certificate": encrypted,
                }
            )
        return {"data": data}

    def describe(self) -> dict[str, object]:
        return {
            "certificates": [
                {
                    "serial_no": f"{cert.serial_number:X}",
                    "effective_time": _beijing(cert.not_valid_before_utc),
                    "expire_time": _beijing(cert.not_valid_after_utc),
                }
                for cert, _ in self.certificates
            ],
            "signing_certificate": self.certificate_signer().serial,
            "public_key_id": self.public_key.serial if self.public_key else None,
            "notifications": self.notification_signing,
        }


def _beijing(moment: datetime) -> str:
    return moment.astimezone(_CST).isoformat(timespec="seconds")
