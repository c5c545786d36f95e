"""Distributors' commissions while a refund is open: frozen on submission, clawed back
pro rata when money goes back, released when it does not (DOMAIN.md "Money"). Every move
posts to the ledger and the audit chain and tells the distributor, in the caller's
transaction; a repeated move (an activity retried) posts nothing new."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from config.crashpoints import crashpoint
from domain.refund import CommissionView
from domain.types import CommissionAction, CommissionState
from store import audit, ledger, outbox
from store.models import CommissionRow, LedgerEntryRow, RefundCommissionRow
from store.upsert import insert_ignore


def pro_rata(share: int, refund_amount: int, order_amount: int) -> int:
    """The part of a commission that a refund takes back, rounded down to the fen so the
    sum over refunds never exceeds the commission."""
    if order_amount <= 0:
        return 0
    return min(share, share * refund_amount // order_amount)


@dataclass(frozen=True)
class _Move:
    refund_id: str
    order_id: str
    merchant_id: str
    currency: str
    action: CommissionAction
    refund_amount: int
    order_amount: int
    now: datetime


async def move_commissions(
    session: AsyncSession,
    *,
    refund_id: str,
    order_id: str,
    merchant_id: str,
    currency: str,
    action: CommissionAction,
    refund_amount: int,
    order_amount: int,
    now: datetime,
) -> list[CommissionView]:
    """Freeze (creating the refund's shares, pro rata of `refund_amount / order_amount`),
    claw back or release every share of the refund's order commissions; the shares as they
    stand after the move. A claw-back of shares never frozen (a refund that paid out before
    it ever had to wait) takes them straight from the distributor's available commission."""
    req = _Move(
        refund_id, order_id, merchant_id, currency, action, refund_amount, order_amount, now
    )
    shares = (
        await session.scalars(
            select(CommissionRow)
            .where(CommissionRow.order_id == order_id)
            .order_by(CommissionRow.level, CommissionRow.beneficiary_id)
        )
    ).all()
    if action is not CommissionAction.RELEASE:
        # The refund's shares: created frozen, or (claw-back) as earned when nothing froze
        # them; shares that exist already stay as they are.
        start = (
            CommissionState.FROZEN if action is CommissionAction.FREEZE else CommissionState.EARNED
        )
        await insert_ignore(
            session,
            RefundCommissionRow,
            [
                {
                    "refund_id": refund_id,
                    "beneficiary_id": s.beneficiary_id,
                    "level": s.level,
                    "amount": pro_rata(s.amount, refund_amount, order_amount),
                    "state": start,
                    "updated_at": now,
                }
                for s in shares
            ],
        )
    rows = (
        await session.scalars(
            select(RefundCommissionRow)
            .where(RefundCommissionRow.refund_id == refund_id)
            .order_by(RefundCommissionRow.level, RefundCommissionRow.beneficiary_id)
        )
    ).all()
    for row in rows:
        await _move(session, req, row)
    return [
        CommissionView(
            beneficiary_id=r.beneficiary_id, level=r.level, amount=r.amount, state=r.state
        )
        for r in rows
    ]


async def _move(session: AsyncSession, req: _Move, row: RefundCommissionRow) -> None:
    now = req.now
    who = row.beneficiary_id
    # Each step's ledger transaction is named after the step: a retry posts nothing new.
    # The appeal cycle (freeze, release, freeze again) gets its own names via `cycle`; a share
    # never frozen has none.
    cycle = 0 if row.state is CommissionState.EARNED else await _cycle(session, req.refund_id, who)
    if row.state is CommissionState.EARNED and req.action is CommissionAction.CLAW_BACK:
        posted = await ledger.post(
            session,
            f"refund:{req.refund_id}:commission:{who}:{row.level}:claw_back",
            {
                ledger.commission_available(who): -row.amount,
                ledger.merchant_settlement(req.merchant_id): row.amount,
            },
            currency=req.currency,
            now=now,
            refund_id=req.refund_id,
            memo="commission clawed back pro rata (the refund paid out at once)",
        )
        crashpoint("commissions.claw_back")
        left = await ledger.balance(session, ledger.commission_available(who), req.currency)
        row.state = CommissionState.DEBT if left < 0 else CommissionState.CLAWED_BACK
    elif req.action is CommissionAction.FREEZE:
        if row.state not in (CommissionState.FROZEN, CommissionState.RELEASED):
            return
        posted = await ledger.post(
            session,
            f"refund:{req.refund_id}:commission:{who}:{row.level}:freeze:{cycle}",
            {
                ledger.commission_available(who): -row.amount,
                ledger.commission_frozen(who): row.amount,
            },
            currency=req.currency,
            now=now,
            refund_id=req.refund_id,
            memo="commission frozen while the refund is open",
        )
        row.state = CommissionState.FROZEN
    elif row.state is CommissionState.FROZEN and req.action is CommissionAction.RELEASE:
        posted = await ledger.post(
            session,
            f"refund:{req.refund_id}:commission:{who}:{row.level}:release:{cycle}",
            {
                ledger.commission_frozen(who): -row.amount,
                ledger.commission_available(who): row.amount,
            },
            currency=req.currency,
            now=now,
            refund_id=req.refund_id,
            memo="commission released: no refund",
        )
        row.state = CommissionState.RELEASED
    elif row.state is CommissionState.FROZEN and req.action is CommissionAction.CLAW_BACK:
        # A reviewer may have approved less than was frozen: take back the pro-rata part
        # of what is refunded, give the rest back.
        frozen = row.amount
        share = await session.scalar(
            select(CommissionRow.amount).where(
                CommissionRow.order_id == req.order_id,
                CommissionRow.beneficiary_id == who,
                CommissionRow.level == row.level,
            )
        )
        take = min(frozen, pro_rata(share or 0, req.refund_amount, req.order_amount))
        posted = await ledger.post(
            session,
            f"refund:{req.refund_id}:commission:{who}:{row.level}:claw_back",
            {
                ledger.commission_frozen(who): -frozen,
                ledger.commission_available(who): frozen - take,
                ledger.merchant_settlement(req.merchant_id): take,
            },
            currency=req.currency,
            now=now,
            refund_id=req.refund_id,
            memo="commission clawed back pro rata",
        )
        # A worker dying here has posted, not committed, and appended nothing to the audit
        # chain (on PostgreSQL an appended-then-lost entry would leave a gap in its sequence).
        crashpoint("commissions.claw_back")
        row.amount = take
        # Frozen money the distributor had already withdrawn left the account negative:
        # that is a debt they owe, shown as such.
        left = await ledger.balance(session, ledger.commission_available(who), req.currency)
        row.state = CommissionState.DEBT if left < 0 else CommissionState.CLAWED_BACK
    else:
        return
    row.updated_at = now
    if posted:
        await audit.append(
            session,
            event_key=f"commission:{req.refund_id}:{who}:{row.level}:{req.action.value}:{cycle}",
            actor="worker",
            action=f"commission.{req.action.value}",
            subject=f"refund:{req.refund_id}",
            payload={"beneficiary_id": who, "amount": row.amount, "state": row.state},
            at=now,
        )
        await outbox.notify_upline(
            session,
            refund_id=req.refund_id,
            order_id=req.order_id,
            beneficiary_id=who,
            action=req.action.value,
            # Distinct per step: freeze, release, freeze again after an appeal, claw-back.
            step=-(10 * cycle + list(CommissionAction).index(req.action) + 1),
            amount=row.amount,
            state=row.state,
            currency=req.currency,
            now=now,
        )


async def _cycle(session: AsyncSession, refund_id: str, who: str) -> int:
    """How many times this commission was released before (an appeal freezes it again)."""
    n = await session.scalar(
        select(func.count())
        .select_from(LedgerEntryRow)
        .where(
            LedgerEntryRow.refund_id == refund_id,
            LedgerEntryRow.account == ledger.commission_available(who),
            LedgerEntryRow.txn_id.like(f"refund:{refund_id}:commission:{who}:%:release:%"),
        )
    )
    return int(n or 0)
