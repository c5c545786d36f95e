"""Balance holds (`domain.holds`) on the books, each in the transaction of the step it
belongs to:

- **held** when the refund is stored (`store.refunds.insert_refund`, the intake's own
  transaction): the asked amount, capped at what the order paid from balance and is neither
  paid back nor held for another of its refunds, moves `merchant:{m}:settlement` →
  `merchant:{m}:held` (txn `refund:{id}:hold`);
- **spent** when a balance payout of the refund is recorded (`post_payout`, the payout's own
  ledger transaction): it draws from the hold first and from settlement only for the rest, so
  the merchant is debited once;
- **released** when the refund's report says it ended (`follow_status`, in the report's
  transaction): what the payout did not take goes back to settlement (txn
  `refund:{id}:release`). An appeal of a rejection holds again (round 2), as the commissions
  are frozen again: the money may go back to the buyer after all.

Every move is guarded twice: by the row's state, changed in the same transaction, and by the
ledger's transaction id, so a retried step posts nothing new."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.holds import HoldState, Remaining, balance_paid, to_hold
from domain.order import Order
from domain.types import PaymentChannel, RefundStatus
from store import ledger
from store.conservation import MONEY_OUT_STATES
from store.hold_rows import BalanceHoldRow
from store.models import PaymentRow, PayoutRow, RefundRow

__all__ = [
    "MerchantBalance",
    "follow_status",
    "hold",
    "merchant_balance",
    "post_payout",
    "total_held",
]


def hold_txn(refund_id: str, round_: int) -> str:
    return f"refund:{refund_id}:hold" + (f":{round_}" if round_ > 1 else "")


def release_txn(refund_id: str, round_: int) -> str:
    return f"refund:{refund_id}:release" + (f":{round_}" if round_ > 1 else "")


async def hold(
    session: AsyncSession, *, refund_id: str, order: Order, asked: int, now: datetime
) -> int:
    """Hold what a new refund may pay back to balance; how much was held (0: nothing to hold,
    or held before). Orders paid only through gateways cost no query."""
    paid = balance_paid(order.payments)
    if paid <= 0 or asked <= 0:
        return 0
    if await session.get(BalanceHoldRow, refund_id) is not None:
        return 0  # held when it was stored
    amount = to_hold(
        asked, paid_from_balance=paid, taken=await _taken(session, order.order_id, refund_id)
    )
    if amount <= 0:
        return 0
    row = BalanceHoldRow(
        refund_id=refund_id,
        order_id=order.order_id,
        merchant_id=order.merchant_id,
        currency=order.currency,
        amount=0,
        spent=0,
        released=0,
        state=HoldState.HELD,
        round=1,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await _shift(session, row, amount, hold_txn(refund_id, 1), now, "held for refund")
    return amount


async def post_payout(
    session: AsyncSession,
    *,
    txn_id: str,
    refund_id: str,
    merchant_id: str,
    to: str,
    amount: int,
    currency: str,
    from_hold: bool,
    now: datetime,
    memo: str,
) -> None:
    """The merchant funds a refund's payout: a balance payout (`from_hold`) out of the
    refund's hold first, the rest (and any other payout) out of settlement."""
    held = await session.get(BalanceHoldRow, refund_id, with_for_update=True) if from_hold else None
    drawn = 0
    if held is not None and held.state is HoldState.HELD:
        drawn = _remaining(held).draw(amount)
    posted = await ledger.post(
        session,
        txn_id,
        {
            ledger.merchant_settlement(merchant_id): -(amount - drawn),
            ledger.merchant_held(merchant_id): -drawn,
            to: amount,
        },
        currency=currency,
        now=now,
        refund_id=refund_id,
        memo=memo,
    )
    if posted and held is not None and drawn:
        held.spent += drawn
        held.state = HoldState.SPENT if _remaining(held).left == 0 else HoldState.HELD
        held.updated_at = now


async def follow_status(
    session: AsyncSession, *, refund_id: str, status: RefundStatus, now: datetime
) -> None:
    """The refund's status changed (a report applied in this transaction): an end releases
    what the hold still keeps; a rejected refund that is appealed (live again) holds again."""
    held = await session.get(BalanceHoldRow, refund_id, with_for_update=True)
    if held is None:
        return
    if status.is_terminal:
        if held.state is not HoldState.HELD:
            return
        left = _remaining(held).left
        await _shift(session, held, -left, release_txn(refund_id, held.round), now, "refund ended")
        held.state = HoldState.RELEASED
    elif held.state is HoldState.RELEASED:
        refund = await session.get(RefundRow, refund_id)
        assert refund is not None
        paid = await _paid_from_balance(session, held.order_id)
        taken = await _taken(session, held.order_id, refund_id)
        again = to_hold(refund.amount, paid_from_balance=paid, taken=taken)
        if again > 0:
            held.round += 1
            await _shift(session, held, again, hold_txn(refund_id, held.round), now, "appealed")
            held.state = HoldState.HELD


@dataclass(frozen=True)
class MerchantBalance:
    merchant_id: str
    currency: str
    settlement: int  # what the platform owes the merchant, held money included
    held: int  # set aside for refunds being decided
    available: int  # what the merchant may withdraw: settlement less the holds, never < 0


async def merchant_balance(
    session: AsyncSession, merchant_id: str, currency: str
) -> MerchantBalance:
    free = await ledger.balance(session, ledger.merchant_settlement(merchant_id), currency)
    held = await ledger.balance(session, ledger.merchant_held(merchant_id), currency)
    return MerchantBalance(merchant_id, currency, free + held, held, max(0, free))


async def total_held(session: AsyncSession) -> dict[str, int]:
    """Per currency, what live holds keep from merchants (the `kami_balance_held` gauge)."""
    rows = await session.execute(
        select(
            BalanceHoldRow.currency,
            func.sum(BalanceHoldRow.amount - BalanceHoldRow.spent - BalanceHoldRow.released),
        )
        .where(BalanceHoldRow.state == HoldState.HELD)
        .group_by(BalanceHoldRow.currency)
    )
    return {currency: int(total or 0) for currency, total in rows.all()}


# ------------------------------------------------------------------------------ helpers
def _remaining(row: BalanceHoldRow) -> Remaining:
    return Remaining(amount=row.amount, spent=row.spent, released=row.released)


async def _shift(
    session: AsyncSession,
    row: BalanceHoldRow,
    amount: int,
    txn_id: str,
    now: datetime,
    why: str,
) -> None:
    """Settlement → held (`amount` > 0: the hold grows) or back (< 0: released)."""
    merchant = row.merchant_id
    await ledger.post(
        session,
        txn_id,
        {ledger.merchant_settlement(merchant): -amount, ledger.merchant_held(merchant): amount},
        currency=row.currency,
        now=now,
        refund_id=row.refund_id,
        memo=f"balance hold: {why}",
    )
    if amount > 0:
        row.amount += amount
    else:
        row.released -= amount
    row.updated_at = now


async def _paid_from_balance(session: AsyncSession, order_id: str) -> int:
    total = await session.scalar(
        select(func.sum(PaymentRow.amount)).where(
            PaymentRow.order_id == order_id, PaymentRow.channel == PaymentChannel.BALANCE
        )
    )
    return int(total or 0)


async def _taken(session: AsyncSession, order_id: str, refund_id: str) -> int:
    """Of an order's balance payments, what other refunds paid back (or may have: every state
    that may have moved money) and what their live holds still keep."""
    balance_payments = select(PaymentRow.payment_id).where(
        PaymentRow.order_id == order_id, PaymentRow.channel == PaymentChannel.BALANCE
    )
    paid_back = await session.scalar(
        select(func.sum(PayoutRow.amount))
        .join(RefundRow, RefundRow.refund_id == PayoutRow.refund_id)
        .where(
            RefundRow.order_id == order_id,
            PayoutRow.refund_id != refund_id,
            PayoutRow.payment_id.in_(balance_payments),
            PayoutRow.state.in_(MONEY_OUT_STATES),
        )
    )
    kept = await session.scalar(
        select(
            func.sum(BalanceHoldRow.amount - BalanceHoldRow.spent - BalanceHoldRow.released)
        ).where(
            BalanceHoldRow.order_id == order_id,
            BalanceHoldRow.refund_id != refund_id,
            BalanceHoldRow.state == HoldState.HELD,
        )
    )
    return int(paid_back or 0) + int(kept or 0)
