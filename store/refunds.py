"""Refunds as rows: creation with its guards, the contract body read back, listings."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, func, inspect, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from domain.buyer_messages import Facts
from domain.order import Order
from domain.refund import (
    CommissionView,
    DecisionView,
    Evidence,
    PayoutView,
    RefundBody,
    RefundItemRequest,
    RefundItemView,
    RefundRequest,
    ReplacementView,
    ReviewView,
    RiskAssessment,
    TimelineEntry,
    workflow_id_for,
)
from domain.types import (
    Destination,
    RefundReason,
    RefundStatus,
    RiskLevel,
)
from store import holds, outbox
from store.models import (
    IdempotencyKeyRow,
    PayoutRow,
    RefundClaimRow,
    RefundItemRow,
    RefundRow,
    TimelineRow,
)

TERMINAL = [s for s in RefundStatus if s.is_terminal]
_REFUND_ID = re.compile(r"^[A-Za-z0-9_\-]{1,128}$")


def requested_items(request: RefundRequest, order: Order) -> list[RefundItemRequest]:
    """The items a refund is for: as asked, or the whole order."""
    if request.items is not None:
        return list(request.items)
    return [RefundItemRequest(item_id=i.item_id, quantity=i.quantity) for i in order.items]


async def refunded_quantities(
    session: AsyncSession, order_id: str, *, exclude_refund: str | None = None
) -> dict[str, int]:
    """Per item, the quantity already paid back or being paid back by other refunds."""
    live = [RefundStatus.REFUNDED] + [s for s in RefundStatus if not s.is_terminal]
    stmt = (
        select(RefundItemRow.item_id, func.sum(RefundItemRow.quantity))
        .join(RefundRow, RefundRow.refund_id == RefundItemRow.refund_id)
        .where(RefundRow.order_id == order_id, RefundRow.status.in_(live))
        .group_by(RefundItemRow.item_id)
    )
    if exclude_refund is not None:
        stmt = stmt.where(RefundRow.refund_id != exclude_refund)
    return {item_id: int(q) for item_id, q in (await session.execute(stmt)).all()}


async def open_claim(session: AsyncSession, order_id: str, item_ids: list[str]) -> str | None:
    """The refund currently holding any of these items, if one does."""
    return await session.scalar(
        select(RefundClaimRow.refund_id)
        .where(RefundClaimRow.order_id == order_id, RefundClaimRow.item_id.in_(item_ids))
        .limit(1)
    )


async def last_refund_for_items(
    session: AsyncSession, order_id: str, item_ids: list[str]
) -> str | None:
    return await session.scalar(
        select(RefundRow.refund_id)
        .join(RefundItemRow, RefundItemRow.refund_id == RefundRow.refund_id)
        .where(RefundRow.order_id == order_id, RefundItemRow.item_id.in_(item_ids))
        .order_by(RefundRow.created_at.desc())
        .limit(1)
    )


@dataclass(frozen=True)
class NewRefund:
    refund_id: str
    request: RefundRequest
    order: Order
    items: list[RefundItemRequest]
    caller: str
    idempotency_key: str
    request_hash: str
    now: datetime
    # A refund the shop starts itself (`domain.incident`): the incident and where it pays.
    incident_id: str | None = None
    destination: Destination = Destination.ORIGINAL


async def insert_refund(session: AsyncSession, new: NewRefund) -> RefundRow:
    """Insert the refund with its claims and idempotency key in the caller's transaction.

    Raises IntegrityError when another refund holds an item or the idempotency key is
    taken: the caller rolls back and looks up which."""
    by_id = {i.item_id: i for i in new.order.items}
    amount = sum(by_id[i.item_id].unit_price * i.quantity for i in new.items)
    req = new.request
    row = RefundRow(
        refund_id=new.refund_id,
        order_id=new.order.order_id,
        buyer_id=req.buyer_id,
        merchant_id=new.order.merchant_id,
        status=RefundStatus.SUBMITTED,
        amount=amount,
        currency=new.order.currency,
        destination=new.destination,
        reason=req.reason,
        reason_text=req.reason_text,
        client_ip=(req.client.ip if req.client else None)
        or (new.order.client.ip if new.order.client else None),
        device_id=(req.client.device_id if req.client else None)
        or (new.order.client.device_id if new.order.client else None),
        evidence=[e.model_dump(mode="json") for e in req.evidence],
        progress_seq=1,
        workflow_id=workflow_id_for(new.refund_id),
        created_at=new.now,
        updated_at=new.now,
        incident_id=new.incident_id,
        remedy=req.remedy,
    )
    session.add(row)
    await session.flush()
    session.add(
        IdempotencyKeyRow(
            caller=new.caller,
            key=new.idempotency_key,
            request_hash=new.request_hash,
            refund_id=new.refund_id,
            created_at=new.now,
        )
    )
    for item in new.items:
        session.add(
            RefundItemRow(
                refund_id=new.refund_id,
                item_id=item.item_id,
                quantity=item.quantity,
                amount=by_id[item.item_id].unit_price * item.quantity,
            )
        )
        session.add(
            RefundClaimRow(
                order_id=new.order.order_id, item_id=item.item_id, refund_id=new.refund_id
            )
        )
    session.add(
        TimelineRow(refund_id=new.refund_id, seq=1, stage="submitted", at=new.now, detail="")
    )
    await session.flush()
    # The money it may pay back to balance is set aside now, before the merchant can spend it.
    await holds.hold(session, refund_id=new.refund_id, order=new.order, asked=amount, now=new.now)
    await outbox.tell_buyer_elsewhere(
        session,
        buyer_id=req.buyer_id,
        status=RefundStatus.SUBMITTED,
        facts=Facts(
            refund_id=new.refund_id,
            order_id=new.order.order_id,
            amount=amount,
            currency=new.order.currency,
        ),
        seq=1,
        now=new.now,
    )
    return row


async def awaiting_start(
    session: AsyncSession, refund_id: str
) -> tuple[RefundRow, list[RefundItemRequest]] | None:
    """The stored refund and its items, unless its workflow is known to run (or have run)."""
    row = await session.get(RefundRow, refund_id)
    assert row is not None, refund_id
    if row.workflow_started:
        return None
    items = await session.scalars(
        select(RefundItemRow)
        .where(RefundItemRow.refund_id == refund_id)
        .order_by(RefundItemRow.item_id)
    )
    return row, [RefundItemRequest(item_id=i.item_id, quantity=i.quantity) for i in items]


async def unstarted_refund_ids(
    session: AsyncSession, *, created_before: datetime, limit: int = 100
) -> list[str]:
    """Refunds stored before `created_before` whose workflow never reported in."""
    return list(
        await session.scalars(
            select(RefundRow.refund_id)
            .where(RefundRow.workflow_started.is_(False), RefundRow.created_at < created_before)
            .limit(limit)
        )
    )


async def find_idempotent(session: AsyncSession, caller: str, key: str) -> IdempotencyKeyRow | None:
    return await session.get(IdempotencyKeyRow, (caller, key))


async def mark_running(session: AsyncSession, refund_id: str) -> None:
    """The refund's workflow runs: the sweeper that starts missing workflows leaves it be."""
    await session.execute(
        update(RefundRow)
        .where(RefundRow.refund_id == refund_id, RefundRow.workflow_started.is_(False))
        .values(workflow_started=True)
    )


async def release_claims(session: AsyncSession, refund_id: str) -> None:
    await session.execute(delete(RefundClaimRow).where(RefundClaimRow.refund_id == refund_id))


# Loader options that read a refund's parts with it: one query per part, however many refunds.
WITH_PARTS = (
    selectinload(RefundRow.items),
    selectinload(RefundRow.timeline),
    selectinload(RefundRow.payouts),
    selectinload(RefundRow.commissions),
)
_PARTS = frozenset({"items", "timeline", "payouts", "commissions"})


async def load_body(session: AsyncSession, refund_id: str) -> RefundBody | None:
    """The contract body of one refund. A refund this session already read with its parts
    (`list_refunds`, `pending_reviews`...) costs no query at all."""
    row = await session.get(RefundRow, refund_id, options=WITH_PARTS)
    if row is None:
        return None
    unloaded = _PARTS & inspect(row).unloaded
    if unloaded:  # read before in this session, without its parts
        await session.refresh(row, attribute_names=sorted(unloaded))
    return body_of(row)


async def reported_document(session: AsyncSession, refund_id: str) -> str | None:
    """The refund body as the workflow last reported it (JSON), or None before any report."""
    return await session.scalar(select(RefundRow.document).where(RefundRow.refund_id == refund_id))


def body_of(row: RefundRow) -> RefundBody:
    """The contract body of a refund read `WITH_PARTS`."""
    return RefundBody(
        refund_id=row.refund_id,
        order_id=row.order_id,
        buyer_id=row.buyer_id,
        merchant_id=row.merchant_id,
        status=row.status,
        amount=row.amount,
        currency=row.currency,
        destination=row.destination,
        reason=row.reason,
        reason_text=row.reason_text,
        decision=DecisionView.model_validate(row.decision) if row.decision else None,
        risk=RiskAssessment.model_validate(row.risk) if row.risk else None,
        review=ReviewView.model_validate(row.review) if row.review else None,
        items=[
            RefundItemView(item_id=i.item_id, quantity=i.quantity, amount=i.amount)
            for i in row.items
        ],
        payouts=[payout_view(p) for p in row.payouts],
        commissions=[
            CommissionView(
                beneficiary_id=c.beneficiary_id, level=c.level, amount=c.amount, state=c.state
            )
            for c in row.commissions
        ],
        evidence=[Evidence.model_validate(e) for e in row.evidence or []],
        timeline=[TimelineEntry(stage=t.stage, at=t.at, detail=t.detail) for t in row.timeline],
        replacement_offered=bool(row.replacement_offered),
        remedy=row.remedy,
        replacement=ReplacementView.model_validate(row.replacement) if row.replacement else None,
        workflow_id=row.workflow_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def payout_view(p: PayoutRow) -> PayoutView:
    return PayoutView(
        channel=p.channel,
        amount=p.amount,
        state=p.state,
        gateway_refund_id=p.gateway_refund_id,
        out_refund_no=p.out_refund_no,
        payment_id=p.payment_id,
        attempt=p.attempt,
        gateway_status=p.gateway_status,
    )


def encode_cursor(created_at: datetime, refund_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), refund_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Raises ValueError on anything that is not a cursor this service made."""
    padded = cursor + "=" * (-len(cursor) % 4)
    created_text, refund_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
    created = datetime.fromisoformat(str(created_text))
    if created.tzinfo is None or not _REFUND_ID.match(str(refund_id)):
        raise ValueError("not a cursor")
    try:
        return created.astimezone(UTC), str(refund_id)
    except OverflowError:
        raise ValueError("not a cursor") from None


async def list_refunds(
    session: AsyncSession,
    *,
    order_id: str | None = None,
    buyer_id: str | None = None,
    status: RefundStatus | None = None,
    limit: int = 50,
    cursor: str | None = None,
    incident_id: str | None = None,
) -> tuple[list[RefundRow], str | None]:
    """Newest first, keyset-paginated on (created_at, refund_id), read with their parts."""
    stmt = select(RefundRow).options(*WITH_PARTS)
    if incident_id:
        stmt = stmt.where(RefundRow.incident_id == incident_id)
    if order_id:
        stmt = stmt.where(RefundRow.order_id == order_id)
    if buyer_id:
        stmt = stmt.where(RefundRow.buyer_id == buyer_id)
    if status:
        stmt = stmt.where(RefundRow.status == status)
    if cursor:
        created, rid = decode_cursor(cursor)
        stmt = stmt.where(
            or_(
                RefundRow.created_at < created,
                and_(RefundRow.created_at == created, RefundRow.refund_id < rid),
            )
        )
    stmt = stmt.order_by(RefundRow.created_at.desc(), RefundRow.refund_id.desc()).limit(limit + 1)
    rows = list((await session.scalars(stmt)).all())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].created_at, rows[-1].refund_id)
    return rows, next_cursor


async def pending_reviews(
    session: AsyncSession,
    *,
    limit: int = 100,
    cursor: str | None = None,
    merchant_id: str | None = None,
    risk_level: RiskLevel | None = None,
    reason: RefundReason | None = None,
) -> tuple[list[RefundRow], str | None]:
    """Refunds waiting for a person, the nearest deadline first, read with their parts, a
    page at a time: keyset paging on (deadline, refund id), which an index serves however
    long the queue is (`cursor` raises ValueError when this service did not make it)."""
    stmt = (
        select(RefundRow)
        .options(*WITH_PARTS)
        .where(RefundRow.status == RefundStatus.PENDING_REVIEW)
        .order_by(RefundRow.review_deadline.asc(), RefundRow.refund_id.asc())
        .limit(limit + 1)
    )
    if merchant_id is not None:
        stmt = stmt.where(RefundRow.merchant_id == merchant_id)
    if risk_level is not None:
        stmt = stmt.where(RefundRow.risk_level == risk_level)
    if reason is not None:
        stmt = stmt.where(RefundRow.reason == reason)
    if cursor:
        deadline, rid = decode_cursor(cursor)
        stmt = stmt.where(
            or_(
                RefundRow.review_deadline > deadline,
                and_(RefundRow.review_deadline == deadline, RefundRow.refund_id > rid),
            )
        )
    rows = list((await session.scalars(stmt)).all())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor(last.review_deadline or last.created_at, last.refund_id)
    return rows, next_cursor


async def count_in_status(
    session: AsyncSession, status: RefundStatus, *, merchant_id: str | None = None
) -> int:
    stmt = select(func.count()).select_from(RefundRow).where(RefundRow.status == status)
    if merchant_id is not None:
        stmt = stmt.where(RefundRow.merchant_id == merchant_id)
    return int(await session.scalar(stmt) or 0)


async def attention_cases(session: AsyncSession, *, limit: int = 100) -> list[RefundRow]:
    """Refunds whose money a person must locate (ABNORMAL, unverifiable), longest waiting
    first, read with their parts."""
    stmt = (
        select(RefundRow)
        .options(*WITH_PARTS)
        .where(RefundRow.status == RefundStatus.NEEDS_ATTENTION)
        .order_by(RefundRow.updated_at.asc(), RefundRow.created_at.asc())
        .limit(limit)
    )
    return list((await session.scalars(stmt)).all())


def dumped(model: Any) -> Any:
    return None if model is None else model.model_dump(mode="json")
