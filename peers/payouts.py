"""What every payment gateway client answers, whatever its protocol.

The refund workflow must tell four situations apart, and each gateway spells them
differently. Only the first two are *knowledge*; the last two are the absence of it:

* the gateway took the request (`GatewayRefund`, whose `state` says whether the money already
  moved, will settle later, was CLOSED or is ABNORMAL) — from a verified answer;
* the gateway refused for a business reason that a retry cannot fix (`GatewayRefused`: the
  trade is closed, the amount exceeds what is refundable...) — from a *verified* answer only,
  so it may send the money down another route;
* the gateway could not be reached or failed internally (`GatewayUnavailable`: timeout, 5xx,
  Alipay 20000 / ACQ.SYSTEM_ERROR, WeChat SYSTEM_ERROR / FREQUENCY_LIMITED): the request may
  or may not have been processed; retry with the *same* refund number, which both gateways
  make idempotent;
* an answer arrived but cannot be trusted (`AnswerUntrusted`: a signature that fails, an
  unsigned error, an unknown signing key, a clock too far off): the outcome is unknown, and
  unknown is never "refused" — the refund is verified by a signed query, never paid again
  elsewhere.

Every error keeps the gateway's `code` and `sub_code`, for the timeline, the payout record and
the SRE looking at it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from domain.types import PaymentChannel, PayoutState

__all__ = [
    "NOT_FOUND",
    "AbnormalRefundRequest",
    "AnswerUntrusted",
    "GatewayError",
    "GatewayRefund",
    "GatewayRefused",
    "GatewayUnavailable",
    "Gateways",
    "PayoutGateway",
    "RefundOrder",
    "RescuesAbnormalRefunds",
    "SignatureInvalid",
    "UnknownChannel",
    "fen_to_yuan",
    "yuan_to_fen",
]

# `raw_status` of a query answer when the gateway has no refund under that number (state
# PENDING): the refund request never arrived, so sending it again with the same number is safe.
NOT_FOUND = "NOT_FOUND"


class GatewayRefund(BaseModel):
    """One refund as the gateway sees it."""

    model_config = ConfigDict(frozen=True)

    # SUCCEEDED, PROCESSING, CLOSED, ABNORMAL; PENDING: not found on query; UNKNOWN: the
    # gateway answered with something that says neither (e.g. a query without a status).
    state: PayoutState
    gateway_refund_id: str | None = None
    amount: int  # fen
    raw_status: str  # the gateway's own word, for the timeline and for SREs


class GatewayError(Exception):
    """Something other than a clean answer; `code`/`sub_code` are the gateway's own words."""

    def __init__(self, code: str, message: str = "", *, sub_code: str | None = None) -> None:
        super().__init__(code, message, sub_code)
        self.code = code
        self.message = message
        self.sub_code = sub_code

    @property
    def codes(self) -> str:
        """`code` or `code/sub_code`: what the payout record and the timeline keep."""
        return f"{self.code}/{self.sub_code}" if self.sub_code else self.code

    def __str__(self) -> str:
        return f"{self.codes}: {self.message}" if self.message else self.codes

    def __reduce__(self) -> tuple[object, ...]:
        # Keep every field when the exception is pickled (e.g. across process pools).
        return (_rebuild, (type(self), self.code, self.message, self.sub_code))


def _rebuild(
    cls: type[GatewayError], code: str, message: str, sub_code: str | None
) -> GatewayError:
    error = cls.__new__(cls)
    GatewayError.__init__(error, code, message, sub_code=sub_code)
    return error


class GatewayRefused(GatewayError):
    """A verified business refusal: retrying the same request will be refused again."""


class GatewayUnavailable(GatewayError):
    """A transient failure; the request may have been processed. Retry the same number."""

    def __init__(
        self, message: str, code: str = "UNAVAILABLE", *, sub_code: str | None = None
    ) -> None:
        super().__init__(code, message, sub_code=sub_code)

    def __str__(self) -> str:
        return self.message if self.code == "UNAVAILABLE" else super().__str__()


class AnswerUntrusted(GatewayError):
    """An answer whose authenticity is not established: the outcome is unknown."""


class SignatureInvalid(AnswerUntrusted):
    """An answer or notification whose signature does not verify: never act on it."""

    def __init__(
        self,
        message: str = "signature does not verify",
        code: str = "SIGNATURE_INVALID",
        *,
        sub_code: str | None = None,
    ) -> None:
        super().__init__(code, message, sub_code=sub_code)


# --- the gateway interface ---------------------------------------------------------------


@dataclass(frozen=True)
class RefundOrder:
    """One refund as every route needs it; `out_refund_no` is the idempotency key."""

    out_refund_no: str
    transaction_id: str | None  # the payment at the gateway (None for balance)
    amount: int  # fen to refund
    payment_total: int  # fen the payment was for
    currency: str
    reason: str  # a sentence the buyer may be shown (WeChat shows it), not a code


@runtime_checkable
class PayoutGateway(Protocol):
    """A route money goes back through. Implementations speak their gateway's protocol and
    raise the errors above; they never decide what happens next (the workflow does)."""

    channel: PaymentChannel
    # True when the money moves inside our own books (platform balance): no outside call,
    # the payout is settled in the same transaction that records its intent.
    instant: bool

    async def send_refund(self, order: RefundOrder) -> GatewayRefund:
        """Ask for the refund; repeating the same `out_refund_no` must never pay twice."""
        ...

    async def query_refund(self, order: RefundOrder) -> GatewayRefund:
        """Where the refund stands; state PENDING (raw NOT_FOUND) when the gateway has none."""
        ...


@dataclass(frozen=True)
class AbnormalRefundRequest:
    """WeChat's abnormal-refund call: where the stuck money goes instead. Bank fields arrive
    already encrypted for the gateway (never in clear text in workflow history)."""

    to: str  # USER_BANK_CARD | MERCHANT_BANK_CARD
    bank_type: str | None = None
    bank_account: str | None = None  # encrypted
    real_name: str | None = None  # encrypted
    encrypted_with: str | None = None  # serial of the key that encrypted them


@runtime_checkable
class RescuesAbnormalRefunds(Protocol):
    """A gateway whose refunds can end ABNORMAL and be sent elsewhere by an explicit call."""

    async def rescue_abnormal_refund(
        self, order: RefundOrder, gateway_refund_id: str, request: AbnormalRefundRequest
    ) -> GatewayRefund: ...


class UnknownChannel(LookupError):
    """A payout names a channel no gateway is registered for: configuration, not input."""

    def __init__(self, channel: str) -> None:
        super().__init__(f"no payout gateway is registered for channel {channel!r}")
        self.channel = channel


class Gateways(Mapping[PaymentChannel, PayoutGateway]):
    """The routes by channel: the one place a new payment route is registered."""

    def __init__(self, gateways: Iterable[PayoutGateway]) -> None:
        self._by_channel: dict[PaymentChannel, PayoutGateway] = {}
        for gateway in gateways:
            if gateway.channel in self._by_channel:
                raise ValueError(f"two gateways for {gateway.channel}")
            self._by_channel[gateway.channel] = gateway

    def __getitem__(self, channel: PaymentChannel | str) -> PayoutGateway:
        try:
            return self._by_channel[PaymentChannel(channel)]
        except (KeyError, ValueError):
            raise UnknownChannel(str(channel)) from None

    def __iter__(self) -> Iterator[PaymentChannel]:
        return iter(self._by_channel)

    def __len__(self) -> int:
        return len(self._by_channel)


# --- amounts ----------------------------------------------------------------------------

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
