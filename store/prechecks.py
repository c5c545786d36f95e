"""Buyers' pre-checks, and whether a refund followed (the reports' deflection figures)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.types import RefundReason
from store.incident_rows import PrecheckRow
from store.models import OrderRow, RefundRow
from store.report_figures import PrecheckFact


async def record_precheck(
    session: AsyncSession,
    *,
    precheck_id: str,
    caller: str,
    order_id: str,
    buyer_id: str,
    reason: RefundReason,
    outcome: str,
    rule: str,
    amount: int,
    currency: str,
    now: datetime,
) -> None:
    session.add(
        PrecheckRow(
            precheck_id=precheck_id,
            caller=caller,
            order_id=order_id,
            buyer_id=buyer_id,
            reason=reason,
            outcome=outcome,
            rule=rule,
            amount=amount,
            currency=currency,
            created_at=now,
        )
    )
    await session.flush()


async def prechecks_made(
    session: AsyncSession, start: datetime, end: datetime, merchant_id: str | None = None
) -> list[PrecheckFact]:
    """Pre-checks made in [start, end), each with whether the buyer then asked for a refund
    of the same order (at or after the pre-check; refunds an incident started do not count)."""
    followed = exists().where(
        RefundRow.order_id == PrecheckRow.order_id,
        RefundRow.buyer_id == PrecheckRow.buyer_id,
        RefundRow.created_at >= PrecheckRow.created_at,
        RefundRow.incident_id.is_(None),
    )
    stmt = select(PrecheckRow.outcome, followed.label("followed")).where(
        PrecheckRow.created_at >= start, PrecheckRow.created_at < end
    )
    if merchant_id is not None:
        stmt = stmt.join(OrderRow, OrderRow.order_id == PrecheckRow.order_id).where(
            OrderRow.merchant_id == merchant_id
        )
    return [
        PrecheckFact(outcome=outcome, followed_by_refund=bool(f))
        for outcome, f in (await session.execute(stmt)).all()
    ]
