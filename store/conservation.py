"""Money conservation: for every order, the money sent back — every route, balance included,
and gateway refunds still processing, unverified or ABNORMAL — never exceeds what was paid.

The ledger balances by construction (every post is double-entry), so it cannot see a buyer
paid twice through two routes; this check can. Only a verified refusal (FAILED) or a
verified CLOSED proves that a payout moved no money; everything else counts as money out,
because "we don't know" must never hide an over-refund."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.types import PaymentChannel, PayoutState
from store.models import PaymentRow, PayoutRow, RefundRow

__all__ = ["GATEWAY_MOVED", "MONEY_OUT_STATES", "Breach", "PayoutLine", "breaches"]

# Payout states that may have moved money (or still may), in our records...
MONEY_OUT_STATES = frozenset(s for s in PayoutState if not s.allows_another_route)
# ...and in a gateway's answer to a query (PENDING there means "no such refund").
GATEWAY_MOVED = frozenset({PayoutState.SUCCEEDED, PayoutState.PROCESSING, PayoutState.ABNORMAL})


@dataclass(frozen=True)
class PayoutLine:
    out_refund_no: str
    refund_id: str
    channel: PaymentChannel
    state: PayoutState
    amount: int


@dataclass(frozen=True)
class Breach:
    order_id: str
    paid: int
    refunded: int  # money out, as counted above
    payouts: tuple[PayoutLine, ...]

    @property
    def excess(self) -> int:
        return self.refunded - self.paid

    def describe(self) -> str:
        routes = ", ".join(
            f"{p.out_refund_no} {p.channel} {p.state} {p.amount}" for p in self.payouts
        )
        return (
            f"order {self.order_id}: {self.refunded} out of {self.paid} paid "
            f"({self.excess} too much): {routes}"
        )


async def breaches(
    session: AsyncSession,
    *,
    order_ids: Collection[str] | None = None,
    gateway_says: Mapping[str, PayoutState] | None = None,
) -> list[Breach]:
    """Orders whose money out exceeds money in. `gateway_says` (out_refund_no -> state, from a
    reconciliation's queries) counts a payout as out when the gateway holds it as moved even
    if our record says it did not."""
    gateway_says = gateway_says or {}
    query = (
        select(
            RefundRow.order_id,
            PayoutRow.out_refund_no,
            PayoutRow.refund_id,
            PayoutRow.channel,
            PayoutRow.state,
            PayoutRow.amount,
        )
        .join(RefundRow, RefundRow.refund_id == PayoutRow.refund_id)
        .order_by(RefundRow.order_id, PayoutRow.created_at)
    )
    if order_ids is not None:
        if not order_ids:
            return []
        query = query.where(RefundRow.order_id.in_(list(order_ids)))
    out: dict[str, list[PayoutLine]] = {}
    for order_id, no, refund_id, channel, state, amount in (await session.execute(query)).all():
        out.setdefault(order_id, []).append(PayoutLine(no, refund_id, channel, state, amount))
    if not out:
        return []
    paid = dict(
        (
            await session.execute(
                select(PaymentRow.order_id, func.sum(PaymentRow.amount))
                .where(PaymentRow.order_id.in_(list(out)))
                .group_by(PaymentRow.order_id)
            )
        ).all()
    )
    found: list[Breach] = []
    for order_id, payouts in out.items():
        refunded = sum(
            p.amount
            for p in payouts
            if p.state in MONEY_OUT_STATES or gateway_says.get(p.out_refund_no) in GATEWAY_MOVED
        )
        if refunded > int(paid.get(order_id) or 0):
            found.append(Breach(order_id, int(paid.get(order_id) or 0), refunded, tuple(payouts)))
    return found
