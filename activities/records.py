"""The refund's file: the case the workflow decides on, and the progress it reports.

Both are local activities: short database work inside the workflow's own task, which
keeps a refund's many small steps off the task queue's round trips."""

from __future__ import annotations

from collections.abc import Callable

from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain.model import utcnow
from domain.policy import Policy
from store import audit, orders, outbox, progress
from store import refunds as refund_rows
from store.db import SessionFactory
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
        body = report.body
        async with self.sessions.begin() as session:
            try:
                status_changed = await progress.apply_report(
                    session,
                    body=body,
                    seq=report.seq,
                    reprice_items=report.reprice_items,
                    now=now,
                )
            except progress.UnknownRefund:
                raise ApplicationError(
                    f"refund {report.refund_id} is not in the database",
                    type="UnknownRefund",
                    non_retryable=True,
                ) from None
            await progress.add_timeline(
                session, report.refund_id, report.new_entries, first_seq=report.first_entry
            )
            if report.release_claims:
                await refund_rows.release_claims(session, report.refund_id)
            if report.cancel_order:
                await orders.mark_cancelled(session, body.order_id)
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
