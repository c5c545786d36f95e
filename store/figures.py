"""Operational figures from the database: what is open, waiting, late or stuck. Read by the
worker's gauges (workers/gauges.py) and the stuck-refund finder (ops/stuck.py).

Every query here reads refunds that are not finished, through the (status, review_deadline,
refund_id) index, or undelivered notifications through theirs: their cost follows the open
work, not the years of refunds behind it. The ledger's trial balance (store.ledger) is the
one full sum; the worker reads it less often."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from config.settings import Settings
from domain.types import RefundStatus
from store.models import NotificationRow, PayoutRow, RefundRow, TimelineRow
from store.outbox import WEBHOOK

OPEN = [s for s in RefundStatus if not s.is_terminal]
# Statuses a refund passes through on its own; past the stage limit something holds it.
MOVING = [RefundStatus.SUBMITTED, RefundStatus.CHECKING, RefundStatus.APPROVED]


@dataclass(frozen=True)
class StageLimits:
    """How long a refund may sit in a stage before it counts as stuck."""

    refunding: timedelta = timedelta(minutes=30)
    moving: timedelta = timedelta(minutes=10)  # submitted, checking, approved
    unstarted: timedelta = timedelta(minutes=2)  # stored, workflow never reported in
    review_grace: timedelta = timedelta(0)  # past the review deadline by more than this


def stage_limits(settings: Settings) -> StageLimits:
    """STUCK_REFUNDING_MINUTES, STUCK_STAGE_MINUTES and STUCK_UNSTARTED_SECONDS."""
    return StageLimits(
        refunding=timedelta(minutes=settings.stuck_refunding_minutes),
        moving=timedelta(minutes=settings.stuck_stage_minutes),
        unstarted=timedelta(seconds=settings.stuck_unstarted_seconds),
    )


class StuckKind:
    """Why a refund is listed as stuck, from the database (Temporal adds its own causes)."""

    NEVER_STARTED = "workflow_never_started"
    REFUNDING = "refunding_too_long"
    STAGE = "stage_too_long"
    REVIEW_OVERDUE = "review_past_deadline"
    NEEDS_ATTENTION = "needs_attention"

    ALL = (NEVER_STARTED, REFUNDING, STAGE, REVIEW_OVERDUE, NEEDS_ATTENTION)


@dataclass(frozen=True)
class ReviewFigures:
    backlog: int
    oldest_deadline: datetime | None
    past_deadline: int


@dataclass(frozen=True)
class WebhookFigures:
    undelivered: int
    oldest_created_at: datetime | None


@dataclass(frozen=True)
class StuckRow:
    refund_id: str
    kind: str
    status: RefundStatus
    workflow_id: str
    workflow_started: bool
    created_at: datetime
    updated_at: datetime
    review_deadline: datetime | None


async def open_refunds(session: AsyncSession) -> dict[RefundStatus, int]:
    rows = await session.execute(
        select(RefundRow.status, func.count())
        .where(RefundRow.status.in_(OPEN))
        .group_by(RefundRow.status)
    )
    counts: dict[RefundStatus, int] = dict.fromkeys(OPEN, 0)
    counts.update({status: int(n) for status, n in rows.all()})
    return counts


async def reviews(session: AsyncSession, *, now: datetime) -> ReviewFigures:
    pending = RefundRow.status == RefundStatus.PENDING_REVIEW
    backlog, oldest = (
        await session.execute(
            select(func.count(), func.min(RefundRow.review_deadline)).where(pending)
        )
    ).one()
    late = await session.scalar(
        select(func.count()).where(pending, RefundRow.review_deadline < now)
    )
    return ReviewFigures(int(backlog), oldest, int(late or 0))


async def webhooks(session: AsyncSession) -> WebhookFigures:
    count, oldest = (
        await session.execute(
            select(func.count(), func.min(NotificationRow.created_at)).where(
                NotificationRow.channel == WEBHOOK, NotificationRow.delivered_at.is_(None)
            )
        )
    ).one()
    return WebhookFigures(int(count), oldest)


def _stuck_conditions(now: datetime, limits: StageLimits) -> dict[str, ColumnElement[bool]]:
    status = RefundRow.status
    return {
        StuckKind.NEVER_STARTED: and_(
            RefundRow.workflow_started.is_(False),
            status.in_(OPEN),
            RefundRow.created_at < now - limits.unstarted,
        ),
        StuckKind.REFUNDING: and_(
            status == RefundStatus.REFUNDING, RefundRow.updated_at < now - limits.refunding
        ),
        StuckKind.STAGE: and_(
            status.in_(MOVING),
            RefundRow.workflow_started.is_(True),
            RefundRow.updated_at < now - limits.moving,
        ),
        StuckKind.REVIEW_OVERDUE: and_(
            status == RefundStatus.PENDING_REVIEW,
            RefundRow.review_deadline < now - limits.review_grace,
        ),
        StuckKind.NEEDS_ATTENTION: status == RefundStatus.NEEDS_ATTENTION,
    }


async def stuck_counts(
    session: AsyncSession, *, now: datetime, limits: StageLimits
) -> dict[str, int]:
    counts: dict[str, int] = {}
    for kind, condition in _stuck_conditions(now, limits).items():
        counts[kind] = int(await session.scalar(select(func.count()).where(condition)) or 0)
    return counts


async def stuck_refunds(
    session: AsyncSession, *, now: datetime, limits: StageLimits, limit: int = 100
) -> list[StuckRow]:
    """The refunds past their stage's limit, longest untouched first, each under the first
    kind it fits."""
    conditions = _stuck_conditions(now, limits)
    rows = (
        await session.scalars(
            select(RefundRow)
            .where(or_(*conditions.values()))
            .order_by(RefundRow.updated_at.asc(), RefundRow.refund_id)
            .limit(limit)
        )
    ).all()
    found: list[StuckRow] = []
    for row in rows:
        kind = _kind_of(row, now, limits)
        found.append(
            StuckRow(
                refund_id=row.refund_id,
                kind=kind,
                status=row.status,
                workflow_id=row.workflow_id,
                workflow_started=row.workflow_started,
                created_at=row.created_at,
                updated_at=row.updated_at,
                review_deadline=row.review_deadline,
            )
        )
    return found


def _kind_of(row: RefundRow, now: datetime, limits: StageLimits) -> str:
    if not row.workflow_started and not row.status.is_terminal:
        return StuckKind.NEVER_STARTED
    if row.status is RefundStatus.NEEDS_ATTENTION:
        return StuckKind.NEEDS_ATTENTION
    if row.status is RefundStatus.PENDING_REVIEW:
        return StuckKind.REVIEW_OVERDUE
    if row.status is RefundStatus.REFUNDING:
        return StuckKind.REFUNDING
    return StuckKind.STAGE


async def last_payouts(session: AsyncSession, refund_ids: list[str]) -> dict[str, PayoutRow]:
    """Each refund's latest payout attempt (what a stuck refund's money is doing)."""
    if not refund_ids:
        return {}
    rows = await session.scalars(
        select(PayoutRow)
        .where(PayoutRow.refund_id.in_(refund_ids))
        .order_by(PayoutRow.refund_id, PayoutRow.attempt)
    )
    return {row.refund_id: row for row in rows}


async def last_entries(
    session: AsyncSession, refund_ids: list[str], stage: str
) -> dict[str, TimelineRow]:
    """Each refund's latest timeline entry of `stage` (why it needs attention, say)."""
    if not refund_ids:
        return {}
    rows = await session.scalars(
        select(TimelineRow)
        .where(TimelineRow.refund_id.in_(refund_ids), TimelineRow.stage == stage)
        .order_by(TimelineRow.refund_id, TimelineRow.seq)
    )
    return {row.refund_id: row for row in rows}
