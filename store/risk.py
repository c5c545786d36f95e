"""Risk facts from the database: how often this buyer, device, IP and card key refunded,
who shares them, the blacklists and the buyer's history. The scoring is the pure
`domain.risk.assess`; the workflow's `assess_risk` and `refundctl explain` both start here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, distinct, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.risk import RiskFacts
from store.models import BlacklistRow, CardKeyRow, OrderItemRow, OrderRow, RefundItemRow, RefundRow


async def risk_facts(
    session: AsyncSession,
    *,
    refund_id: str,
    buyer_id: str,
    device_id: str | None,
    ip: str | None,
    card_key_ids: Sequence[str],
    skus: Sequence[str],
    at: datetime,
) -> RiskFacts:
    """The facts about refund `refund_id` (never counted itself) as of `at`.

    Each count uses an index: (buyer_id, created_at), (device_id, created_at),
    (client_ip, created_at) on refunds; card_key_id on card_keys; buyer_id on orders."""
    others = RefundRow.refund_id != refund_id

    async def count(*where: ColumnElement[bool]) -> int:
        return int(
            await session.scalar(select(func.count()).select_from(RefundRow).where(others, *where))
            or 0
        )

    first_order: datetime | None = await session.scalar(
        select(func.min(OrderRow.created_at)).where(OrderRow.buyer_id == buyer_id)
    )
    return RiskFacts(
        buyer_refunds_today=await count(
            RefundRow.buyer_id == buyer_id, RefundRow.created_at >= at - timedelta(days=1)
        ),
        buyer_refunds_this_month=await count(
            RefundRow.buyer_id == buyer_id, RefundRow.created_at >= at - timedelta(days=30)
        ),
        card_key_prior_refunds=await _card_key_refunds(session, refund_id, card_key_ids),
        device_refunds_last_hour=await count(
            RefundRow.device_id == device_id, RefundRow.created_at >= at - timedelta(hours=1)
        )
        if device_id
        else 0,
        ip_refunds_last_hour=await count(
            RefundRow.client_ip == ip, RefundRow.created_at >= at - timedelta(hours=1)
        )
        if ip
        else 0,
        linked_accounts_same_sku_30d=await _linked_accounts(
            session, buyer_id=buyer_id, device_id=device_id, ip=ip, skus=skus, at=at
        ),
        buyer_blacklisted=await _listed(session, "buyer", buyer_id),
        device_blacklisted=await _listed(session, "device", device_id),
        ip_blacklisted=await _listed(session, "ip", ip),
        account_age_days=max(0, (at - first_order).days) if first_order else None,
        lifetime_orders=int(
            await session.scalar(
                select(func.count()).select_from(OrderRow).where(OrderRow.buyer_id == buyer_id)
            )
            or 0
        ),
        lifetime_refunds=await count(RefundRow.buyer_id == buyer_id),
    )


async def _card_key_refunds(
    session: AsyncSession, refund_id: str, card_key_ids: Sequence[str]
) -> int:
    if not card_key_ids:
        return 0
    stmt = (
        select(func.count(distinct(RefundRow.refund_id)))
        .select_from(CardKeyRow)
        .join(RefundItemRow, RefundItemRow.item_id == CardKeyRow.item_id)
        .join(
            RefundRow,
            (RefundRow.refund_id == RefundItemRow.refund_id)
            & (RefundRow.order_id == CardKeyRow.order_id),
        )
        .where(CardKeyRow.card_key_id.in_(card_key_ids), RefundRow.refund_id != refund_id)
    )
    return int(await session.scalar(stmt) or 0)


async def _linked_accounts(
    session: AsyncSession,
    *,
    buyer_id: str,
    device_id: str | None,
    ip: str | None,
    skus: Sequence[str],
    at: datetime,
) -> int:
    """Other buyers on this device or IP who refunded one of these SKUs in 30 days."""
    shared = [
        c
        for c in (
            RefundRow.device_id == device_id if device_id else None,
            RefundRow.client_ip == ip if ip else None,
        )
        if c is not None
    ]
    if not shared or not skus:
        return 0
    stmt = (
        select(func.count(distinct(RefundRow.buyer_id)))
        .select_from(RefundRow)
        .join(RefundItemRow, RefundItemRow.refund_id == RefundRow.refund_id)
        .join(
            OrderItemRow,
            (OrderItemRow.order_id == RefundRow.order_id)
            & (OrderItemRow.item_id == RefundItemRow.item_id),
        )
        .where(
            or_(*shared),
            RefundRow.buyer_id != buyer_id,
            RefundRow.created_at >= at - timedelta(days=30),
            OrderItemRow.sku.in_(skus),
        )
    )
    return int(await session.scalar(stmt) or 0)


async def _listed(session: AsyncSession, kind: str, value: str | None) -> bool:
    if not value:
        return False
    return await session.get(BlacklistRow, (kind, value)) is not None
