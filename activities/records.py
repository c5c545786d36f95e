"""The refund's file: the case the workflow decides on, and the progress it reports.

Both are local activities: short database work inside the workflow's own task, which
keeps a refund's many small steps off the task queue's round trips."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain.model import utcnow
from domain.policy import Policy
from store import audit, orders, outbox
from store import refunds as refund_rows
from store.db import SessionFactory
from store.models import RefundItemRow, RefundRow, TimelineRow
from store.upsert import insert_ignore
from workflows.messages import CaseFile, CaseRequest, ProgressReport


class RefundRecords:
    def __init__(
        self,
        sessions: SessionFactory,
        *,
        policy: Callable[[], Policy],
        webhook_url: str = "",
        reads: SessionFactory | None = None,
    ) -> None:
        self.sessions = sessions
        self.reads = reads or sessions
        self.policy = policy
        self.webhook_url = webhook_url

    @activity.defn(name="load_case")
    async def load_case(self, req: CaseRequest) -> CaseFile:
        policy = self.policy()
        async with self.reads() as session:
            order = await orders.load_order(session, req.order_id)
            taken = await refund_rows.refunded_quantities(
                session, req.order_id, exclude_refund=req.refund_id
            )
        return CaseFile(
            order=order, already_refunded=taken, policy=policy, policy_version=policy.version
        )

    @activity.defn(name="record_progress")
    async def record_progress(self, report: ProgressReport) -> None:
        now = utcnow()
        async with self.sessions.begin() as session:
            row = await session.get(RefundRow, report.refund_id)
            if row is None:
                raise ApplicationError(
                    f"refund {report.refund_id} is not in the database",
                    type="UnknownRefund",
                    non_retryable=True,
                )
            # Reports are ordered by seq: a late retry of an older one must not roll back state.
            body = report.body
            newer = report.seq >= row.progress_seq
            status_changed = newer and row.status != body.status.value
            if newer:
                _apply(row, report, now)
                if report.reprice_items:
                    await _replace_items(session, report)
            await insert_ignore(
                session,
                TimelineRow,
                [
                    {
                        "refund_id": report.refund_id,
                        "seq": report.first_entry + i,
                        "stage": e.stage,
                        "at": e.at,
                        "detail": e.detail[:2000],
                    }
                    for i, e in enumerate(report.new_entries)
                ],
            )
            if report.release_claims:
                await refund_rows.release_claims(session, report.refund_id)
            if report.cancel_order:
                await orders.mark_cancelled(session, row.order_id)
            for event in report.audit:
                await audit.append(
                    session,
                    event_key=event.key,
                    actor=event.actor,
                    action=event.action,
                    subject=f"refund:{report.refund_id}",
                    payload=event.payload,
                    at=now,
                )
            if status_changed or report.alerts:
                await outbox.enqueue_status(
                    session,
                    body,
                    seq=report.seq,
                    webhook_url=self.webhook_url if status_changed else "",
                    inbox=status_changed,
                    alerts=report.alerts,
                    now=now,
                )


def _apply(row: RefundRow, report: ProgressReport, now: datetime) -> None:
    body = report.body
    row.progress_seq = report.seq
    row.workflow_started = True  # whoever started it, it runs: the sweeper can leave it be
    row.status = body.status.value
    row.amount = body.amount
    row.destination = body.destination.value
    row.decision = refund_rows.dumped(body.decision)
    row.risk = refund_rows.dumped(body.risk)
    row.risk_level = body.risk.level.value if body.risk else None
    row.review = refund_rows.dumped(body.review)
    row.review_deadline = body.review.deadline if body.review else None
    row.policy_version = body.decision.policy_version if body.decision else row.policy_version
    row.evidence = [e.model_dump(mode="json") for e in body.evidence]
    row.updated_at = now


async def _replace_items(session: AsyncSession, report: ProgressReport) -> None:
    """The decision prices the items (a duplicate charge, a partial approval)."""
    await session.execute(delete(RefundItemRow).where(RefundItemRow.refund_id == report.refund_id))
    session.add_all(
        RefundItemRow(
            refund_id=report.refund_id, item_id=i.item_id, quantity=i.quantity, amount=i.amount
        )
        for i in report.body.items
    )
