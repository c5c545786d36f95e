"""The buyer's link to their progress page: `/r/{refund_id}?t={expiry}.{hmac}`, an HMAC-SHA256
over the refund id and the expiry with `BUYER_LINK_SECRET`. No key, no account: whoever holds
the link sees that one refund, until it expires. Forms on the page carry a token derived from
the link (`form_token`), so a form replayed without it is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from domain.model import utcnow

MAX_TOKEN = 200


class LinkCheck(StrEnum):
    OK = "ok"
    EXPIRED = "expired"
    FORGED = "forged"  # missing, malformed, or not signed with our secret for this refund


def _mac(secret: str, purpose: str, *parts: str) -> str:
    message = "|".join(("kami-refunds", purpose, *parts)).encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign(secret: str, refund_id: str, expires_at: datetime) -> str:
    expiry = str(int(expires_at.timestamp()))
    return f"{expiry}.{_mac(secret, 'buyer-page', refund_id, expiry)}"


def check(secret: str, refund_id: str, token: str | None, *, now: datetime) -> LinkCheck:
    """Forged before expired: an expiry is only believed once the signature holds."""
    if not token or len(token) > MAX_TOKEN or token.count(".") != 1:
        return LinkCheck.FORGED
    expiry, mac = token.split(".")
    if not expiry.isdigit() or not hmac.compare_digest(
        mac, _mac(secret, "buyer-page", refund_id, expiry)
    ):
        return LinkCheck.FORGED
    if int(expiry) <= now.timestamp():
        return LinkCheck.EXPIRED
    return LinkCheck.OK


def expires_at(token: str) -> datetime:
    return datetime.fromtimestamp(int(token.split(".")[0]), tz=UTC)


def form_token(secret: str, link_token: str) -> str:
    """The CSRF token of the page's forms: bound to the link, useless without it."""
    return _mac(secret, "buyer-form", link_token)


def form_token_ok(secret: str, link_token: str, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(sent or "", form_token(secret, link_token))


def mint(secret: str, base_url: str, refund_id: str, *, ttl: timedelta) -> tuple[str, datetime]:
    """A buyer's link to their progress page, valid for `ttl` (the API mints it for the
    platform; the worker puts one in each SMS and e-mail it sends the buyer)."""
    expires = utcnow() + ttl
    token = sign(secret, refund_id, expires)
    return f"{base_url.rstrip('/')}/r/{refund_id}?t={token}", expires_at(token)
