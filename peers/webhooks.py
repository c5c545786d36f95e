"""Signatures on the webhooks we POST to the shop platform (CONTRACT "Platform notifications").

`X-Refund-Signature: sha256=<hex HMAC-SHA256 of the raw body>`: the platform recomputes it over
the bytes it received, so the body must be sent exactly as signed (no re-serialisation).
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["SIGNATURE_HEADER", "sign_webhook", "verify_webhook"]

SIGNATURE_HEADER = "X-Refund-Signature"
_PREFIX = "sha256="


def sign_webhook(secret: str, body: bytes) -> str:
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return _PREFIX + digest


def verify_webhook(secret: str, body: bytes, header: str | None) -> bool:
    """Constant-time check, so the comparison does not leak how much of a guess was right."""
    if not header or not header.startswith(_PREFIX):
        return False
    return hmac.compare_digest(sign_webhook(secret, body), header.strip())
