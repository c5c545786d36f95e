"""RefundWorkflow end to end on the time-skipping test server, against in-memory fakes of
its activities: every test states what the buyer, reviewer or SRE can observe (the final
body, the `status` query) and what the workflow asked the outside world to do."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from domain.refund import (
    AppealRequest,
    ApproveRequest,
    CancelRequest,
    Evidence,
    EvidenceRequest,
    RefundBody,
    RejectRequest,
)
from domain.types import (
    CommissionState,
    Destination,
    EvidenceKind,
    KeyState,
    Outcome,
    PaymentChannel,
    PayoutState,
    RefundStatus,
)
from tests.workflows.fakes import FakeBackend
from tests.workflows.support import KEY_ID, Refund, card_key_order, running_refund
from workflows.messages import CommissionAction, GatewayNotice
from workflows.refund import RefundWorkflow
from workflows.search import REFUND_AMOUNT, REFUND_STATUS, RISK_LEVEL

FREEZE = CommissionAction.FREEZE
CLAW_BACK = CommissionAction.CLAW_BACK
RELEASE = CommissionAction.RELEASE
BUYER = "U-42"
# Under the default policy (domain/default_policy.yaml) a revealed card key goes to a person;
# 15 CNY is above the fast lane (10 CNY) but within the review-expiry limit (20 CNY), 50 CNY
# is above it.
SMALL, LARGE = 1500, 5000

Scenario = Callable[[datetime], FakeBackend]


def unredeemed(amount: int = LARGE) -> Scenario:
    """An unredeemed, unrevealed card key: the rules refund it automatically."""
    return lambda now: FakeBackend(order=card_key_order(now, amount=amount))


def revealed(amount: int = LARGE) -> Scenario:
    """A card key the buyer revealed: the rules send the refund to a person."""
    return lambda now: FakeBackend(order=card_key_order(now, amount=amount, key_revealed=True))


def approve(reviewer: str = "alice", amount: int | None = None) -> ApproveRequest:
    return ApproveRequest(reviewer=reviewer, note="ok", amount=amount)


def reject() -> RejectRequest:
    return RejectRequest(reviewer="alice", reason="key already revealed")


def evidence(text: str = "the key shows an error") -> EvidenceRequest:
    return EvidenceRequest(evidence=[Evidence(kind=EvidenceKind.TEXT, text=text)])


def stages(body: RefundBody) -> list[str]:
    return [entry.stage for entry in body.timeline]


async def signals_processed(refund: Refund, marker: str) -> RefundBody:
    """Signals are handled in order: once an evidence signal sent after others shows in the
    `status` query, the ones before it were handled too (and ignored, if they changed
    nothing)."""
    await refund.handle.signal(RefundWorkflow.on_evidence, evidence(marker))
    return await refund.wait_for(lambda b: any(e.text == marker for e in b.evidence))


def assert_paid_once(backend: FakeBackend, amount: int) -> None:
    assert [(p.attempt, p.amount) for p in backend.payouts] == [(1, amount)]


# --------------------------------------------------------------------- 1. auto-approve


async def test_unredeemed_key_is_refunded_automatically(env: WorkflowEnvironment) -> None:
    async with running_refund(env, unredeemed(LARGE), name="auto_approve") as refund:
        body = await refund.result()
        backend = refund.backend

        assert body.status is RefundStatus.REFUNDED
        assert body.decision is not None
        assert body.decision.outcome is Outcome.AUTO_APPROVE
        assert body.decision.rule == "card_key.unredeemed"
        assert body.review is None
        assert_paid_once(backend, LARGE)
        payout = backend.payouts[0]
        assert payout.channel is PaymentChannel.ALIPAY
        assert payout.out_refund_no == f"{body.refund_id}-p1"
        assert [(p.state, p.amount) for p in body.payouts] == [(PayoutState.SUCCEEDED, LARGE)]
        # The key is voided before money moves, and money moves before commissions go back.
        names = backend.names()
        assert names.index("lock_card_keys") < names.index("send_payout")
        assert backend.commission_actions == [FREEZE, CLAW_BACK]
        assert [c.state for c in body.commissions] == [CommissionState.CLAWED_BACK]
        assert stages(body)[-1] == "money_arrived"
        # An automatic refund that settles at once is written once, when it ends, with every
        # timeline entry it passed through (the lean path: nothing waits on the way).
        (report,) = backend.reports
        assert report.body.status is RefundStatus.REFUNDED and report.release_claims
        assert [e.stage for e in report.new_entries] == [
            "checking_card_key",
            "card_key_checked",
            "decided",
            "approved_for_payout",
            "card_key_locked",
            "refunding",
            "refund_sent",
            "money_arrived",
        ]
        # One step opens the case; the supplier is asked inside the workflow's own task.
        assert names[:3] == ["open_case", "move_commissions", "query_key_redemption"]

        found = (await refund.handle.describe()).typed_search_attributes
        assert found.get(REFUND_STATUS) == "refunded"
        assert found.get(RISK_LEVEL) == "low"
        assert found.get(REFUND_AMOUNT) == LARGE


# ---------------------------------------------------------------- 2. review deadline


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


# ------------------------------------------------------------------- 3. reject, appeal


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


# -------------------------------------------------------------- 4. cancel, stray signals


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


# ------------------------------------------------------------ 5. "processing" payouts


def processing(*queries: PayoutState) -> Scenario:
    """The gateway answers "processing" to the refund call, then `queries` to the
    settlement queries (succeeded once they are used up)."""

    def make(now: datetime) -> FakeBackend:
        backend = unredeemed(LARGE)(now)
        backend.send_states = {1: PayoutState.PROCESSING}
        backend.query_states = list(queries)
        return backend

    return make


async def test_gateway_notification_settles_a_processing_payout_early(
    env: WorkflowEnvironment,
) -> None:
    async with running_refund(env, processing(), name="processing_notified") as refund:
        body = await refund.wait_for(
            lambda b: [p.state for p in b.payouts] == [PayoutState.PROCESSING]
        )
        assert body.status is RefundStatus.REFUNDING  # money is not back yet
        assert refund.backend.called("query_payout") == []
        no = body.payouts[0].out_refund_no

        await refund.handle.signal(
            RefundWorkflow.on_gateway_notification,
            GatewayNotice(out_refund_no=no, state="succeeded", gateway_refund_id="wx-1"),
        )
        body = await refund.result()
        assert body.status is RefundStatus.REFUNDED
        assert_paid_once(refund.backend, LARGE)
        (sent,), (query,) = (
            [c for c in refund.backend.calls if c.name == name]
            for name in ("send_payout", "query_payout")
        )
        assert query.arg.out_refund_no == no
        # The notification, not the first 10 s back-off, made the workflow ask.
        assert sent.scheduled is not None and query.scheduled is not None
        assert query.scheduled - sent.scheduled < timedelta(seconds=10)


async def test_processing_payout_is_polled_with_back_off_until_it_succeeds(
    env: WorkflowEnvironment,
) -> None:
    scenario = processing(PayoutState.PROCESSING, PayoutState.PROCESSING)
    async with running_refund(env, scenario, name="processing_polled") as refund:
        body = await refund.wait_for(lambda b: bool(b.payouts))
        no = body.payouts[0].out_refund_no

        # A notification only wakes the workflow: it believes the gateway's query, which
        # still says "processing".
        await refund.handle.signal(
            RefundWorkflow.on_gateway_notification,
            GatewayNotice(out_refund_no=no, state="succeeded"),
        )
        for _ in range(200):
            if refund.backend.called("query_payout"):
                break
            await asyncio.sleep(0.02)
        body = await signals_processed(refund, "after the first query")
        assert body.status is RefundStatus.REFUNDING
        assert [p.state for p in body.payouts] == [PayoutState.PROCESSING]

        body = await refund.result()
        assert body.status is RefundStatus.REFUNDED
        assert [p.state for p in body.payouts] == [PayoutState.SUCCEEDED]
        assert_paid_once(refund.backend, LARGE)
        queried = [c.scheduled for c in refund.backend.calls if c.name == "query_payout"]
        assert len(queried) == 3
        gaps = [b - a for a, b in itertools.pairwise(queried) if a and b]
        # Back-off after the notification-triggered query: 30 s, then 1 min.
        assert gaps[0] >= timedelta(seconds=30) and gaps[1] >= timedelta(minutes=1)


async def test_closed_route_falls_back_to_balance(env: WorkflowEnvironment) -> None:
    async with running_refund(env, processing(PayoutState.CLOSED), name="closed_fallback") as r:
        body = await r.result()

        assert body.status is RefundStatus.REFUNDED
        assert [(p.attempt, p.channel, p.amount) for p in r.backend.payouts] == [
            (1, PaymentChannel.ALIPAY, LARGE),
            (2, PaymentChannel.BALANCE, LARGE),
        ]
        assert [(p.channel, p.state) for p in body.payouts] == [
            (PaymentChannel.ALIPAY, PayoutState.CLOSED),
            (PaymentChannel.BALANCE, PayoutState.SUCCEEDED),
        ]
        # A new out-refund number for the new attempt (WeChat: CLOSED needs a new one).
        assert len({p.out_refund_no for p in r.backend.payouts}) == 2
        assert "route_fallback" in stages(body)
        assert r.backend.commission_actions == [FREEZE, CLAW_BACK]


async def test_fast_lane_pays_small_review_to_balance(env: WorkflowEnvironment) -> None:
    async with running_refund(env, revealed(800), name="fast_lane_balance") as refund:
        body = await refund.result()
        assert body.status is RefundStatus.REFUNDED
        assert body.destination is Destination.BALANCE
        assert body.decision is not None and body.decision.rule == "fast_lane.balance"
        assert [(p.channel, p.amount) for p in refund.backend.payouts] == [
            (PaymentChannel.BALANCE, 800)
        ]


# ------------------------------------------------------------ 6. redeemed at the lock


def redeemed_at_lock(amount: int = LARGE) -> Scenario:
    def make(now: datetime) -> FakeBackend:
        backend = unredeemed(amount)(now)
        backend.lock_states = {KEY_ID: KeyState.REDEEMED}
        return backend

    return make


async def test_key_redeemed_before_the_lock_goes_to_a_person(env: WorkflowEnvironment) -> None:
    async with running_refund(env, redeemed_at_lock(), name="redeemed_at_lock") as refund:
        body = await refund.wait_for_status(RefundStatus.PENDING_REVIEW)
        assert body.decision is not None
        assert body.decision.outcome is Outcome.REVIEW
        assert body.decision.rule == "card_key.redeemed_at_lock"
        assert "card_key_redeemed" in stages(body)
        assert refund.backend.payouts == []
        assert refund.backend.reports[-1].body.status is RefundStatus.PENDING_REVIEW

        await refund.handle.signal(RefundWorkflow.on_reject, reject())
        await refund.wait_for_status(RefundStatus.REJECTED)
        assert refund.backend.commission_actions == [FREEZE, RELEASE]
        assert refund.backend.payouts == []


async def test_key_redeemed_at_lock_never_approves_itself(env: WorkflowEnvironment) -> None:
    scenario = redeemed_at_lock(SMALL)
    async with running_refund(env, scenario, name="redeemed_at_lock_expiry") as r:
        await r.wait_for_status(RefundStatus.PENDING_REVIEW)
        await env.sleep(timedelta(hours=25))
        body = await r.wait_for(lambda b: "review_escalated" in stages(b))
        assert body.status is RefundStatus.PENDING_REVIEW
        assert "approved" not in stages(body)  # with the bug: "approved by system", re-lock
        assert len(r.backend.called("lock_card_keys")) == 1


# ------------------------------------------------------------------------ 7. evidence


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


# -------------------------------------------------------- known bug: cancel after lock


async def test_cancel_after_the_key_is_voided_does_not_strand_the_buyer(
    env: WorkflowEnvironment,
) -> None:
    def gated(now: datetime) -> FakeBackend:
        backend = unredeemed(LARGE)(now)
        backend.lock_gate = asyncio.Event()
        return backend

    async with running_refund(env, gated, name="cancel_during_lock") as r:
        await asyncio.wait_for(r.backend.lock_started.wait(), timeout=10)
        await r.handle.signal(RefundWorkflow.on_cancel, CancelRequest(buyer_id=BUYER))
        assert r.backend.lock_gate is not None
        r.backend.lock_gate.set()  # the supplier voids the key
        body = await r.result()
        voided = bool(r.backend.called("lock_card_keys"))
        assert not (voided and body.status is RefundStatus.CANCELLED and not r.backend.payouts)


async def test_key_redeemed_at_lock_is_explained_to_the_buyer(env: WorkflowEnvironment) -> None:
    async with running_refund(env, redeemed_at_lock(), name="redeemed_at_lock_zh") as refund:
        body = await refund.wait_for_status(RefundStatus.PENDING_REVIEW)
        decided = next(e for e in body.timeline if e.stage == "decided")
        assert body.decision is not None
        assert body.decision.explanation_zh != decided.detail


async def test_payout_that_cannot_be_made_is_reported(env: WorkflowEnvironment) -> None:
    def nowhere_to_pay(now: datetime) -> FakeBackend:
        backend = unredeemed(LARGE)(now)
        backend.send_states = {1: PayoutState.CLOSED, 2: PayoutState.FAILED}
        return backend

    async with running_refund(env, nowhere_to_pay, name="payout_failed") as refund:
        with contextlib.suppress(WorkflowFailureError):
            await refund.result()
        assert refund.backend.reports[-1].body.status is RefundStatus.FAILED
