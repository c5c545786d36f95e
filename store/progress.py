"""What the workflow reports about a refund, written where the API, listings and webhooks
read it. Reports are ordered by sequence number: a late retry of an older report adds its
timeline entries (idempotently) but never rolls the refund back."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from domain.refund import RefundBody, TimelineEntry
from store.models import RefundItemRow, RefundRow, TimelineRow
from store.refunds import dumped
from store.upsert import insert_ignore


class UnknownRefund(LookupError):
    """A report about a refund that is not in the database."""


async def apply_report(
    session: AsyncSession, *, body: RefundBody, seq: int, reprice_items: bool, now: datetime
) -> bool:
    """Store `body` as the refund's state if report `seq` is not older than the last one
    applied; `reprice_items`: the decision priced the items (a duplicate charge, a partial
    approval), store them anew. Returns whether the status changed."""
    row = await session.get(RefundRow, body.refund_id)
    if row is None:
        raise UnknownRefund(body.refund_id)
    if seq < row.progress_seq:
        return False
    status_changed = row.status != body.status
    row.progress_seq = seq
    row.workflow_started = True  # whoever started it, it runs: the sweeper can leave it be
    row.status = body.status
    row.amount = body.amount
    row.destination = body.destination
    row.decision = dumped(body.decision)
    row.risk = dumped(body.risk)
    row.risk_level = body.risk.level if body.risk else None
    row.review = dumped(body.review)
    row.review_deadline = body.review.deadline if body.review else None
    row.claimed_by = body.review.claimed_by if body.review else None
    row.claimed_until = body.review.claimed_until if body.review else None
    row.awaiting_evidence = bool(body.review and body.review.awaiting_evidence)
    row.policy_version = body.decision.policy_version if body.decision else row.policy_version
    row.evidence = [e.model_dump(mode="json") for e in body.evidence]
    row.remedy = body.remedy
    row.replacement_offered = body.replacement_offered
    row.replacement = dumped(body.replacement)
    row.updated_at = now
    row.document = body.model_dump_json()
    if reprice_items:
        await session.execute(delete(RefundItemRow).where(RefundItemRow.refund_id == row.refund_id))
        session.add_all(
            RefundItemRow(
                refund_id=row.refund_id, item_id=i.item_id, quantity=i.quantity, amount=i.amount
            )
            for i in body.items
        )
    return status_changed


async def add_timeline(
    session: AsyncSession, refund_id: str, entries: Sequence[TimelineEntry], *, first_seq: int
) -> None:
    """Entries numbered from `first_seq`; an entry already stored under its number stays."""
    await insert_ignore(
        session,
        TimelineRow,
        [
            {
                "refund_id": refund_id,
                "seq": first_seq + i,
                "stage": e.stage,
                "at": e.at,
                "detail": e.detail[:2000],
            }
            for i, e in enumerate(entries)
        ],
    )
