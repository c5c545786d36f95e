"""The reviewer console's actions on RefundWorkflow (time-skipping server, fake activities):
claims that lapse, a supervisor's reassignment, four-eyes approvals, asking the buyer for
evidence and re-checking the card keys at the supplier. Every refusal comes from the
workflow's own Update validators."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from domain.refund import (
    ApproveRequest,
    ClaimRequest,
    Evidence,
    EvidenceAsk,
    EvidenceRequest,
    ReassignRequest,
    RecheckRequest,
    RefundBody,
    RejectRequest,
    ReleaseRequest,
)
from domain.types import EvidenceKind, KeyState, PayoutState, RefundStatus
from tests.workflows.fakes import DEFAULT_POLICY, FakeBackend
from tests.workflows.support import KEY_ID, Refund, card_key_order, running_refund
from workflows.refund import RefundWorkflow

LARGE = 5000
FOUR_EYES_ABOVE = 4000  # a test policy: 50 CNY needs two reviewers


def revealed(*, four_eyes_above: int | None = None) -> Callable[[datetime], FakeBackend]:
    policy = DEFAULT_POLICY
    if four_eyes_above is not None:
        review = policy.review.model_copy(update={"four_eyes_above_amount": four_eyes_above})
        policy = policy.model_copy(update={"review": review})

    def make(now: datetime) -> FakeBackend:
        order = card_key_order(now, amount=LARGE, key_revealed=True)
        return FakeBackend(order=order, policy=policy)

    return make


async def refused(refund: Refund, update: Any, req: Any) -> tuple[str, str]:
    """The validator's refusal: (problem, reason)."""
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await refund.handle.execute_update(update, req)
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "Refused", cause
    return cause.details[0]["problem"], cause.message


async def reported(refund: Refund, check: Callable[[RefundBody], bool]) -> RefundBody:
    """The body as last written to the (fake) database, once it satisfies `check`."""
    for _ in range(300):
        reports = refund.backend.reports
        if reports and check(reports[-1].body):
            return reports[-1].body
        await asyncio.sleep(0.02)
    raise AssertionError(f"never reported; last: {refund.backend.reports[-1].body}")


async def test_a_claim_keeps_others_off_until_it_lapses(env: WorkflowEnvironment) -> None:
    async with running_refund(env, revealed(), name="claim_lapses_then_approve") as refund:
        await refund.wait_for_status(RefundStatus.PENDING_REVIEW)
        body = await refund.handle.execute_update(
            RefundWorkflow.claim, ClaimRequest(reviewer="alice")
        )
        assert body.review is not None and body.review.claimed_by == "alice"
        assert body.review.claimed_until is not None
        # Written where the queue reads it, without waiting for a status change.
        await reported(refund, lambda b: bool(b.review and b.review.claimed_by == "alice"))

        # Another reviewer is told who holds it, for every action.
        for update, req in (
            (RefundWorkflow.claim, ClaimRequest(reviewer="bob")),
            (RefundWorkflow.approve, ApproveRequest(reviewer="bob")),
            (RefundWorkflow.reject, RejectRequest(reviewer="bob", reason="no")),
            (RefundWorkflow.request_evidence, EvidenceAsk(reviewer="bob", message="more")),
            (RefundWorkflow.release, ReleaseRequest(reviewer="bob")),
        ):
            problem, reason = await refused(refund, update, req)
            assert problem in ("claimed-by-another", "not-claimed"), reason
        problem, reason = await refused(
            refund, RefundWorkflow.approve, ApproveRequest(reviewer="bob")
        )
        assert "alice is working on this case until" in reason

        # The claim lapses after the policy's claim_minutes (30): then anyone may act.
        await env.sleep(timedelta(minutes=31))
        await refund.handle.execute_update(RefundWorkflow.approve, ApproveRequest(reviewer="bob"))
        body = await refund.result()
        assert body.status is RefundStatus.REFUNDED
        assert body.review is not None and body.review.reviewer == "bob"


async def test_release_and_a_supervisors_reassignment(env: WorkflowEnvironment) -> None:
    async with running_refund(env, revealed(), name="claim_reassign_release") as refund:
        await refund.wait_for_status(RefundStatus.PENDING_REVIEW)
        await refund.handle.execute_update(RefundWorkflow.claim, ClaimRequest(reviewer="alice"))
        body = await refund.handle.execute_update(
            RefundWorkflow.reassign, ReassignRequest(supervisor="sam", to="bob")
        )
        assert body.review is not None and body.review.claimed_by == "bob"
        problem, _ = await refused(refund, RefundWorkflow.release, ReleaseRequest(reviewer="alice"))
        assert problem == "not-claimed"
        body = await refund.handle.execute_update(
            RefundWorkflow.release, ReleaseRequest(reviewer="bob")
        )
        assert body.review is not None and body.review.claimed_by is None
        await reported(refund, lambda b: bool(b.review and b.review.claimed_by is None))
        audit = [a.action for r in refund.backend.reports for a in r.audit]
        assert "review.reassigned" in audit

        await refund.handle.execute_update(
            RefundWorkflow.reject, RejectRequest(reviewer="carol", reason="key revealed")
        )
        await refund.wait_for_status(RefundStatus.REJECTED)
        problem, _ = await refused(refund, RefundWorkflow.claim, ClaimRequest(reviewer="dave"))
        assert problem == "wrong-status"


async def test_four_eyes_needs_a_second_different_reviewer(env: WorkflowEnvironment) -> None:
    make = revealed(four_eyes_above=FOUR_EYES_ABOVE)
    async with running_refund(env, make, name="four_eyes_approve") as refund:
        await refund.wait_for_status(RefundStatus.PENDING_REVIEW)
        await refund.handle.execute_update(RefundWorkflow.claim, ClaimRequest(reviewer="alice"))
        body = await refund.handle.execute_update(
            RefundWorkflow.approve, ApproveRequest(reviewer="alice", note="looks fine")
        )
        # Only the first of two: nothing is paid, the case waits for someone else.
        assert body.status is RefundStatus.PENDING_REVIEW
        assert body.review is not None and body.review.first_approval is not None
        assert (body.review.first_approval.reviewer, body.review.first_approval.amount) == (
            "alice",
            LARGE,
        )
        assert body.review.claimed_by is None
        await reported(refund, lambda b: bool(b.review and b.review.first_approval))
        assert refund.backend.payouts == []

        problem, reason = await refused(
            refund, RefundWorkflow.approve, ApproveRequest(reviewer="alice")
        )
        assert problem == "second-reviewer-needed", reason
        problem, _ = await refused(
            refund, RefundWorkflow.approve, ApproveRequest(reviewer="bob", amount=1000)
        )
        assert problem == "invalid-amount"

        await refund.handle.execute_update(RefundWorkflow.approve, ApproveRequest(reviewer="bob"))
        body = await refund.result()
        assert body.status is RefundStatus.REFUNDED
        assert [(p.amount, p.state) for p in body.payouts] == [(LARGE, PayoutState.SUCCEEDED)]
        assert body.review is not None and body.review.reviewer == "bob"
        assert body.review.first_approval is not None
        assert body.review.first_approval.reviewer == "alice"


async def test_below_the_four_eyes_amount_one_approval_pays(env: WorkflowEnvironment) -> None:
    make = revealed(four_eyes_above=FOUR_EYES_ABOVE)
    async with running_refund(env, make, name="four_eyes_partial_below") as refund:
        await refund.wait_for_status(RefundStatus.PENDING_REVIEW)
        await refund.handle.execute_update(
            RefundWorkflow.approve, ApproveRequest(reviewer="alice", amount=3000)
        )
        body = await refund.result()
        assert body.status is RefundStatus.REFUNDED and body.amount == 3000


async def test_asking_the_buyer_for_evidence(env: WorkflowEnvironment) -> None:
    async with running_refund(env, revealed(), name="evidence_requested") as refund:
        await refund.wait_for_status(RefundStatus.PENDING_REVIEW)
        message = "请上传卡密报错的截图"
        body = await refund.handle.execute_update(
            RefundWorkflow.request_evidence, EvidenceAsk(reviewer="alice", message=message)
        )
        assert body.review is not None and body.review.awaiting_evidence
        assert body.status is RefundStatus.PENDING_REVIEW
        await reported(refund, lambda b: bool(b.review and b.review.awaiting_evidence))
        assert [m for r in refund.backend.reports for m in r.buyer_messages] == [message]

        evidence = EvidenceRequest(
            evidence=[Evidence(kind=EvidenceKind.SCREENSHOT, url="https://cdn.example/e.png")]
        )
        await refund.handle.execute_update(RefundWorkflow.evidence, evidence)
        body = await reported(refund, lambda b: bool(b.review and not b.review.awaiting_evidence))
        assert body.review is not None and body.review.evidence_requested == message
        await refund.handle.execute_update(RefundWorkflow.approve, ApproveRequest(reviewer="alice"))
        body = await refund.result()
        assert body.status is RefundStatus.REFUNDED
        stages = [e.stage for e in body.timeline]
        assert stages.index("evidence_requested") < stages.index("evidence_added")
        # Each timeline entry is reported exactly once.
        assert refund.backend.stages() == stages[1:]


async def test_recheck_at_the_supplier(env: WorkflowEnvironment) -> None:
    async with running_refund(env, revealed(), name="recheck_keys") as refund:
        await refund.wait_for_status(RefundStatus.PENDING_REVIEW)
        refund.backend.key_states[KEY_ID] = KeyState.REDEEMED
        recheck: Any = RefundWorkflow.recheck_keys  # an async handler: mypy sees a coroutine
        body: RefundBody = await refund.handle.execute_update(
            recheck, RecheckRequest(reviewer="alice")
        )
        assert body.timeline[-1].stage == "card_key_rechecked"
        assert body.timeline[-1].detail == f"{KEY_ID}: redeemed"
        await reported(refund, lambda b: b.timeline[-1].stage == "card_key_rechecked")
        await refund.handle.execute_update(
            RefundWorkflow.reject, RejectRequest(reviewer="alice", reason="key redeemed")
        )
        body = await refund.wait_for_status(RefundStatus.REJECTED)
        problem, _ = await refused(
            refund, RefundWorkflow.recheck_keys, RecheckRequest(reviewer="alice")
        )
        assert problem == "wrong-status"
        await env.sleep(timedelta(days=8))  # the appeal window passes: the workflow ends
        body = await refund.result()
        assert body.status is RefundStatus.REJECTED
