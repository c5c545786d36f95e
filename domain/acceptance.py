"""What a refund accepts from people, decided in one place.

The RefundWorkflow's Update validators — and the signals of the same names, which the
Temporal UI and CLI send — ask these functions; the API asks nobody and turns a refusal into
its HTTP answer. Pure: they read the refund as the workflow holds it, never a clock or a
database, so the answer cannot drift between two places."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from domain.refund import (
    AppealRequest,
    ApproveRequest,
    CancelRequest,
    ClaimRequest,
    EvidenceAsk,
    EvidenceRequest,
    PayoutView,
    ReassignRequest,
    RecheckRequest,
    RefundBody,
    RejectRequest,
    ReleaseRequest,
    RemedyRequest,
    ResolveAction,
    ResolveRequest,
    refundable_now,
)
from domain.types import PayoutState, RefundStatus, Remedy

__all__ = [
    "Refusal",
    "approval_amount",
    "claim_holder",
    "may_add_evidence",
    "may_appeal",
    "may_approve",
    "may_ask_for_evidence",
    "may_cancel",
    "may_choose_remedy",
    "may_claim",
    "may_reassign",
    "may_recheck_keys",
    "may_reject",
    "may_release",
    "may_resolve",
    "needs_second_reviewer",
]


@dataclass(frozen=True)
class Refusal:
    """Why not. `problem` is the problem+json type the API answers with; `field` names the
    request field at fault when there is one."""

    reason: str
    problem: str = "wrong-status"
    field: str | None = None


def _not_now(view: RefundBody, what: str) -> Refusal:
    return Refusal(f"cannot {what} a refund that is {view.status.value}")


def _not_buyers(view: RefundBody, buyer_id: str) -> Refusal | None:
    if buyer_id != view.buyer_id:
        return Refusal("this buyer did not ask for this refund", "not-your-refund", "buyer_id")
    return None


def claim_holder(view: RefundBody, now: datetime) -> str | None:
    """The reviewer whose claim on the case holds at `now` (a lapsed claim holds nothing)."""
    review = view.review
    if review is None or review.claimed_by is None or review.claimed_until is None:
        return None
    return review.claimed_by if review.claimed_until > now else None


def _held_by_another(view: RefundBody, reviewer: str, now: datetime | None) -> Refusal | None:
    holder = None if now is None else claim_holder(view, now)
    if holder is not None and holder != reviewer:
        assert view.review is not None and view.review.claimed_until is not None
        until = view.review.claimed_until.strftime("%H:%M UTC")
        return Refusal(f"{holder} is working on this case until {until}", "claimed-by-another")
    return None


def _reviewable(view: RefundBody, what: str, *, answered: bool) -> Refusal | None:
    if view.status is not RefundStatus.PENDING_REVIEW:
        return _not_now(view, what)
    if answered:
        return Refusal("another reviewer already answered this review", "already-answered")
    return None


def approval_amount(view: RefundBody, req: ApproveRequest) -> int:
    """What an approval pays: the amount asked, else everything refundable."""
    return req.amount if req.amount is not None else refundable_now(view)


def needs_second_reviewer(
    view: RefundBody, req: ApproveRequest, *, four_eyes_above: int | None
) -> bool:
    """Four eyes: an approval above the policy's amount is only the first of two, unless it
    is the second (a first approval already waits)."""
    review = view.review
    if four_eyes_above is None or (review is not None and review.first_approval is not None):
        return False
    return approval_amount(view, req) > four_eyes_above


def may_approve(
    view: RefundBody, req: ApproveRequest, *, answered: bool, now: datetime | None = None
) -> Refusal | None:
    """A reviewer approves a refund waiting for review, once per review, never more than is
    refundable, never while another reviewer's claim holds (`now` given), and a second
    approval (four eyes) only from another reviewer, for the amount the first approved.
    `answered`: someone already approved or rejected this review."""
    refusal = _reviewable(view, "approve", answered=answered) or _held_by_another(
        view, req.reviewer, now
    )
    if refusal is not None:
        return refusal
    refundable = refundable_now(view)
    if req.amount is not None and req.amount > refundable:
        return Refusal(f"at most {refundable} is refundable", "invalid-amount", "amount")
    first = view.review.first_approval if view.review else None
    if first is not None:
        if first.reviewer == req.reviewer:
            return Refusal(
                f"four eyes: {first.reviewer} approved first; a second, different reviewer "
                "must approve",
                "second-reviewer-needed",
                "reviewer",
            )
        if req.amount is not None and req.amount != first.amount:
            return Refusal(
                f"{first.reviewer} approved {first.amount}; approve that amount or reject",
                "invalid-amount",
                "amount",
            )
    return None


def may_reject(
    view: RefundBody, req: RejectRequest, *, answered: bool, now: datetime | None = None
) -> Refusal | None:
    return _reviewable(view, "reject", answered=answered) or _held_by_another(
        view, req.reviewer, now
    )


def may_claim(
    view: RefundBody, req: ClaimRequest, *, answered: bool, now: datetime
) -> Refusal | None:
    """A reviewer takes a waiting case unless another's claim holds (their own: renewed)."""
    return _reviewable(view, "claim", answered=answered) or _held_by_another(
        view, req.reviewer, now
    )


def may_release(view: RefundBody, req: ReleaseRequest, *, now: datetime) -> Refusal | None:
    """Only the reviewer holding a case gives it back."""
    if view.status is not RefundStatus.PENDING_REVIEW:
        return _not_now(view, "release")
    if claim_holder(view, now) != req.reviewer:
        return Refusal(f"{req.reviewer} does not hold this case", "not-claimed")
    return None


def may_reassign(view: RefundBody, req: ReassignRequest, *, answered: bool) -> Refusal | None:
    """A supervisor gives a waiting case to a reviewer, whoever holds it now."""
    return _reviewable(view, "reassign", answered=answered)


def may_ask_for_evidence(
    view: RefundBody, req: EvidenceAsk, *, answered: bool, now: datetime
) -> Refusal | None:
    return _reviewable(view, "ask for evidence on", answered=answered) or _held_by_another(
        view, req.reviewer, now
    )


def may_recheck_keys(view: RefundBody, req: RecheckRequest, *, has_keys: bool) -> Refusal | None:
    """Ask the supplier again, while a person is deciding."""
    if view.status is not RefundStatus.PENDING_REVIEW:
        return _not_now(view, "re-check the card keys of")
    if not has_keys:
        return Refusal("this refund has no card keys", "no-card-keys")
    return None


def may_add_evidence(view: RefundBody, req: EvidenceRequest) -> Refusal | None:
    if view.status.is_terminal:
        return _not_now(view, "add evidence to")
    return None


def may_cancel(view: RefundBody, req: CancelRequest, *, keys_voided: bool) -> Refusal | None:
    """The buyer withdraws until money starts to move (or the card key is voided for it)."""
    refusal = _not_buyers(view, req.buyer_id)
    if refusal is not None:
        return refusal
    if view.status.is_terminal or view.status.money_moving or keys_voided:
        return _not_now(view, "cancel")
    return None


def may_choose_remedy(view: RefundBody, req: RemedyRequest, *, keys_voided: bool) -> Refusal | None:
    """The buyer picks money or a fresh key while the refund still waits: before money moves
    or the old key is voided (then the choice has been acted on), and only where the
    product's policy offers a replacement."""
    refusal = _not_buyers(view, req.buyer_id)
    if refusal is not None:
        return refusal
    if view.status.is_terminal or view.status.money_moving or keys_voided:
        return _not_now(view, "choose the remedy of")
    if req.remedy is Remedy.REPLACEMENT and not view.replacement_offered:
        return Refusal(
            "no replacement key is offered for this refund", "replacement-not-offered", "remedy"
        )
    return None


def may_appeal(view: RefundBody, req: AppealRequest) -> Refusal | None:
    """Once, after a rejection."""
    refusal = _not_buyers(view, req.buyer_id)
    if refusal is not None:
        return refusal
    if view.status is not RefundStatus.REJECTED:
        return _not_now(view, "appeal")
    if view.review is not None and view.review.appealed:
        return Refusal("a rejection can be appealed once", "already-appealed")
    return None


def may_resolve(
    view: RefundBody, req: ResolveRequest, *, attention: PayoutView | None
) -> Refusal | None:
    """A supervisor acts on a refund that needs attention; `attention` is the payout in
    question. The abnormal-refund call is for ABNORMAL payouts only."""
    if view.status is not RefundStatus.NEEDS_ATTENTION or attention is None:
        return Refusal(f"the refund is {view.status.value}, not needs_attention")
    if req.action is ResolveAction.ABNORMAL_REFUND and attention.state is not PayoutState.ABNORMAL:
        return Refusal(f"the payout is {attention.state.value}, not abnormal", field="action")
    return None
