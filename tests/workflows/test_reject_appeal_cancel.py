"""RefundWorkflow after a refusal or a change of mind: one appeal within the window, a final
rejection, the buyer's cancel during review, and stray or foreign signals that must change
nothing."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from domain.refund import AppealRequest, CancelRequest
from domain.types import CommissionState, RefundStatus
from tests.workflows.scenarios import (
    BUYER,
    CLAW_BACK,
    FREEZE,
    LARGE,
    RELEASE,
    approve,
    assert_paid_once,
    reject,
    revealed,
    signals_processed,
    stages,
)
from tests.workflows.support import running_refund
from workflows.refund import RefundWorkflow


async def test_rejected_buyer_appeals_and_is_refunded(env: WorkflowEnvironment) -> None:
    async with running_refund(env, revealed(LARGE), name="reject_appeal_approve") as refund:
        await refund.wait_for_status(RefundStatus.PENDING_REVIEW)
        await refund.handle.signal(RefundWorkflow.on_reject, reject())
        body = await refund.wait_for_status(RefundStatus.REJECTED)
        assert body.review is not None and body.review.note == "key already revealed"
        assert refund.backend.commission_actions == [FREEZE, RELEASE]

        await env.sleep(timedelta(hours=100))  # inside the 168 h appeal window
        await refund.handle.signal(
            RefundWorkflow.on_appeal, AppealRequest(buyer_id=BUYER, text="never used it")
        )
        body = await refund.wait_for_status(RefundStatus.PENDING_REVIEW)
        assert body.review is not None
        assert body.review.appealed and body.review.appeal_text == "never used it"
        assert not body.review.escalated  # a fresh deadline for the appeal
        assert body.review.deadline > refund.started_at + timedelta(hours=124)
        assert "appealed" in stages(body)

        await refund.handle.signal(RefundWorkflow.on_approve, approve())
        body = await refund.result()
        assert body.status is RefundStatus.REFUNDED
        assert_paid_once(refund.backend, LARGE)
        assert refund.backend.commission_actions == [FREEZE, RELEASE, FREEZE, CLAW_BACK]


async def test_appeal_rejected_again_is_final(env: WorkflowEnvironment) -> None:
    async with running_refund(env, revealed(LARGE), name="reject_appeal_reject") as refund:
        await refund.wait_for_status(RefundStatus.PENDING_REVIEW)
        await refund.handle.signal(RefundWorkflow.on_reject, reject())
        await refund.wait_for_status(RefundStatus.REJECTED)
        await refund.handle.signal(
            RefundWorkflow.on_appeal, AppealRequest(buyer_id=BUYER, text="please look again")
        )
        await refund.wait_for(lambda b: bool(b.review and b.review.appealed))
        await refund.handle.signal(RefundWorkflow.on_reject, reject())

        body = await refund.result()  # once only: no second appeal window
        assert body.status is RefundStatus.REJECTED
        assert await refund.lifetime() < timedelta(hours=1)
        assert refund.backend.payouts == []
        assert refund.backend.commission_actions == [FREEZE, RELEASE, FREEZE, RELEASE]
        assert refund.backend.reports[-1].release_claims


async def test_no_appeal_within_the_window_completes_rejected(env: WorkflowEnvironment) -> None:
    async with running_refund(env, revealed(LARGE), name="reject_no_appeal") as refund:
        await refund.wait_for_status(RefundStatus.PENDING_REVIEW)
        await refund.handle.signal(RefundWorkflow.on_reject, reject())
        await refund.wait_for_status(RefundStatus.REJECTED)

        await env.sleep(timedelta(hours=167))
        description = await refund.handle.describe()
        assert description.status is WorkflowExecutionStatus.RUNNING  # may still appeal

        body = await refund.result()
        assert body.status is RefundStatus.REJECTED
        assert await refund.lifetime() >= timedelta(hours=168)
        assert refund.backend.payouts == []
        last = refund.backend.reports[-1]
        assert last.body.status is RefundStatus.REJECTED and last.release_claims


async def test_buyer_cancels_during_review(env: WorkflowEnvironment) -> None:
    async with running_refund(env, revealed(LARGE), name="cancel_in_review") as refund:
        await refund.wait_for_status(RefundStatus.PENDING_REVIEW)

        await refund.handle.signal(RefundWorkflow.on_cancel, CancelRequest(buyer_id="U-99"))
        body = await signals_processed(refund, "after the stranger's cancel")
        assert body.status is RefundStatus.PENDING_REVIEW  # someone else's cancel: ignored

        await refund.handle.signal(RefundWorkflow.on_cancel, CancelRequest(buyer_id=BUYER))
        body = await refund.result()
        assert body.status is RefundStatus.CANCELLED
        assert refund.backend.payouts == []
        assert "lock_card_keys" not in refund.backend.names()
        assert refund.backend.commission_actions == [FREEZE, RELEASE]
        assert [c.state for c in body.commissions] == [CommissionState.RELEASED]
        assert refund.backend.reports[-1].release_claims


async def test_approve_outside_review_is_ignored(env: WorkflowEnvironment) -> None:
    async with running_refund(env, revealed(LARGE), name="approve_outside_review") as refund:
        await refund.wait_for_status(RefundStatus.PENDING_REVIEW)
        await refund.handle.signal(RefundWorkflow.on_reject, reject())
        await refund.wait_for_status(RefundStatus.REJECTED)

        # A late approval (say a second reviewer's stale screen) must not pay, nor be kept for
        # the appeal's review.
        await refund.handle.signal(RefundWorkflow.on_approve, approve("late-reviewer"))
        await refund.handle.signal(
            RefundWorkflow.on_appeal, AppealRequest(buyer_id=BUYER, text="please look again")
        )
        await refund.wait_for(lambda b: bool(b.review and b.review.appealed))
        body = await signals_processed(refund, "after the appeal")
        assert body.status is RefundStatus.PENDING_REVIEW
        assert refund.backend.payouts == []

        await refund.handle.signal(RefundWorkflow.on_reject, reject())
        body = await refund.result()
        assert body.status is RefundStatus.REJECTED
        assert body.review is not None and body.review.reviewer == "alice"
        assert refund.backend.payouts == []


async def test_stranger_cannot_appeal(env: WorkflowEnvironment) -> None:
    async with running_refund(env, revealed(LARGE), name="stranger_appeal") as refund:
        await refund.wait_for_status(RefundStatus.PENDING_REVIEW)
        await refund.handle.signal(RefundWorkflow.on_reject, reject())
        await refund.wait_for_status(RefundStatus.REJECTED)
        await refund.handle.signal(
            RefundWorkflow.on_appeal, AppealRequest(buyer_id="U-99", text="me too")
        )
        body = await refund.result()
        assert body.status is RefundStatus.REJECTED
        assert body.review is not None and not body.review.appealed
