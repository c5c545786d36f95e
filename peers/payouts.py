"""What every payment gateway client answers, whatever its protocol.

The refund workflow must tell three situations apart, and each gateway spells them
differently:

* the gateway took the request (`GatewayRefund`, whose `state` says whether the money already
  moved or will settle later);
* the gateway refused for a business reason that a retry cannot fix (`GatewayRefused`: the
  trade is closed, the amount exceeds what is refundable, our signature is wrong...): the
  activity turns it into a non-retryable error and the workflow falls back (e.g. to balance);
* the gateway could not be reached or failed internally (`GatewayUnavailable`): a plain
  exception so Temporal retries the activity with the *same* refund number, which is safe
  because both gateways are idempotent on it.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from pydantic import BaseModel, ConfigDict

from domain.types import PayoutState

__all__ = [
    "NOT_FOUND",
    "GatewayRefund",
    "GatewayRefused",
    "GatewayUnavailable",
    "SignatureInvalid",
    "fen_to_yuan",
    "yuan_to_fen",
]

# `raw_status` of a query answer when the gateway has no refund under that number (state
# PENDING): the refund request never arrived, so sending it again with the same number is safe.
NOT_FOUND = "NOT_FOUND"


class GatewayRefund(BaseModel):
    """One refund as the gateway sees it."""

    model_config = ConfigDict(frozen=True)

    state: PayoutState  # SUCCEEDED, PROCESSING, CLOSED, ABNORMAL (PENDING: not found on query)
    gateway_refund_id: str | None = None
    amount: int  # fen
    raw_status: str  # the gateway's own word, for the timeline and for SREs


class GatewayRefused(Exception):
    """A business refusal: retrying the same request will be refused again."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message

    def __reduce__(self) -> tuple[type[GatewayRefused], tuple[str, str]]:
        # Keep `code` when the exception is pickled (e.g. across process pools).
        return (type(self), (self.code, self.message))


class SignatureInvalid(GatewayRefused):
    """An answer or notification whose signature does not verify: never act on it."""

    def __init__(self, message: str = "signature does not verify") -> None:
        super().__init__("SIGNATURE_INVALID", message)

    def __reduce__(self) -> tuple[type[SignatureInvalid], tuple[str]]:  # type: ignore[override]
        return (type(self), (self.message,))


class GatewayUnavailable(Exception):
    """A transient failure (timeout, connection error, 5xx, SYSTEM_ERROR): retry later."""


_CENT = Decimal("0.01")


def fen_to_yuan(amount: int) -> str:
    """Alipay's amount format: 5000 -> "50.00". The only place fen become yuan."""
    if amount < 0:
        raise ValueError("amount must not be negative")
    return str((Decimal(amount) / 100).quantize(_CENT))


def yuan_to_fen(value: str) -> int:
    """ "50.00" -> 5000, refusing anything that is not a whole number of fen."""
    try:
        yuan = Decimal(value)
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {value!r}") from exc
    fen = yuan * 100
    if fen != fen.quantize(Decimal(1), rounding=ROUND_HALF_UP):
        raise ValueError(f"amount has fractions of a fen: {value!r}")
    return int(fen)
