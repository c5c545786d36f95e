"""Reports for operators (DOMAIN.md "Transparency"): refund rate and reasons by merchant and
product, the share resolved without a person, time to money, review deadlines met.

Two small queries select the rows of a bounded window (portable: plain columns, JSON read
in Python, so SQLite and PostgreSQL answer the same); the pure functions of
`store.report_figures` (re-exported here) aggregate them and are tested without a database.

Two populations:
- refunds *created* in the window: totals, reasons, automation, time to money, deadlines;
- the cohort of paid orders *created* in the window (orders.created_at) and every refund on
  them: refund rates, so a rate is refunds over the orders they could have come from; and
  the card keys they delivered: each supplier's bad-key rate (keys it confirmed invalid on
  a refund that paid for them, over the keys it sold).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store.claim_rows import SupplierClaimRow
from store.models import (
    CardKeyRow,
    OrderItemRow,
    OrderRow,
    RefundItemRow,
    RefundRow,
    TimelineRow,
)
from store.prechecks import prechecks_made
from store.report_figures import (
    Automation,
    CohortRefund,
    KeyClaimed,
    KeySold,
    OrderFact,
    PrecheckFact,
    Prechecks,
    RateRow,
    Rates,
    ReasonCount,
    RefundFact,
    Report,
    ReviewDeadlines,
    TimeToMoney,
    Totals,
    Window,
    automation,
    bad_keys,
    build_report,
    percentile,
    prechecks,
    rates,
    reasons,
    review_deadlines,
    time_to_money,
    totals,
)

__all__ = [
    "MONEY_ARRIVED",
    "Automation",
    "CohortRefund",
    "KeyClaimed",
    "KeySold",
    "OrderFact",
    "PrecheckFact",
    "Prechecks",
    "RateRow",
    "Rates",
    "ReasonCount",
    "RefundFact",
    "Report",
    "ReviewDeadlines",
    "TimeToMoney",
    "Totals",
    "Window",
    "automation",
    "bad_keys",
    "build_report",
    "cohort_keys",
    "order_cohort",
    "percentile",
    "prechecks",
    "prechecks_made",
    "rates",
    "reasons",
    "refunds_created",
    "report",
    "review_deadlines",
    "time_to_money",
    "totals",
]

MONEY_ARRIVED = "money_arrived"


# --- queries -----------------------------------------------------------------------------


async def refunds_created(
    session: AsyncSession, start: datetime, end: datetime, merchant_id: str | None = None
) -> list[RefundFact]:
    """Refunds created in [start, end), each with when its money arrived (if it did)."""
    in_window = [RefundRow.created_at >= start, RefundRow.created_at < end]
    if merchant_id is not None:
        in_window.append(RefundRow.merchant_id == merchant_id)
    rows = (
        await session.execute(
            select(
                RefundRow.refund_id,
                RefundRow.status,
                RefundRow.amount,
                RefundRow.currency,
                RefundRow.reason,
                RefundRow.decision,
                RefundRow.review,
                RefundRow.created_at,
            ).where(*in_window)
        )
    ).all()
    arrived: dict[str, datetime] = {}
    for refund_id, at in (
        await session.execute(
            select(TimelineRow.refund_id, TimelineRow.at)
            .join(RefundRow, RefundRow.refund_id == TimelineRow.refund_id)
            .where(TimelineRow.stage == MONEY_ARRIVED, *in_window)
        )
    ).all():
        if refund_id not in arrived or at < arrived[refund_id]:
            arrived[refund_id] = at
    return [
        RefundFact(
            refund_id=r.refund_id,
            status=r.status,
            amount=r.amount,
            currency=r.currency,
            reason=r.reason,
            outcome=(r.decision or {}).get("outcome"),
            review=r.review,
            created_at=r.created_at,
            money_arrived_at=arrived.get(r.refund_id),
        )
        for r in rows
    ]


async def order_cohort(
    session: AsyncSession, start: datetime, end: datetime, merchant_id: str | None = None
) -> tuple[list[OrderFact], list[CohortRefund]]:
    """Paid orders created in [start, end) with their items, and every refund on them."""
    cohort = _cohort(start, end, merchant_id)
    merchants: dict[str, str] = {}
    items: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for order_id, merchant_id, sku, product_type in (
        await session.execute(
            select(
                OrderRow.order_id,
                OrderRow.merchant_id,
                OrderItemRow.sku,
                OrderItemRow.product_type,
            )
            .outerjoin(OrderItemRow, OrderItemRow.order_id == OrderRow.order_id)
            .where(*cohort)
        )
    ).all():
        merchants[order_id] = merchant_id
        if sku is not None:
            items[order_id].add((sku, product_type))
    orders = [
        OrderFact(order_id=o, merchant_id=m, items=frozenset(items.get(o, ())))
        for o, m in merchants.items()
    ]

    refunds: dict[str, tuple[str, str, str]] = {}
    touched: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for refund_id, order_id, status, reason, sku, product_type in (
        await session.execute(
            select(
                RefundRow.refund_id,
                RefundRow.order_id,
                RefundRow.status,
                RefundRow.reason,
                OrderItemRow.sku,
                OrderItemRow.product_type,
            )
            .join(OrderRow, OrderRow.order_id == RefundRow.order_id)
            .outerjoin(RefundItemRow, RefundItemRow.refund_id == RefundRow.refund_id)
            .outerjoin(
                OrderItemRow,
                (OrderItemRow.order_id == RefundRow.order_id)
                & (OrderItemRow.item_id == RefundItemRow.item_id),
            )
            .where(*cohort)
        )
    ).all():
        refunds[refund_id] = (order_id, status, reason)
        if sku is not None:
            touched[refund_id].add((sku, product_type))
    cohort_refunds = [
        CohortRefund(
            refund_id=rid,
            order_id=order_id,
            status=status,
            reason=reason,
            items=frozenset(touched.get(rid, ())),
        )
        for rid, (order_id, status, reason) in refunds.items()
    ]
    return orders, cohort_refunds


def _cohort(start: datetime, end: datetime, merchant_id: str | None) -> list[Any]:
    """Paid orders created in [start, end), of one merchant or all."""
    cohort = [
        OrderRow.created_at >= start,
        OrderRow.created_at < end,
        OrderRow.paid_at.is_not(None),
    ]
    if merchant_id is not None:
        cohort.append(OrderRow.merchant_id == merchant_id)
    return cohort


async def cohort_keys(
    session: AsyncSession, start: datetime, end: datetime, merchant_id: str | None = None
) -> tuple[list[KeySold], list[KeyClaimed]]:
    """The card keys delivered on the cohort's orders, and those claimed back as invalid."""
    cohort = _cohort(start, end, merchant_id)
    sold = [
        KeySold(supplier=supplier, card_key_id=key)
        for supplier, key in (
            await session.execute(
                select(CardKeyRow.supplier, CardKeyRow.card_key_id)
                .join(OrderRow, OrderRow.order_id == CardKeyRow.order_id)
                .where(*cohort, CardKeyRow.delivered_at.is_not(None))
            )
        ).all()
    ]
    claimed = [
        KeyClaimed(supplier=supplier, card_key_id=str(key), refund_id=refund_id)
        for supplier, keys, refund_id in (
            await session.execute(
                select(
                    SupplierClaimRow.supplier,
                    SupplierClaimRow.card_key_ids,
                    SupplierClaimRow.refund_id,
                )
                .join(OrderRow, OrderRow.order_id == SupplierClaimRow.order_id)
                .where(*cohort)
            )
        ).all()
        for key in keys
    ]
    return sold, claimed


async def report(
    session: AsyncSession, start: datetime, end: datetime, merchant_id: str | None = None
) -> Report:
    refunds = await refunds_created(session, start, end, merchant_id)
    orders, cohort_refunds = await order_cohort(session, start, end, merchant_id)
    checked = await prechecks_made(session, start, end, merchant_id)
    sold, claimed = await cohort_keys(session, start, end, merchant_id)
    return build_report(
        start, end, refunds, orders, cohort_refunds, merchant_id, checked, sold, claimed
    )
