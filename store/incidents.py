"""Incidents as rows: the declaration and the state its workflow reports, the dry run's
verdict per matched order, and what the incident's refunds became.

The selection is answered in SQL (orders, their items and card keys), exactly as
`domain.incident.IncidentSelection` defines it; the verdict per order is the pure
`domain.incident.plan_order`, fed with the facts read here in bulk."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.incident import IncidentDeclaration, IncidentSelection, PlannedOrder, SkipReason
from domain.incident_run import IncidentOutcomes, IncidentReport, IncidentState, IncidentStatus
from domain.refund import RefundItemRequest
from domain.types import CommissionState, RefundStatus
from store.incident_rows import IncidentOrderRow, IncidentRow
from store.models import (
    CardKeyRow,
    OrderItemRow,
    OrderRow,
    RefundClaimRow,
    RefundCommissionRow,
    RefundItemRow,
    RefundRow,
)

WAITING_FOR_A_PERSON = (RefundStatus.PENDING_REVIEW, RefundStatus.NEEDS_ATTENTION)
CLAWED_BACK = (CommissionState.CLAWED_BACK, CommissionState.DEBT)


def declaration_hash(declaration: IncidentDeclaration) -> str:
    canonical = json.dumps(
        declaration.model_dump(mode="json"), sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


# --- the selection -----------------------------------------------------------------------------


def _matching(selection: IncidentSelection, *columns: Any) -> Select[Any]:
    """Orders with at least one item the selection names (an item of the SKU / product type
    holding a selected key, when both are given), paid inside the window if one is given."""
    stmt = select(*columns).join(OrderItemRow, OrderItemRow.order_id == OrderRow.order_id)
    if selection.by_keys:
        stmt = stmt.join(
            CardKeyRow,
            (CardKeyRow.order_id == OrderItemRow.order_id)
            & (CardKeyRow.item_id == OrderItemRow.item_id),
        )
        named: list[ColumnElement[bool]] = []
        if selection.card_key_ids:
            named.append(CardKeyRow.card_key_id.in_(selection.card_key_ids))
        if selection.batch_id is not None:
            named.append(CardKeyRow.batch_id == selection.batch_id)
        stmt = stmt.where(or_(*named))
        if selection.supplier is not None:
            stmt = stmt.where(CardKeyRow.supplier == selection.supplier)
    if selection.sku is not None:
        stmt = stmt.where(OrderItemRow.sku == selection.sku)
    if selection.product_type is not None:
        stmt = stmt.where(OrderItemRow.product_type == selection.product_type)
    if selection.merchant_id is not None:
        stmt = stmt.where(OrderRow.merchant_id == selection.merchant_id)
    if selection.paid_from is not None and selection.paid_until is not None:
        stmt = stmt.where(
            OrderRow.paid_at >= selection.paid_from, OrderRow.paid_at < selection.paid_until
        )
    return stmt


@dataclass(frozen=True)
class Matched:
    orders: int
    amounts: dict[str, int]  # the matched orders' amounts, per currency


async def count_matching(session: AsyncSession, selection: IncidentSelection) -> Matched:
    """How many orders the selection matches and what they were paid (the limits' measure)."""
    matched = _matching(selection, OrderRow.order_id).distinct().subquery()
    rows = (
        await session.execute(
            select(OrderRow.currency, func.count(), func.sum(OrderRow.amount))
            .join(matched, matched.c.order_id == OrderRow.order_id)
            .group_by(OrderRow.currency)
        )
    ).all()
    return Matched(
        orders=sum(int(n) for _, n, _ in rows),
        amounts={currency: int(total or 0) for currency, _, total in rows},
    )


async def matching_order_ids(session: AsyncSession, selection: IncidentSelection) -> list[str]:
    """The matched orders, first paid first (the order refunds start in)."""
    stmt = (
        _matching(selection, OrderRow.order_id, OrderRow.paid_at)
        .distinct()
        .order_by(OrderRow.paid_at, OrderRow.order_id)
    )
    return [order_id for order_id, _ in (await session.execute(stmt)).all()]


async def refunded_quantities_of(
    session: AsyncSession, order_ids: Sequence[str]
) -> dict[str, dict[str, int]]:
    """Per order and item, the quantity paid back or being paid back (as
    `store.refunds.refunded_quantities`, for many orders in one query)."""
    live = [RefundStatus.REFUNDED] + [s for s in RefundStatus if not s.is_terminal]
    taken: dict[str, dict[str, int]] = defaultdict(dict)
    for order_id, item_id, quantity in (
        await session.execute(
            select(RefundRow.order_id, RefundItemRow.item_id, func.sum(RefundItemRow.quantity))
            .join(RefundRow, RefundRow.refund_id == RefundItemRow.refund_id)
            .where(RefundRow.order_id.in_(order_ids), RefundRow.status.in_(live))
            .group_by(RefundRow.order_id, RefundItemRow.item_id)
        )
    ).all():
        taken[order_id][item_id] = int(quantity)
    return dict(taken)


async def open_items_of(session: AsyncSession, order_ids: Sequence[str]) -> dict[str, set[str]]:
    """Per order, the items an open refund holds."""
    held: dict[str, set[str]] = defaultdict(set)
    for order_id, item_id in (
        await session.execute(
            select(RefundClaimRow.order_id, RefundClaimRow.item_id).where(
                RefundClaimRow.order_id.in_(order_ids)
            )
        )
    ).all():
        held[order_id].add(item_id)
    return dict(held)


# --- the incident's own rows -------------------------------------------------------------------


async def get(session: AsyncSession, incident_id: str) -> IncidentRow | None:
    return await session.get(IncidentRow, incident_id)


async def declare(
    session: AsyncSession,
    declaration: IncidentDeclaration,
    *,
    status: IncidentStatus,
    now: datetime,
) -> IncidentRow:
    """Record a declaration (a new incident, or one declared again after it ended)."""
    row = await session.get(IncidentRow, declaration.incident_id)
    if row is None:
        row = IncidentRow(incident_id=declaration.incident_id)
        session.add(row)
    row.created_at = now  # when it was (last) declared
    row.state = status.state
    row.declared_by = declaration.declared_by
    row.declaration = declaration.model_dump(mode="json")
    row.declaration_hash = declaration_hash(declaration)
    row.view = status.model_dump(mode="json")
    row.report_seq = 0
    row.updated_at = now
    await session.flush()
    return row


async def record_status(
    session: AsyncSession, incident_id: str, *, seq: int, status: IncidentStatus, now: datetime
) -> None:
    """What the workflow reports, unless a newer report was stored already."""
    await session.execute(
        update(IncidentRow)
        .where(IncidentRow.incident_id == incident_id, IncidentRow.report_seq <= seq)
        .values(
            state=status.state,
            view=status.model_dump(mode="json"),
            report_seq=seq,
            updated_at=now,
        )
    )


async def list_incidents(session: AsyncSession, *, limit: int = 50) -> list[IncidentRow]:
    return list(
        await session.scalars(
            select(IncidentRow)
            .order_by(IncidentRow.created_at.desc(), IncidentRow.incident_id)
            .limit(limit)
        )
    )


async def clear_plan(session: AsyncSession, incident_id: str) -> None:
    """Forget an earlier dry run of this incident (it is planned afresh)."""
    await session.execute(
        delete(IncidentOrderRow).where(IncidentOrderRow.incident_id == incident_id)
    )


async def add_planned(
    session: AsyncSession, incident_id: str, planned: Sequence[tuple[int, PlannedOrder]]
) -> None:
    session.add_all(
        IncidentOrderRow(
            incident_id=incident_id,
            order_id=p.order_id,
            position=position,
            buyer_id=p.buyer_id,
            currency=p.currency,
            amount=p.amount,
            items=[i.model_dump(mode="json") for i in p.items],
            skip_reason=p.skip,
            skipped_at_start=False,
        )
        for position, p in planned
    )
    await session.flush()


async def next_to_start(
    session: AsyncSession, incident_id: str, *, after_position: int, limit: int
) -> list[IncidentOrderRow]:
    """The next orders to refund, in the dry run's order (those started before a crash too:
    their refunds are stored, their workflows started again harmlessly)."""
    return list(
        await session.scalars(
            select(IncidentOrderRow)
            .where(
                IncidentOrderRow.incident_id == incident_id,
                IncidentOrderRow.position > after_position,
                IncidentOrderRow.skip_reason.is_(None),
            )
            .order_by(IncidentOrderRow.position)
            .limit(limit)
        )
    )


def planned_items(row: IncidentOrderRow) -> list[RefundItemRequest]:
    return [RefundItemRequest.model_validate(i) for i in row.items]


async def started_count(session: AsyncSession, incident_id: str) -> int:
    """Orders whose refund the incident has started (stored, workflow started)."""
    return int(
        await session.scalar(
            select(func.count())
            .select_from(IncidentOrderRow)
            .where(
                IncidentOrderRow.incident_id == incident_id,
                IncidentOrderRow.refund_id.is_not(None),
            )
        )
        or 0
    )


async def outcomes(session: AsyncSession, incident_id: str) -> IncidentOutcomes:
    """The incident's refunds by status, the money they returned, the commissions clawed back."""
    by_status: dict[str, int] = {}
    refunded: dict[str, int] = defaultdict(int)
    for status, currency, count, amount in (
        await session.execute(
            select(RefundRow.status, RefundRow.currency, func.count(), func.sum(RefundRow.amount))
            .where(RefundRow.incident_id == incident_id)
            .group_by(RefundRow.status, RefundRow.currency)
        )
    ).all():
        by_status[status.value] = by_status.get(status.value, 0) + int(count)
        if status is RefundStatus.REFUNDED:
            refunded[currency] += int(amount or 0)
    clawed: dict[str, int] = {}
    for currency, amount in (
        await session.execute(
            select(RefundRow.currency, func.sum(RefundCommissionRow.amount))
            .join(RefundRow, RefundRow.refund_id == RefundCommissionRow.refund_id)
            .where(
                RefundRow.incident_id == incident_id,
                RefundCommissionRow.state.in_(CLAWED_BACK),
            )
            .group_by(RefundRow.currency)
        )
    ).all():
        clawed[currency] = int(amount or 0)
    return IncidentOutcomes(
        by_status=dict(sorted(by_status.items())),
        refunded_amounts=dict(sorted(refunded.items())),
        commissions_clawed_back=clawed,
    )


async def report(session: AsyncSession, incident_id: str) -> IncidentReport:
    skipped: dict[SkipReason, int] = {}
    matched = started = 0
    for reason, count, with_refund in (
        await session.execute(
            select(
                IncidentOrderRow.skip_reason,
                func.count(),
                func.count(IncidentOrderRow.refund_id),
            )
            .where(IncidentOrderRow.incident_id == incident_id)
            .group_by(IncidentOrderRow.skip_reason)
        )
    ).all():
        matched += int(count)
        started += int(with_refund)
        if reason is not None:
            skipped[reason] = int(count)
    now = await outcomes(session, incident_id)
    by_status = now.by_status
    return IncidentReport(
        incident_id=incident_id,
        matched=matched,
        planned=matched - sum(skipped.values()),
        started=started,
        skipped=skipped,
        refunds=by_status,
        refunded=by_status.get(RefundStatus.REFUNDED.value, 0),
        failed=by_status.get(RefundStatus.FAILED.value, 0),
        waiting_for_a_person=sum(by_status.get(s.value, 0) for s in WAITING_FOR_A_PERSON),
        in_flight=now.in_flight,
        refunded_amounts=now.refunded_amounts,
        commissions_clawed_back=now.commissions_clawed_back,
    )


@dataclass(frozen=True)
class OrderLine:
    """One matched order as `GET /v1/incidents/{id}/orders` lists it."""

    position: int
    order_id: str
    buyer_id: str
    amount: int
    currency: str
    items: list[dict[str, Any]]
    skip_reason: SkipReason | None
    skipped_at_start: bool
    refund_id: str | None
    refund_status: RefundStatus | None


async def order_lines(
    session: AsyncSession,
    incident_id: str,
    *,
    after_position: int = 0,
    limit: int = 100,
    skipped: bool | None = None,
) -> list[OrderLine]:
    """The dry run's list, in its order, a page at a time, with each refund's status."""
    stmt = (
        select(IncidentOrderRow, RefundRow.status)
        .outerjoin(RefundRow, RefundRow.refund_id == IncidentOrderRow.refund_id)
        .where(
            IncidentOrderRow.incident_id == incident_id,
            IncidentOrderRow.position > after_position,
        )
        .order_by(IncidentOrderRow.position)
        .limit(limit)
    )
    if skipped is True:
        stmt = stmt.where(IncidentOrderRow.skip_reason.is_not(None))
    elif skipped is False:
        stmt = stmt.where(IncidentOrderRow.skip_reason.is_(None))
    return [
        OrderLine(
            position=row.position,
            order_id=row.order_id,
            buyer_id=row.buyer_id,
            amount=row.amount,
            currency=row.currency,
            items=list(row.items),
            skip_reason=row.skip_reason,
            skipped_at_start=row.skipped_at_start,
            refund_id=row.refund_id,
            refund_status=status,
        )
        for row, status in (await session.execute(stmt)).all()
    ]


TERMINAL_INCIDENT_STATES = [s for s in IncidentState if s.is_terminal]
