"""RefundWorkflow waiting for a person: the 24-hour review deadline really elapses (small
refunds then approve themselves, large ones keep waiting with louder alerts), a reviewer may
approve less than asked, and evidence sent during the review is reported at once."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from domain.types import Outcome, RefundStatus
from tests.workflows.scenarios import (
    CLAW_BACK,
    FREEZE,
    LARGE,
    SMALL,
    approve,
    assert_paid_once,
    evidence,
    revealed,
    stages,
)
from tests.workflows.support import running_refund
from workflows.refund import RefundWorkflow


async def test_unanswered_small_review_escalates_and_approves_itself(
    env: WorkflowEnvironment,
) -> None:
    async with running_refund(env, revealed(SMALL), name="review_expired_auto_approve") as refund:
        waiting = await refund.wait_for_status(RefundStatus.PENDING_REVIEW)
        assert waiting.decision is not None and waiting.decision.rule == "card_key.revealed"
        assert waiting.review is not None and not waiting.review.escalated
        deadline = waiting.review.deadline
        assert abs(deadline - refund.started_at - timedelta(hours=24)) < timedelta(minutes=1)

        await env.sleep(timedelta(hours=25))
        body = await refund.result()
        backend = refund.backend

        assert body.status is RefundStatus.REFUNDED
        assert body.review is not None and body.review.escalated
        assert body.review.reviewer == "system"
        assert body.decision is not None
        assert body.decision.rule == "review.expired_auto_approve"
        assert_paid_once(backend, SMALL)
        escalated = next(e for e in body.timeline if e.stage == "review_escalated")
        assert escalated.at >= deadline
        # Supervisors are alerted in the report that shows the escalation.
        report = next(r for r in backend.reports if r.body.review and r.body.review.escalated)
        assert any("review deadline passed" in a for a in report.alerts)
        assert backend.commission_actions == [FREEZE, CLAW_BACK]


async def test_unanswered_large_review_keeps_waiting_with_louder_alerts(
    env: WorkflowEnvironment,
) -> None:
    async with running_refund(env, revealed(LARGE), name="review_expired_wait") as refund:
        await refund.wait_for_status(RefundStatus.PENDING_REVIEW)
        backend = refund.backend

        await env.sleep(timedelta(hours=25))
        body = await refund.wait_for(lambda b: bool(b.review and b.review.escalated))
        assert body.status is RefundStatus.PENDING_REVIEW
        assert body.decision is not None and body.decision.outcome is Outcome.REVIEW
        assert backend.alerts() == [f"refund {body.refund_id}: review deadline passed"]

        # Re-alerted every realert_hours (4 h) after the 24 h deadline: at 28, 32, ... 44 h.
        await env.sleep(timedelta(hours=22))  # 47 h after the start
        body = await refund.wait_for(lambda b: stages(b).count("review_reminder") == 5)
        reminders = [a for a in backend.alerts() if "still waiting for review" in a]
        assert len(reminders) == 5
        at = [e.at for e in body.timeline if e.stage == "review_reminder"]
        gaps = [b - a for a, b in itertools.pairwise(at)]
        # Each wake-up is scheduled from the previous one, so reminders do not drift.
        assert all(abs(g - timedelta(hours=4)) < timedelta(seconds=1) for g in gaps), gaps

        # Past 48 h nobody answered and nothing was paid. (Land between reminders: the Java
        # test server can fail a workflow task that takes a signal in the same instant a timer
        # fires, "invalid history builder state for action".)
        await env.sleep(timedelta(hours=2))  # 49 h after the start
        body = await refund.wait_for(lambda b: stages(b).count("review_reminder") == 6)
        assert body.status is RefundStatus.PENDING_REVIEW
        assert backend.payouts == []

        await refund.handle.signal(RefundWorkflow.on_approve, approve("bob"))
        body = await refund.result()
        assert body.status is RefundStatus.REFUNDED
        assert body.review is not None and body.review.reviewer == "bob"
        assert body.review.escalated
        assert_paid_once(backend, LARGE)


async def test_reviewer_may_approve_less_than_asked(env: WorkflowEnvironment) -> None:
    async with running_refund(env, revealed(LARGE), name="review_partial_approve") as refund:
        await refund.wait_for_status(RefundStatus.PENDING_REVIEW)
        await refund.handle.signal(RefundWorkflow.on_approve, approve(amount=3000))
        body = await refund.result()

        assert body.status is RefundStatus.REFUNDED
        assert body.amount == 3000
        assert_paid_once(refund.backend, 3000)
        claw_back = refund.backend.called("move_commissions")[-1]
        assert claw_back.action is CLAW_BACK and claw_back.refund_amount == 3000


async def test_evidence_added_during_review_is_reported(env: WorkflowEnvironment) -> None:
    async with running_refund(env, revealed(LARGE), name="evidence_in_review") as refund:
        await refund.wait_for_status(RefundStatus.PENDING_REVIEW)
        await refund.handle.signal(RefundWorkflow.on_evidence, evidence("screenshot of error"))
        body = await refund.wait_for(lambda b: "evidence_added" in stages(b))
        assert [e.text for e in body.evidence] == ["screenshot of error"]

        for _ in range(200):  # reported without waiting for the next status change
            if "evidence_added" in refund.backend.stages():
                break
            await asyncio.sleep(0.02)
        report = next(
            r
            for r in refund.backend.reports
            if any(e.stage == "evidence_added" for e in r.new_entries)
        )
        assert report.body.status is RefundStatus.PENDING_REVIEW
        assert [e.text for e in report.body.evidence] == ["screenshot of error"]

        await refund.handle.signal(RefundWorkflow.on_approve, approve())
        body = await refund.result()
        assert body.status is RefundStatus.REFUNDED
        # Each timeline entry is reported exactly once.
        assert refund.backend.stages() == stages(body)[1:]  # "submitted" is the API's
