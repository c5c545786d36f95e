"""What people may ask of a refund — approve, reject, evidence, cancel, appeal, resolve, and
the reviewer console's claim, release, reassign, ask for evidence and re-check at the
supplier — as the RefundWorkflow's Update and signal handlers (a base class it inherits
them from).

Each action is an Update whose validator is the only judge (`domain.acceptance`): it refuses
before history records anything, and the API turns the refusal into its HTTP answer. The
original six also have a signal of the same name, for the Temporal UI, the CLI and histories
recorded before the Updates existed; a signal takes the same path and is dropped if refused.
The console's actions are Updates only (`temporal workflow update execute` sends them).

Four eyes (`FOUR_EYES`): an approval above the policy's `review.four_eyes_above_amount` is
the first of two; the refund pays when a second, different reviewer approves. Refunds whose
history was recorded before the patch replay their single approvals as they were."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    import workflows.card_keys as card_keys
    from domain import acceptance
    from domain.acceptance import Refusal
    from domain.decision import DecisionCase
    from domain.order import Order
    from domain.policy import Policy
    from domain.refund import (
        AppealRequest,
        ApproveRequest,
        CancelRequest,
        ClaimRequest,
        EvidenceAsk,
        EvidenceRequest,
        FirstApproval,
        ReassignRequest,
        RecheckRequest,
        RefundBody,
        RejectRequest,
        ReleaseRequest,
        RemedyRequest,
        ResolveRequest,
        ReviewView,
    )
    from domain.types import Remedy
    from domain.wording import describe_keys, yuan
    from workflows.messages import GatewayNotice, RefundInput
    from workflows.payback import Payback
    from workflows.progress import Progress

# The patch under which approvals above the four-eyes amount wait for a second reviewer.
FOUR_EYES = "four-eyes-approval"
# A claim's length when the policy is not loaded yet (it always is while a review waits).
DEFAULT_CLAIM = timedelta(minutes=30)


class RefundRequests:
    """The handlers; the state they touch is the workflow's (set in its `__init__`)."""

    inp: RefundInput
    view: RefundBody
    progress: Progress
    payback: Payback
    order: Order | None
    policy: Policy | None
    case: DecisionCase | None
    approval: ApproveRequest | None
    rejection: RejectRequest | None
    cancel_request: CancelRequest | None
    appeal_request: AppealRequest | None
    keys_locked: bool
    remedy: Remedy | None

    def _answered(self) -> bool:
        """Someone already approved or rejected the review in progress."""
        return self.approval is not None or self.rejection is not None

    @workflow.update(name="approve")
    def approve(self, req: ApproveRequest) -> RefundBody:
        self._take_approval(req)
        return self.view

    @approve.validator
    def _may_approve(self, req: ApproveRequest) -> None:
        _refuse(
            acceptance.may_approve(self.view, req, answered=self._answered(), now=workflow.now())
        )

    @workflow.signal(name="approve")
    def on_approve(self, req: ApproveRequest) -> None:
        refusal = acceptance.may_approve(
            self.view, req, answered=self._answered(), now=workflow.now()
        )
        if refusal is None:
            self._take_approval(req)

    def _take_approval(self, req: ApproveRequest) -> None:
        """One approval, or the first of two (four eyes); the second pays what the first
        approved."""
        review = self.view.review
        four_eyes = self.policy.review.four_eyes_above_amount if self.policy else None
        if review is not None and review.first_approval is not None:
            req = req.model_copy(update={"amount": review.first_approval.amount})
        elif (
            review is not None
            and acceptance.needs_second_reviewer(self.view, req, four_eyes_above=four_eyes)
            and workflow.patched(FOUR_EYES)
        ):
            amount = acceptance.approval_amount(self.view, req)
            review.first_approval = FirstApproval(
                reviewer=req.reviewer, amount=amount, note=req.note, at=workflow.now()
            )
            review.claimed_by = review.claimed_until = None  # the second reviewer's turn
            self.progress.entry(
                "first_approval",
                f"{yuan(amount)} approved by {req.reviewer}; a second reviewer must approve",
            )
            self.progress.audited(
                f"first-approval:{req.reviewer}",
                actor=f"reviewer:{req.reviewer}",
                action="refund.first_approval",
                payload={"amount": amount, "note": req.note},
            )
            self.progress.unreported = True
            return
        self.approval = req

    @workflow.update(name="reject")
    def reject(self, req: RejectRequest) -> RefundBody:
        self.rejection = req
        return self.view

    @reject.validator
    def _may_reject(self, req: RejectRequest) -> None:
        _refuse(
            acceptance.may_reject(self.view, req, answered=self._answered(), now=workflow.now())
        )

    @workflow.signal(name="reject")
    def on_reject(self, req: RejectRequest) -> None:
        refusal = acceptance.may_reject(
            self.view, req, answered=self._answered(), now=workflow.now()
        )
        if refusal is None:
            self.rejection = req

    # --------------------------------------------------------- the console's review actions
    def _waiting_review(self) -> ReviewView:
        assert self.view.review is not None  # validators admit these only while one waits
        return self.view.review

    def _claim_for(self, reviewer: str) -> None:
        length = (
            timedelta(minutes=self.policy.review.claim_minutes) if self.policy else DEFAULT_CLAIM
        )
        review = self._waiting_review()
        review.claimed_by, review.claimed_until = reviewer, workflow.now() + length
        self.progress.unreported = True

    @workflow.update(name="claim")
    def claim(self, req: ClaimRequest) -> RefundBody:
        self._claim_for(req.reviewer)
        return self.view

    @claim.validator
    def _may_claim(self, req: ClaimRequest) -> None:
        _refuse(acceptance.may_claim(self.view, req, answered=self._answered(), now=workflow.now()))

    @workflow.update(name="release")
    def release(self, req: ReleaseRequest) -> RefundBody:
        review = self._waiting_review()
        review.claimed_by = review.claimed_until = None
        self.progress.unreported = True
        return self.view

    @release.validator
    def _may_release(self, req: ReleaseRequest) -> None:
        _refuse(acceptance.may_release(self.view, req, now=workflow.now()))

    @workflow.update(name="reassign")
    def reassign(self, req: ReassignRequest) -> RefundBody:
        self._claim_for(req.to)
        self.progress.audited(
            f"reassign:{req.to}",
            actor=f"supervisor:{req.supervisor}",
            action="review.reassigned",
            payload={"to": req.to},
        )
        return self.view

    @reassign.validator
    def _may_reassign(self, req: ReassignRequest) -> None:
        _refuse(acceptance.may_reassign(self.view, req, answered=self._answered()))

    @workflow.update(name="request_evidence")
    def request_evidence(self, req: EvidenceAsk) -> RefundBody:
        """The buyer is asked (inbox and progress page); the case waits for the answer."""
        review = self._waiting_review()
        review.evidence_requested, review.awaiting_evidence = req.message, True
        self.progress.entry("evidence_requested", req.message)
        self.progress.tell_buyer(req.message)
        self.progress.audited(
            f"ask-evidence:{len(self.view.timeline)}",
            actor=f"reviewer:{req.reviewer}",
            action="review.evidence_requested",
            payload={"message": req.message},
        )
        self.progress.unreported = True
        return self.view

    @request_evidence.validator
    def _may_ask_for_evidence(self, req: EvidenceAsk) -> None:
        _refuse(
            acceptance.may_ask_for_evidence(
                self.view, req, answered=self._answered(), now=workflow.now()
            )
        )

    @workflow.update(name="recheck_keys")
    async def recheck_keys(self, req: RecheckRequest) -> RefundBody:
        """Ask the supplier again; what it says now is what the rules and the reviewer see."""
        keys = card_keys.keys_of(self.order, self.inp.items)
        states = await card_keys.redemption_states(self.inp.refund_id, keys, local=True)
        if self.case is not None:
            self.case = self.case.model_copy(
                update={"key_states": {**self.case.key_states, **states}}
            )
        self.progress.entry("card_key_rechecked", describe_keys(states))
        self.progress.unreported = True
        return self.view

    @recheck_keys.validator
    def _may_recheck_keys(self, req: RecheckRequest) -> None:
        has_keys = bool(card_keys.keys_of(self.order, self.inp.items))
        _refuse(acceptance.may_recheck_keys(self.view, req, has_keys=has_keys))

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
        if self.view.review is not None:
            self.view.review.awaiting_evidence = False
        self.view.evidence.extend(req.evidence)
        self.progress.entry("evidence_added", f"{len(req.evidence)} item(s)")
        self.progress.unreported = True

    @workflow.update(name="choose_remedy")
    def choose_remedy(self, req: RemedyRequest) -> RefundBody:
        """Money or a fresh key, as the buyer now chooses; it takes effect when the refund
        would pay (at once, or once a person approves)."""
        self.remedy = self.view.remedy = req.remedy
        self.progress.entry("remedy_chosen", req.remedy.value)
        self.progress.unreported = True
        return self.view

    @choose_remedy.validator
    def _may_choose_remedy(self, req: RemedyRequest) -> None:
        _refuse(acceptance.may_choose_remedy(self.view, req, keys_voided=self.keys_locked))

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
