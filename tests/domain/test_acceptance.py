"""`domain.acceptance`: what a refund accepts from people, in each status (the workflow's
Update validators and signals ask nothing else)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain import acceptance
from domain.refund import (
    AppealRequest,
    ApproveRequest,
    CancelRequest,
    ClaimRequest,
    DecisionView,
    Evidence,
    EvidenceAsk,
    EvidenceRequest,
    FirstApproval,
    PayoutView,
    ReassignRequest,
    RecheckRequest,
    RefundBody,
    RejectRequest,
    ReleaseRequest,
    ResolveAction,
    ResolveRequest,
    ReviewView,
)
from domain.types import (
    EvidenceKind,
    Outcome,
    PaymentChannel,
    PayoutState,
    RefundReason,
    RefundStatus,
)

NOW = datetime(2026, 11, 29, tzinfo=UTC)
BUYER = "U-42"


def refund(status: RefundStatus, *, appealed: bool = False) -> RefundBody:
    return RefundBody(
        refund_id="R-1",
        order_id="O-1",
        buyer_id=BUYER,
        merchant_id="M-7",
        status=status,
        amount=5000,
        reason=RefundReason.CHANGED_MIND,
        decision=DecisionView(
            outcome=Outcome.REVIEW, rule="course.usage", explanation="", refundable_amount=5000
        ),
        review=ReviewView(deadline=NOW, appealed=appealed),
        workflow_id="refund-R-1",
        created_at=NOW,
        updated_at=NOW,
    )


ALL = list(RefundStatus)


@pytest.mark.parametrize("status", ALL)
def test_approve_and_reject_only_while_a_review_waits(status: RefundStatus) -> None:
    view = refund(status)
    approve = acceptance.may_approve(view, ApproveRequest(reviewer="a"), answered=False)
    reject = acceptance.may_reject(view, RejectRequest(reviewer="a", reason="no"), answered=False)
    waiting = status is RefundStatus.PENDING_REVIEW
    assert (approve is None, reject is None) == (waiting, waiting)


def test_a_review_is_answered_once() -> None:
    view = refund(RefundStatus.PENDING_REVIEW)
    second = acceptance.may_approve(view, ApproveRequest(reviewer="b"), answered=True)
    assert second is not None and second.problem == "already-answered"


def test_never_more_than_is_refundable() -> None:
    view = refund(RefundStatus.PENDING_REVIEW)
    too_much = acceptance.may_approve(
        view, ApproveRequest(reviewer="a", amount=5001), answered=False
    )
    assert too_much is not None and (too_much.problem, too_much.field) == (
        "invalid-amount",
        "amount",
    )
    assert (
        acceptance.may_approve(view, ApproveRequest(reviewer="a", amount=5000), answered=False)
        is None
    )


@pytest.mark.parametrize("status", ALL)
def test_cancel_until_money_moves(status: RefundStatus) -> None:
    refusal = acceptance.may_cancel(
        refund(status), CancelRequest(buyer_id=BUYER), keys_voided=False
    )
    allowed = {
        RefundStatus.SUBMITTED,
        RefundStatus.CHECKING,
        RefundStatus.PENDING_REVIEW,
        RefundStatus.APPROVED,
    }
    assert (refusal is None) == (status in allowed)


def test_cancel_refused_once_the_key_is_voided_and_for_strangers() -> None:
    view = refund(RefundStatus.APPROVED)
    assert acceptance.may_cancel(view, CancelRequest(buyer_id=BUYER), keys_voided=True) is not None
    stranger = acceptance.may_cancel(view, CancelRequest(buyer_id="U-9"), keys_voided=False)
    assert stranger is not None and (stranger.problem, stranger.field) == (
        "not-your-refund",
        "buyer_id",
    )


@pytest.mark.parametrize("status", ALL)
def test_appeal_once_after_a_rejection(status: RefundStatus) -> None:
    req = AppealRequest(buyer_id=BUYER, text="please")
    assert (acceptance.may_appeal(refund(status), req) is None) == (status is RefundStatus.REJECTED)
    again = acceptance.may_appeal(refund(RefundStatus.REJECTED, appealed=True), req)
    assert again is not None and again.problem == "already-appealed"


@pytest.mark.parametrize("status", ALL)
def test_evidence_while_open(status: RefundStatus) -> None:
    req = EvidenceRequest(evidence=[Evidence(kind=EvidenceKind.TEXT, text="x")])
    assert (acceptance.may_add_evidence(refund(status), req) is None) == (not status.is_terminal)


def test_resolve_only_what_needs_attention() -> None:
    payout = PayoutView(
        channel=PaymentChannel.WECHAT,
        amount=5000,
        state=PayoutState.UNKNOWN,
        out_refund_no="R-1-p1",
    )
    verify = ResolveRequest(operator="sre", action=ResolveAction.VERIFY)
    rescue = ResolveRequest(operator="sre", action="abnormal_refund", to="MERCHANT_BANK_CARD")
    view = refund(RefundStatus.NEEDS_ATTENTION)
    assert acceptance.may_resolve(refund(RefundStatus.REFUNDING), verify, attention=payout)
    assert acceptance.may_resolve(view, verify, attention=payout) is None
    assert acceptance.may_resolve(view, rescue, attention=payout) is not None
    abnormal = payout.model_copy(update={"state": PayoutState.ABNORMAL})
    assert acceptance.may_resolve(view, rescue, attention=abnormal) is None


# --------------------------------------------------------- the console: claims, four eyes


def claimed(by: str, *, minutes: int = 10, first: str | None = None) -> RefundBody:
    view = refund(RefundStatus.PENDING_REVIEW)
    assert view.review is not None
    view.review.claimed_by = by
    view.review.claimed_until = NOW + timedelta(minutes=minutes)
    if first is not None:
        view.review.first_approval = FirstApproval(reviewer=first, amount=5000, at=NOW)
    return view


def test_a_claim_holds_others_off_until_it_lapses() -> None:
    view = claimed("alice")
    bob = ApproveRequest(reviewer="bob")
    refusal = acceptance.may_approve(view, bob, answered=False, now=NOW)
    assert refusal is not None and refusal.problem == "claimed-by-another"
    assert "alice is working on this case until 00:10 UTC" in refusal.reason
    assert (
        acceptance.may_approve(view, ApproveRequest(reviewer="alice"), answered=False, now=NOW)
        is None
    )
    later = NOW + timedelta(minutes=11)
    assert acceptance.may_approve(view, bob, answered=False, now=later) is None
    assert acceptance.claim_holder(view, later) is None
    assert (
        acceptance.may_claim(view, ClaimRequest(reviewer="bob"), answered=False, now=later) is None
    )
    assert acceptance.may_release(view, ReleaseRequest(reviewer="bob"), now=NOW) is not None
    assert acceptance.may_release(view, ReleaseRequest(reviewer="alice"), now=NOW) is None
    # Without a clock (the API's old callers' path in tests), claims are not consulted.
    assert acceptance.may_approve(view, bob, answered=False) is None


@pytest.mark.parametrize("status", ALL)
def test_console_actions_only_while_a_review_waits(status: RefundStatus) -> None:
    view = refund(status)
    waiting = status is RefundStatus.PENDING_REVIEW
    checks = [
        acceptance.may_claim(view, ClaimRequest(reviewer="a"), answered=False, now=NOW),
        acceptance.may_reassign(view, ReassignRequest(supervisor="s", to="a"), answered=False),
        acceptance.may_ask_for_evidence(
            view, EvidenceAsk(reviewer="a", message="m"), answered=False, now=NOW
        ),
        acceptance.may_recheck_keys(view, RecheckRequest(reviewer="a"), has_keys=True),
    ]
    assert [c is None for c in checks] == [waiting] * 4


def test_recheck_needs_card_keys() -> None:
    view = refund(RefundStatus.PENDING_REVIEW)
    refusal = acceptance.may_recheck_keys(view, RecheckRequest(reviewer="a"), has_keys=False)
    assert refusal is not None and refusal.problem == "no-card-keys"


def test_four_eyes_second_approval_is_someone_else_for_the_same_amount() -> None:
    view = claimed("nobody", minutes=-1, first="alice")
    same = acceptance.may_approve(view, ApproveRequest(reviewer="alice"), answered=False, now=NOW)
    assert same is not None and same.problem == "second-reviewer-needed"
    other_amount = acceptance.may_approve(
        view, ApproveRequest(reviewer="bob", amount=100), answered=False, now=NOW
    )
    assert other_amount is not None and other_amount.field == "amount"
    assert (
        acceptance.may_approve(view, ApproveRequest(reviewer="bob"), answered=False, now=NOW)
        is None
    )


def test_which_approvals_need_a_second_reviewer() -> None:
    view = refund(RefundStatus.PENDING_REVIEW)
    full, part = ApproveRequest(reviewer="a"), ApproveRequest(reviewer="a", amount=4000)
    assert acceptance.needs_second_reviewer(view, full, four_eyes_above=4000)
    assert not acceptance.needs_second_reviewer(view, part, four_eyes_above=4000)
    assert not acceptance.needs_second_reviewer(view, full, four_eyes_above=None)
    assert not acceptance.needs_second_reviewer(claimed("x", first="b"), full, four_eyes_above=4000)
