"""Risk facts from the database: how often this buyer, device, IP and card key refunded,
who shares them, the blacklists and the buyer's history. The scoring is the pure
`domain.risk.assess`; the workflow's `assess_risk` and `refundctl explain` both start here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, distinct, exists, func, literal, or_, select
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
    """The facts about refund `refund_id` (never counted itself) as of `at`, in one statement
    of scalar subqueries (a dozen round trips to the database were most of a risk check).

    Each count uses an index: (buyer_id, created_at), (device_id, created_at),
    (client_ip, created_at) on refunds; card_key_id on card_keys; buyer_id on orders.

    Refunds an incident started are not the buyer's doing (the shop refunded them on its own
    initiative): they count for nobody's velocity, history or refund rate."""
    others = (RefundRow.refund_id != refund_id) & RefundRow.incident_id.is_(None)
    none = literal(0)

    def count(*where: ColumnElement[bool]) -> ColumnElement[int]:
        return select(func.count()).select_from(RefundRow).where(others, *where).scalar_subquery()

    facts: dict[str, ColumnElement[Any]] = {
        "buyer_refunds_today": count(
            RefundRow.buyer_id == buyer_id, RefundRow.created_at >= at - timedelta(days=1)
        ),
        "buyer_refunds_this_month": count(
            RefundRow.buyer_id == buyer_id, RefundRow.created_at >= at - timedelta(days=30)
        ),
        "card_key_prior_refunds": _card_key_refunds(refund_id, card_key_ids)
        if card_key_ids
        else none,
        "device_refunds_last_hour": count(
            RefundRow.device_id == device_id, RefundRow.created_at >= at - timedelta(hours=1)
        )
        if device_id
        else none,
        "ip_refunds_last_hour": count(
            RefundRow.client_ip == ip, RefundRow.created_at >= at - timedelta(hours=1)
        )
        if ip
        else none,
        "linked_accounts_same_sku_30d": _linked_accounts(
            buyer_id=buyer_id, device_id=device_id, ip=ip, skus=skus, at=at
        ),
        "buyer_blacklisted": _listed("buyer", buyer_id),
        "device_blacklisted": _listed("device", device_id),
        "ip_blacklisted": _listed("ip", ip),
        "first_order": select(func.min(OrderRow.created_at))
        .where(OrderRow.buyer_id == buyer_id)
        .scalar_subquery(),
        "lifetime_orders": select(func.count())
        .select_from(OrderRow)
        .where(OrderRow.buyer_id == buyer_id)
        .scalar_subquery(),
        "lifetime_refunds": count(RefundRow.buyer_id == buyer_id),
    }
    row = (await session.execute(select(*(c.label(k) for k, c in facts.items())))).one()._mapping
    first_order: datetime | None = row["first_order"]
    return RiskFacts(
        buyer_refunds_today=int(row["buyer_refunds_today"] or 0),
        buyer_refunds_this_month=int(row["buyer_refunds_this_month"] or 0),
        card_key_prior_refunds=int(row["card_key_prior_refunds"] or 0),
        device_refunds_last_hour=int(row["device_refunds_last_hour"] or 0),
        ip_refunds_last_hour=int(row["ip_refunds_last_hour"] or 0),
        linked_accounts_same_sku_30d=int(row["linked_accounts_same_sku_30d"] or 0),
        buyer_blacklisted=bool(row["buyer_blacklisted"]),
        device_blacklisted=bool(row["device_blacklisted"]),
        ip_blacklisted=bool(row["ip_blacklisted"]),
        account_age_days=max(0, (at - first_order).days) if first_order else None,
        lifetime_orders=int(row["lifetime_orders"] or 0),
        lifetime_refunds=int(row["lifetime_refunds"] or 0),
    )


def _card_key_refunds(refund_id: str, card_key_ids: Sequence[str]) -> ColumnElement[int]:
    return (
        select(func.count(distinct(RefundRow.refund_id)))
        .select_from(CardKeyRow)
        .join(RefundItemRow, RefundItemRow.item_id == CardKeyRow.item_id)
        .join(
            RefundRow,
            (RefundRow.refund_id == RefundItemRow.refund_id)
            & (RefundRow.order_id == CardKeyRow.order_id),
        )
        .where(
            CardKeyRow.card_key_id.in_(card_key_ids),
            RefundRow.refund_id != refund_id,
            RefundRow.incident_id.is_(None),
        )
        .scalar_subquery()
    )


def _linked_accounts(
    *,
    buyer_id: str,
    device_id: str | None,
    ip: str | None,
    skus: Sequence[str],
    at: datetime,
) -> ColumnElement[int]:
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
        return literal(0)
    return (
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
            RefundRow.incident_id.is_(None),
            RefundRow.created_at >= at - timedelta(days=30),
            OrderItemRow.sku.in_(skus),
        )
        .scalar_subquery()
    )


def _listed(kind: str, value: str | None) -> ColumnElement[bool]:
    if not value:
        return literal(False)
    return exists().where(BlacklistRow.kind == kind, BlacklistRow.value == value)
