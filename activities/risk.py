"""Risk facts from the database: how often this buyer, device, IP and card key refunded,
who shares them, the blacklists and the buyer's history. The scoring itself is the pure
`domain.risk.assess`, so the same facts always give the same level and signals."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, distinct, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity

from domain.policy import Policy
from domain.refund import RiskAssessment
from domain.risk import RiskFacts, assess
from store.db import SessionFactory
from store.models import BlacklistRow, CardKeyRow, OrderItemRow, OrderRow, RefundItemRow, RefundRow
from workflows.messages import RiskRequest


class RiskChecks:
    def __init__(self, reads: SessionFactory, *, policy: Callable[[], Policy]) -> None:
        self.reads = reads
        self.policy = policy

    @activity.defn(name="assess_risk")
    async def assess_risk(self, req: RiskRequest) -> RiskAssessment:
        async with self.reads() as session:
            facts = await gather_facts(session, req)
        return assess(facts, self.policy())


async def gather_facts(session: AsyncSession, req: RiskRequest) -> RiskFacts:
    """Each count uses an index: (buyer_id, created_at), (device_id, created_at),
    (client_ip, created_at) on refunds; card_key_id on card_keys; buyer_id on orders."""
    at = req.at
    others = RefundRow.refund_id != req.refund_id
    device = req.client.device_id if req.client else None
    ip = req.client.ip if req.client else None

    async def count(*where: ColumnElement[bool]) -> int:
        return int(
            await session.scalar(select(func.count()).select_from(RefundRow).where(others, *where))
            or 0
        )

    first_order: datetime | None = await session.scalar(
        select(func.min(OrderRow.created_at)).where(OrderRow.buyer_id == req.buyer_id)
    )
    return RiskFacts(
        buyer_refunds_today=await count(
            RefundRow.buyer_id == req.buyer_id, RefundRow.created_at >= at - timedelta(days=1)
        ),
        buyer_refunds_this_month=await count(
            RefundRow.buyer_id == req.buyer_id, RefundRow.created_at >= at - timedelta(days=30)
        ),
        card_key_prior_refunds=await _card_key_refunds(session, req),
        device_refunds_last_hour=await count(
            RefundRow.device_id == device, RefundRow.created_at >= at - timedelta(hours=1)
        )
        if device
        else 0,
        ip_refunds_last_hour=await count(
            RefundRow.client_ip == ip, RefundRow.created_at >= at - timedelta(hours=1)
        )
        if ip
        else 0,
        linked_accounts_same_sku_30d=await _linked_accounts(session, req, device, ip),
        buyer_blacklisted=await _listed(session, "buyer", req.buyer_id),
        device_blacklisted=await _listed(session, "device", device),
        ip_blacklisted=await _listed(session, "ip", ip),
        account_age_days=max(0, (at - first_order).days) if first_order else None,
        lifetime_orders=int(
            await session.scalar(
                select(func.count()).select_from(OrderRow).where(OrderRow.buyer_id == req.buyer_id)
            )
            or 0
        ),
        lifetime_refunds=await count(RefundRow.buyer_id == req.buyer_id),
    )


async def _card_key_refunds(session: AsyncSession, req: RiskRequest) -> int:
    if not req.card_key_ids:
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
        .where(CardKeyRow.card_key_id.in_(req.card_key_ids), RefundRow.refund_id != req.refund_id)
    )
    return int(await session.scalar(stmt) or 0)


async def _linked_accounts(
    session: AsyncSession, req: RiskRequest, device: str | None, ip: str | None
) -> int:
    """Other buyers on this device or IP who refunded one of these SKUs in 30 days."""
    shared = [
        c
        for c in (
            RefundRow.device_id == device if device else None,
            RefundRow.client_ip == ip if ip else None,
        )
        if c is not None
    ]
    if not shared or not req.skus:
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
            RefundRow.buyer_id != req.buyer_id,
            RefundRow.created_at >= req.at - timedelta(days=30),
            OrderItemRow.sku.in_(req.skus),
        )
    )
    return int(await session.scalar(stmt) or 0)


async def _listed(session: AsyncSession, kind: str, value: str | None) -> bool:
    if not value:
        return False
    return await session.get(BlacklistRow, (kind, value)) is not None
