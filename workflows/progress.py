"""The refund as everyone sees it, kept by the workflow: the contract body (`view`), its
timeline, and its reports to the database.

Every stage change goes through here, so the API, webhooks, the `status` query, the
`RefundStatus` search attribute and the Temporal UI's current details always tell the same
story. Reports are ordered by sequence number, so a late retry never rolls the stored
refund back."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate

from domain.refund import PayoutView, RefundBody, TimelineEntry, workflow_id_for
from domain.types import PayoutState, RefundStatus, RiskLevel
from domain.wording import channel_name, yuan
from workflows import steps
from workflows.messages import (
    AuditEvent,
    CommissionRequest,
    ProgressReport,
    RecordWithCommissions,
    RefundInput,
)
from workflows.options import DB_RETRY, DB_TIMEOUT
from workflows.search import REFUND_STATUS


class Progress:
    def __init__(self, inp: RefundInput) -> None:
        self.view = RefundBody(
            refund_id=inp.refund_id,
            order_id=inp.order_id,
            buyer_id=inp.buyer_id,
            merchant_id=inp.merchant_id,
            status=RefundStatus.SUBMITTED,
            amount=inp.amount,
            currency=inp.currency,
            reason=inp.reason,
            reason_text=inp.reason_text,
            evidence=list(inp.evidence),
            timeline=[TimelineEntry(stage="submitted", at=inp.created_at)],
            workflow_id=workflow_id_for(inp.refund_id),
            created_at=inp.created_at,
            updated_at=inp.created_at,
        )
        self.reported_entries = 1  # the API wrote "submitted" with the refund
        self.seq = 1
        self.unreported = False  # a handler changed the view; report it at the next chance
        self.items_repriced = False  # the decision priced the items: store them anew
        self.alerts: list[str] = []
        self.audit: list[AuditEvent] = []
        self.buyer_messages: list[str] = []
        # Batched: search attributes change once per stage the refund rests in (`publish`),
        # not once per status word it passes through; each upsert is a history event.
        self.batched = False
        self._unpublished: list[SearchAttributeUpdate[Any]] = []
        self._published_status = RefundStatus.SUBMITTED
        # A commission freeze to make with the next report: the refund has to wait now.
        self.freeze_on_rest: CommissionRequest | None = None

    @property
    def refund_id(self) -> str:
        return self.view.refund_id

    # ------------------------------------------------------------- changes
    def set_status(self, status: RefundStatus, stage: str, detail: str) -> None:
        self.view.status = status
        self.entry(stage, detail)
        if not self.batched:
            workflow.upsert_search_attributes([REFUND_STATUS.value_set(status.value)])
            workflow.set_current_details(self.details())

    def search(self, *updates: SearchAttributeUpdate[Any]) -> None:
        """Set search attributes (risk, amount, review deadline) with the next publication."""
        if self.batched:
            self._unpublished.extend(updates)
        else:
            workflow.upsert_search_attributes(list(updates))

    def publish(self) -> None:
        """Show SREs where the refund stands: one upsert for everything changed since."""
        if not self.batched:
            return
        updates = self._unpublished
        if self.view.status is not self._published_status:
            updates.append(REFUND_STATUS.value_set(self.view.status.value))
            self._published_status = self.view.status
        if updates:
            workflow.upsert_search_attributes(updates)
            workflow.set_current_details(self.details())
        self._unpublished = []

    def entry(self, stage: str, detail: str = "") -> None:
        self.view.timeline.append(TimelineEntry(stage=stage, at=workflow.now(), detail=detail))
        self.view.updated_at = workflow.now()

    def put_payout(self, payout: PayoutView) -> None:
        self.view.payouts = [
            p for p in self.view.payouts if p.out_refund_no != payout.out_refund_no
        ]
        self.view.payouts.append(payout)

    def tell_buyer(self, message: str) -> None:
        """A message to the buyer's inbox, written with the next report."""
        self.buyer_messages.append(message)

    def alert(self, message: str) -> None:
        """A supervisor alert, written with the next report."""
        self.alerts.append(message)

    def audited(self, step: str, *, actor: str, action: str, payload: dict[str, Any]) -> None:
        """An audit-log event, keyed by the step and the report it goes out with."""
        self.audit.append(
            AuditEvent(
                key=f"{self.refund_id}:{step}:{self.seq}",
                actor=actor,
                action=action,
                payload=payload,
            )
        )

    # ------------------------------------------------------------- reports
    async def report(
        self,
        *,
        release_claims: bool = False,
        cancel_order: bool = False,
        commissions: CommissionRequest | None = None,
    ) -> None:
        """Write where the refund stands; with `commissions` (or a freeze waiting for the
        refund to rest), the commission move it announces goes in the same transaction (one
        history marker, one write)."""
        self.publish()
        commissions, self.freeze_on_rest = commissions or self.freeze_on_rest, None
        self.seq += 1
        report = ProgressReport(
            seq=self.seq,
            body=self.view,
            first_entry=self.reported_entries + 1,
            release_claims=release_claims,
            cancel_order=cancel_order,
            reprice_items=self.items_repriced,
            alerts=self.alerts,
            audit=self.audit,
            buyer_messages=self.buyer_messages,
        )
        # What this report carries: entries a handler adds while it is written go out with
        # the next one, not lost between the two.
        reported = len(self.view.timeline)
        self.unreported = self.items_repriced = False
        self.alerts, self.audit, self.buyer_messages = [], [], []
        if commissions is None:
            await workflow.execute_local_activity(
                steps.record_progress,
                report,
                start_to_close_timeout=DB_TIMEOUT,
                retry_policy=DB_RETRY,
            )
        else:
            moved = await workflow.execute_local_activity(
                steps.record_with_commissions,
                RecordWithCommissions(report=report, commissions=commissions),
                start_to_close_timeout=DB_TIMEOUT,
                retry_policy=DB_RETRY,
            )
            self.view.commissions = moved.commissions
        self.reported_entries = reported

    async def wait(self, done: Callable[[], bool], *, until: datetime) -> bool:
        """Wait for `done()` until a deadline, reporting handler-made changes (evidence) as
        they come. Returns False when the deadline passed first."""
        self.publish()
        while True:
            remaining = (until - workflow.now()).total_seconds()
            if remaining <= 0:
                return done()
            try:
                await workflow.wait_condition(lambda: done() or self.unreported, timeout=remaining)
            except TimeoutError:
                return done()
            if self.unreported:
                await self.report()
            if done():
                return True

    # ------------------------------------------------------------- words
    def money_summary(self) -> str:
        done = [p for p in self.view.payouts if p.state is PayoutState.SUCCEEDED]
        return "; ".join(f"{yuan(p.amount)} via {channel_name(p.channel)}" for p in done)

    def explanation(self) -> str:
        d = self.view.decision
        return d.explanation if d else ""

    def details(self) -> str:
        """What the Temporal UI shows for this refund right now."""
        v = self.view
        lines = [
            f"**{v.status.value}** · {yuan(v.amount)} · order {v.order_id} · buyer {v.buyer_id}"
        ]
        if v.decision:
            lines.append(f"rule `{v.decision.rule}`: {v.decision.explanation}")
        if v.risk and v.risk.level is not RiskLevel.LOW:
            lines.append(f"risk {v.risk.level.value}: " + ", ".join(s.code for s in v.risk.signals))
        if v.review and v.status is RefundStatus.PENDING_REVIEW:
            esc = " (escalated)" if v.review.escalated else ""
            lines.append(f"review deadline {v.review.deadline.isoformat()}{esc}")
        if v.status is RefundStatus.NEEDS_ATTENTION and v.timeline:
            lines.append(f"needs attention: {v.timeline[-1].detail}")
        return "\n\n".join(lines)
