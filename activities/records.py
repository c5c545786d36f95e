"""The refund's file: the case the workflow decides on, and the progress it reports.

Both are local activities: short database work inside the workflow's own task, which
keeps a refund's many small steps off the task queue's round trips."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.risk import assess_refund
from domain.model import utcnow
from domain.policy import Policy
from domain.types import RefundStatus
from store import (
    audit,
    commissions,
    holds,
    orders,
    outbox,
    progress,
    replacements,
    supplier_claims,
)
from store import refunds as refund_rows
from store.db import SessionFactory
from workflows.messages import (
    CaseFile,
    CaseRequest,
    CommissionAnswer,
    OpenCaseRequest,
    OpenedCase,
    ProgressReport,
    RecordWithCommissions,
    RiskRequest,
)


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

    @activity.defn(name="open_case")
    async def open_case(self, req: OpenCaseRequest) -> OpenedCase:
        """Everything the decision needs, in one read-only step of the workflow: the order,
        what other refunds took, the policy in force and the risk. (Commissions are frozen
        when the refund first has to wait: `record_with_commissions`.)"""
        policy = self.policy()
        async with self.reads() as session:
            order = await orders.load_order(session, req.order_id)
            if order is None:
                return OpenedCase(order=None, policy=policy, policy_version=policy.version)
            # A key replaced by an earlier refund: the item holds its replacement now.
            order, replaced_keys = await replacements.with_replacements(session, order)
            taken = await refund_rows.refunded_quantities(
                session, req.order_id, exclude_refund=req.refund_id
            )
            wanted = {i.item_id for i in req.items}
            risk = await assess_refund(
                session,
                RiskRequest(
                    refund_id=req.refund_id,
                    order_id=req.order_id,
                    buyer_id=req.buyer_id,
                    client=req.client,
                    card_key_ids=[
                        k.card_key_id
                        for item in order.items
                        if item.item_id in wanted
                        for k in item.card_keys
                    ],
                    skus=sorted({i.sku for i in order.items}),
                    at=req.at,
                ),
                policy,
            )
        return OpenedCase(
            order=order,
            already_refunded=taken,
            policy=policy,
            policy_version=policy.version,
            risk=risk,
            replaced_keys=replaced_keys,
        )

    @activity.defn(name="record_progress")
    async def record_progress(self, report: ProgressReport) -> None:
        async with self.sessions.begin() as session:
            await self._record(session, report, utcnow())

    @activity.defn(name="record_with_commissions")
    async def record_with_commissions(self, req: RecordWithCommissions) -> CommissionAnswer:
        """The refund's outcome and what it does to the distributors, in one transaction, so
        the webhook and the inbox announce the commissions as they now stand."""
        now = utcnow()
        report, move = req.report, req.commissions
        async with self.sessions.begin() as session:
            moved = report.body.commissions
            if move is not None:
                moved = await commissions.move_commissions(
                    session,
                    refund_id=move.refund_id,
                    order_id=move.order_id,
                    merchant_id=move.merchant_id,
                    currency=move.currency,
                    action=move.action,
                    refund_amount=move.refund_amount,
                    order_amount=move.order_amount,
                    now=now,
                )
                body = report.body.model_copy(update={"commissions": moved})
                report = report.model_copy(update={"body": body})
            await self._record(session, report, now)
        return CommissionAnswer(commissions=moved)

    async def _record(self, session: AsyncSession, report: ProgressReport, now: datetime) -> None:
        body = report.body
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
        if status_changed:
            await holds.follow_status(
                session, refund_id=report.refund_id, status=body.status, now=now
            )
        await progress.add_timeline(
            session, report.refund_id, report.new_entries, first_seq=report.first_entry
        )
        if status_changed and body.status is RefundStatus.REFUNDED:
            # Paid for a key the supplier confirmed invalid: claim it back from the supplier,
            # in the transaction that stores the refund paid (`store.supplier_claims`).
            await supplier_claims.open_claims(session, body, now=now)
        if report.release_claims:
            await refund_rows.release_claims(session, report.refund_id)
        await replacements.record_replacement(session, body, now=now)
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
        if report.buyer_messages:
            await outbox.message_buyer(
                session, body, seq=report.seq, messages=report.buyer_messages, now=now
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
        if status_changed:
            await outbox.tell_buyer_elsewhere(
                session,
                buyer_id=body.buyer_id,
                status=body.status,
                facts=outbox.facts_of(body),
                seq=report.seq,
                now=now,
            )
