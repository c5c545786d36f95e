"""What people may ask of a refund — approve, reject, evidence, cancel, appeal, resolve —
as the RefundWorkflow's Update and signal handlers (a base class it inherits them from).

Each action is an Update whose validator is the only judge (`domain.acceptance`): it refuses
before history records anything, and the API turns the refusal into its HTTP answer. Each
also has a signal of the same name, for the Temporal UI, the CLI and histories recorded
before the Updates existed; a signal takes the same path and is dropped if refused."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain import acceptance
    from domain.acceptance import Refusal
    from domain.refund import (
        AppealRequest,
        ApproveRequest,
        CancelRequest,
        EvidenceRequest,
        RefundBody,
        RejectRequest,
        ResolveRequest,
    )
    from workflows.messages import GatewayNotice
    from workflows.payback import Payback
    from workflows.progress import Progress


class RefundRequests:
    """The handlers; the state they touch is the workflow's (set in its `__init__`)."""

    view: RefundBody
    progress: Progress
    payback: Payback
    approval: ApproveRequest | None
    rejection: RejectRequest | None
    cancel_request: CancelRequest | None
    appeal_request: AppealRequest | None
    keys_locked: bool

    def _answered(self) -> bool:
        """Someone already approved or rejected the review in progress."""
        return self.approval is not None or self.rejection is not None

    @workflow.update(name="approve")
    def approve(self, req: ApproveRequest) -> RefundBody:
        self.approval = req
        return self.view

    @approve.validator
    def _may_approve(self, req: ApproveRequest) -> None:
        _refuse(acceptance.may_approve(self.view, req, answered=self._answered()))

    @workflow.signal(name="approve")
    def on_approve(self, req: ApproveRequest) -> None:
        if acceptance.may_approve(self.view, req, answered=self._answered()) is None:
            self.approval = req

    @workflow.update(name="reject")
    def reject(self, req: RejectRequest) -> RefundBody:
        self.rejection = req
        return self.view

    @reject.validator
    def _may_reject(self, req: RejectRequest) -> None:
        _refuse(acceptance.may_reject(self.view, req, answered=self._answered()))

    @workflow.signal(name="reject")
    def on_reject(self, req: RejectRequest) -> None:
        if acceptance.may_reject(self.view, req, answered=self._answered()) is None:
            self.rejection = req

    @workflow.update(name="evidence")
    def evidence(self, req: EvidenceRequest) -> RefundBody:
        self._add_evidence(req)
        return self.view

    @evidence.validator
    def _may_add_evidence(self, req: EvidenceRequest) -> None:
        _refuse(acceptance.may_add_evidence(self.view, req))

    @workflow.signal(name="evidence")
    def on_evidence(self, req: EvidenceRequest) -> None:
        if acceptance.may_add_evidence(self.view, req) is None:
            self._add_evidence(req)

    def _add_evidence(self, req: EvidenceRequest) -> None:
        self.view.evidence.extend(req.evidence)
        self.progress.entry("evidence_added", f"{len(req.evidence)} item(s)")
        self.progress.unreported = True

    @workflow.update(name="cancel")
    def cancel(self, req: CancelRequest) -> RefundBody:
        self.cancel_request = req
        return self.view

    @cancel.validator
    def _may_cancel(self, req: CancelRequest) -> None:
        _refuse(acceptance.may_cancel(self.view, req, keys_voided=self.keys_locked))

    @workflow.signal(name="cancel")
    def on_cancel(self, req: CancelRequest) -> None:
        if acceptance.may_cancel(self.view, req, keys_voided=self.keys_locked) is None:
            self.cancel_request = req

    @workflow.update(name="appeal")
    def appeal(self, req: AppealRequest) -> RefundBody:
        self.appeal_request = req
        return self.view

    @appeal.validator
    def _may_appeal(self, req: AppealRequest) -> None:
        _refuse(acceptance.may_appeal(self.view, req))

    @workflow.signal(name="appeal")
    def on_appeal(self, req: AppealRequest) -> None:
        if acceptance.may_appeal(self.view, req) is None:
            self.appeal_request = req

    @workflow.update(name="resolve")
    async def resolve(self, req: ResolveRequest) -> RefundBody:
        """A supervisor's or SRE's resolution of a refund that needs attention; returns the
        refund once it has been carried out."""
        ticket = self.payback.take_resolution(req)
        await workflow.wait_condition(lambda: self.payback.resolutions_done >= ticket)
        return self.view

    @resolve.validator
    def _may_resolve(self, req: ResolveRequest) -> None:
        _refuse(acceptance.may_resolve(self.view, req, attention=self.payback.attention))

    @workflow.signal(name="resolve")
    def on_resolve(self, req: ResolveRequest) -> None:
        if acceptance.may_resolve(self.view, req, attention=self.payback.attention) is None:
            self.payback.take_resolution(req)

    @workflow.signal(name="gateway_notification")
    def on_gateway_notification(self, notice: GatewayNotice) -> None:
        self.payback.notices[notice.out_refund_no] = notice

    @workflow.query(name="status")
    def status(self) -> RefundBody:
        return self.view


def _refuse(refusal: Refusal | None) -> None:
    """Refuse an Update before history records it; the caller learns why (and which HTTP
    problem it is) from the failure's details."""
    if refusal is not None:
        raise ApplicationError(
            refusal.reason,
            {"problem": refusal.problem, "field": refusal.field},
            type="Refused",
            non_retryable=True,
        )
