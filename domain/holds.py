"""Balance holds: while a refund of an order paid from the platform balance is being decided,
the part that may go back to the buyer's balance is set aside from the merchant's settlement
account, so the merchant cannot withdraw the same money the refund may pay.

Pure arithmetic; `store.holds` keeps the hold's row and posts its ledger moves."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from domain.order import Payment
from domain.types import PaymentChannel

__all__ = ["HoldState", "Remaining", "balance_paid", "to_hold"]


class HoldState(StrEnum):
    HELD = "held"  # set aside; some of it may already be spent on the refund's balance payout
    RELEASED = "released"  # the refund ended: what it did not pay went back to settlement
    SPENT = "spent"  # the balance payout took all of it


def balance_paid(payments: Iterable[Payment]) -> int:
    """What the buyer paid from their platform balance (duplicates included: paid is paid)."""
    return sum(p.amount for p in payments if p.channel is PaymentChannel.BALANCE)


def to_hold(asked: int, *, paid_from_balance: int, taken: int) -> int:
    """The asked amount, capped at what was paid from balance and is neither paid back yet nor
    held for another refund of the order (`taken`)."""
    return max(0, min(asked, paid_from_balance - taken))


@dataclass(frozen=True)
class Remaining:
    """One hold's arithmetic: `amount` set aside, of which `spent` paid the refund and
    `released` went back to the merchant."""

    amount: int
    spent: int
    released: int

    @property
    def left(self) -> int:
        return self.amount - self.spent - self.released

    def draw(self, payout: int) -> int:
        """How much of a balance payout comes out of the hold (the rest from settlement)."""
        return max(0, min(self.left, payout))
