"""`domain.acceptance`: what a refund accepts from people, in each status (the workflow's
Update validators and signals ask nothing else)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domain import acceptance
from domain.refund import (
    AppealRequest,
    ApproveRequest,
    CancelRequest,
    DecisionView,
    Evidence,
    EvidenceRequest,
    PayoutView,
    RefundBody,
    RejectRequest,
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
