"""The reviewer console's reads: the queue of refunds waiting for a person (filtered,
searched, counted, a keyset page at a time), the most urgent unclaimed case, who holds how
many, the day's decisions and the buyer's history.

Every query is bounded by an index however long the queue is: pages walk
`ix_refunds_status_deadline`, counts group the pending rows once per dimension, a day's
decisions come from `ix_audit_action_at`."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.refund import ReviewView
from domain.types import ProductType, RefundReason, RefundStatus, RiskLevel
from store.models import AuditRow, OrderItemRow, OrderRow, RefundItemRow, RefundRow
from store.refunds import decode_cursor, encode_cursor

PENDING = RefundStatus.PENDING_REVIEW
DECISIONS = ("refund.approved", "refund.rejected")

Claim = Literal["all", "mine", "unclaimed"]


@dataclass(frozen=True)
class QueueFilter:
    merchant_id: str | None = None
    product_type: ProductType | None = None
    risk_level: RiskLevel | None = None
    reason: RefundReason | None = None
    # An exact refund, order or buyer id.
    search: str | None = None
    claim: Claim = "all"
    reviewer: str | None = None  # whose cases "mine" means


@dataclass(frozen=True)
class QueueRow:
    """One line of the queue: the refund's columns and its order's product types."""

    refund_id: str
    order_id: str
    buyer_id: str
    merchant_id: str
    amount: int
    currency: str
    reason: RefundReason
    reason_text: str
    risk_level: RiskLevel | None
    deadline: datetime | None
    claimed_by: str | None
    claimed_until: datetime | None
    awaiting_evidence: bool
    review: ReviewView | None
    product_types: list[ProductType]

    def holder(self, now: datetime) -> str | None:
        if self.claimed_by and self.claimed_until and self.claimed_until > now:
            return self.claimed_by
        return None


@dataclass
class QueueCounts:
    """How many refunds wait, in total and per value of each filter."""

    total: int = 0
    unclaimed: int = 0
    overdue: int = 0
    merchant_id: dict[str, int] = field(default_factory=dict)
    product_type: dict[str, int] = field(default_factory=dict)
    risk_level: dict[str, int] = field(default_factory=dict)
    reason: dict[str, int] = field(default_factory=dict)


def _has_product_type(product_type: ProductType) -> ColumnElement[bool]:
    return exists(
        select(1)
        .select_from(RefundItemRow)
        .join(
            OrderItemRow,
            and_(
                OrderItemRow.order_id == RefundRow.order_id,
                OrderItemRow.item_id == RefundItemRow.item_id,
            ),
        )
        .where(
            RefundItemRow.refund_id == RefundRow.refund_id,
            OrderItemRow.product_type == product_type,
        )
    )


def _unclaimed(now: datetime) -> ColumnElement[bool]:
    return or_(RefundRow.claimed_by.is_(None), RefundRow.claimed_until <= now)


def _filtered(stmt: Select[Any], f: QueueFilter, now: datetime) -> Select[Any]:
    stmt = stmt.where(RefundRow.status == PENDING)
    if f.merchant_id:
        stmt = stmt.where(RefundRow.merchant_id == f.merchant_id)
    if f.risk_level is not None:
        stmt = stmt.where(RefundRow.risk_level == f.risk_level)
    if f.reason is not None:
        stmt = stmt.where(RefundRow.reason == f.reason)
    if f.product_type is not None:
        stmt = stmt.where(_has_product_type(f.product_type))
    if f.search:
        q = f.search.strip()
        stmt = stmt.where(
            or_(RefundRow.refund_id == q, RefundRow.order_id == q, RefundRow.buyer_id == q)
        )
    if f.claim == "mine":
        stmt = stmt.where(RefundRow.claimed_by == (f.reviewer or ""), RefundRow.claimed_until > now)
    elif f.claim == "unclaimed":
        stmt = stmt.where(_unclaimed(now))
    return stmt


async def queue_page(
    session: AsyncSession,
    f: QueueFilter,
    *,
    now: datetime,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[QueueRow], str | None]:
    """Most urgent deadline first, a keyset page at a time (`cursor` raises ValueError when
    this service did not make it). Two queries however long the queue."""
    stmt = _filtered(select(RefundRow), f, now)
    if cursor:
        deadline, rid = decode_cursor(cursor)
        stmt = stmt.where(
            or_(
                RefundRow.review_deadline > deadline,
                and_(RefundRow.review_deadline == deadline, RefundRow.refund_id > rid),
            )
        )
    stmt = stmt.order_by(RefundRow.review_deadline.asc(), RefundRow.refund_id.asc()).limit(
        limit + 1
    )
    rows = list((await session.scalars(stmt)).all())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor(last.review_deadline or last.created_at, last.refund_id)
    types = await _product_types(session, [r.refund_id for r in rows])
    return [_queue_row(r, types.get(r.refund_id, [])) for r in rows], next_cursor


async def _product_types(
    session: AsyncSession, refund_ids: list[str]
) -> dict[str, list[ProductType]]:
    if not refund_ids:
        return {}
    result = await session.execute(
        select(RefundItemRow.refund_id, OrderItemRow.product_type)
        .join(RefundRow, RefundRow.refund_id == RefundItemRow.refund_id)
        .join(
            OrderItemRow,
            and_(
                OrderItemRow.order_id == RefundRow.order_id,
                OrderItemRow.item_id == RefundItemRow.item_id,
            ),
        )
        .where(RefundItemRow.refund_id.in_(refund_ids))
    )
    types: dict[str, list[ProductType]] = defaultdict(list)
    for refund_id, product_type in result.all():
        if product_type not in types[refund_id]:
            types[refund_id].append(product_type)
    return types


def _queue_row(r: RefundRow, product_types: list[ProductType]) -> QueueRow:
    return QueueRow(
        refund_id=r.refund_id,
        order_id=r.order_id,
        buyer_id=r.buyer_id,
        merchant_id=r.merchant_id,
        amount=r.amount,
        currency=r.currency,
        reason=r.reason,
        reason_text=r.reason_text,
        risk_level=r.risk_level,
        deadline=r.review_deadline,
        claimed_by=r.claimed_by,
        claimed_until=r.claimed_until,
        awaiting_evidence=r.awaiting_evidence,
        review=ReviewView.model_validate(r.review) if r.review else None,
        product_types=product_types,
    )


async def queue_counts(session: AsyncSession, *, now: datetime) -> QueueCounts:
    """Counts of the whole pending queue, per value of each filter (one grouped query each)."""
    counts = QueueCounts()
    pending = RefundRow.status == PENDING
    counts.total = int(await session.scalar(select(func.count()).where(pending)) or 0)
    counts.unclaimed = int(
        await session.scalar(select(func.count()).where(pending, _unclaimed(now))) or 0
    )
    counts.overdue = int(
        await session.scalar(select(func.count()).where(pending, RefundRow.review_deadline < now))
        or 0
    )
    for name, column in (
        ("merchant_id", RefundRow.merchant_id),
        ("risk_level", RefundRow.risk_level),
        ("reason", RefundRow.reason),
    ):
        result = await session.execute(select(column, func.count()).where(pending).group_by(column))
        setattr(counts, name, {str(k): int(n) for k, n in result.all() if k is not None})
    result = await session.execute(
        select(OrderItemRow.product_type, func.count(func.distinct(RefundRow.refund_id)))
        .select_from(RefundRow)
        .join(RefundItemRow, RefundItemRow.refund_id == RefundRow.refund_id)
        .join(
            OrderItemRow,
            and_(
                OrderItemRow.order_id == RefundRow.order_id,
                OrderItemRow.item_id == RefundItemRow.item_id,
            ),
        )
        .where(pending)
        .group_by(OrderItemRow.product_type)
    )
    counts.product_type = {str(k): int(n) for k, n in result.all()}
    return counts


async def next_unclaimed(
    session: AsyncSession, f: QueueFilter, *, reviewer: str, now: datetime
) -> str | None:
    """The most urgent case nobody holds that this reviewer can act on: not waiting for the
    buyer's evidence, and not one they approved first (four eyes needs someone else)."""
    stmt = _filtered(select(RefundRow.refund_id, RefundRow.review), f, now).where(
        _unclaimed(now), RefundRow.awaiting_evidence.is_(False)
    )
    stmt = stmt.order_by(RefundRow.review_deadline.asc(), RefundRow.refund_id.asc()).limit(50)
    for refund_id, review in (await session.execute(stmt)).all():
        first = (review or {}).get("first_approval") or {}
        if first.get("reviewer") != reviewer:
            return str(refund_id)
    return None


async def claims_by_reviewer(session: AsyncSession, *, now: datetime) -> dict[str, int]:
    """Each reviewer's load: the cases whose claim holds now."""
    result = await session.execute(
        select(RefundRow.claimed_by, func.count())
        .where(RefundRow.status == PENDING, RefundRow.claimed_until > now)
        .group_by(RefundRow.claimed_by)
    )
    return {str(who): int(n) for who, n in result.all() if who}


@dataclass(frozen=True)
class Decision:
    reviewer: str
    action: str  # refund.approved | refund.rejected
    refund_id: str
    at: datetime
    deadline: datetime | None


async def decisions_since(session: AsyncSession, since: datetime) -> list[Decision]:
    """People's approvals and rejections since `since`, with the deadline each one had."""
    rows = (
        await session.execute(
            select(AuditRow.actor, AuditRow.action, AuditRow.subject, AuditRow.at)
            .where(AuditRow.action.in_(DECISIONS), AuditRow.at >= since)
            .order_by(AuditRow.at)
        )
    ).all()
    people = [r for r in rows if r.actor.startswith("reviewer:") and r.actor != "reviewer:system"]
    ids = sorted({r.subject.removeprefix("refund:") for r in people})
    deadlines: dict[str, datetime | None] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        result = await session.execute(
            select(RefundRow.refund_id, RefundRow.review_deadline).where(
                RefundRow.refund_id.in_(chunk)
            )
        )
        deadlines.update({rid: deadline for rid, deadline in result.all()})
    return [
        Decision(
            reviewer=r.actor.removeprefix("reviewer:"),
            action=r.action,
            refund_id=r.subject.removeprefix("refund:"),
            at=r.at,
            deadline=deadlines.get(r.subject.removeprefix("refund:")),
        )
        for r in people
    ]


async def overdue(session: AsyncSession, *, now: datetime, limit: int = 50) -> list[QueueRow]:
    """Escalations: refunds still waiting past their deadline, the longest overdue first."""
    rows = list(
        (
            await session.scalars(
                select(RefundRow)
                .where(RefundRow.status == PENDING, RefundRow.review_deadline < now)
                .order_by(RefundRow.review_deadline.asc(), RefundRow.refund_id.asc())
                .limit(limit)
            )
        ).all()
    )
    types = await _product_types(session, [r.refund_id for r in rows])
    return [_queue_row(r, types.get(r.refund_id, [])) for r in rows]


@dataclass(frozen=True)
class BuyerHistory:
    orders: int
    first_order_at: datetime | None
    refunds: dict[str, int]  # status -> how many

    @property
    def refund_count(self) -> int:
        return sum(self.refunds.values())


async def buyer_history(session: AsyncSession, buyer_id: str) -> BuyerHistory:
    """How long the buyer has bought here and how their refunds went (by the indexes on
    buyer_id)."""
    orders, first = (
        await session.execute(
            select(func.count(), func.min(OrderRow.created_at)).where(OrderRow.buyer_id == buyer_id)
        )
    ).one()
    result = await session.execute(
        select(RefundRow.status, func.count())
        .where(RefundRow.buyer_id == buyer_id)
        .group_by(RefundRow.status)
    )
    return BuyerHistory(
        orders=int(orders or 0),
        first_order_at=_aware(first),
        refunds={str(s.value if hasattr(s, "value") else s): int(n) for s, n in result.all()},
    )


def _aware(value: Any) -> datetime | None:
    """An aggregate's time: SQLite's MIN() answers text without a zone."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
