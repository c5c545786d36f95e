"""What a refund accepts from people, decided in one place.

The RefundWorkflow's Update validators — and the signals of the same names, which the
Temporal UI and CLI send — ask these functions; the API asks nobody and turns a refusal into
its HTTP answer. Pure: they read the refund as the workflow holds it, never a clock or a
database, so the answer cannot drift between two places."""

from __future__ import annotations

from dataclasses import dataclass

from domain.refund import (
    AppealRequest,
    ApproveRequest,
    CancelRequest,
    EvidenceRequest,
    PayoutView,
    RefundBody,
    RejectRequest,
    ResolveAction,
    ResolveRequest,
    refundable_now,
)
from domain.types import PayoutState, RefundStatus

__all__ = [
    "Refusal",
    "may_add_evidence",
    "may_appeal",
    "may_approve",
    "may_cancel",
    "may_reject",
    "may_resolve",
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


def may_approve(view: RefundBody, req: ApproveRequest, *, answered: bool) -> Refusal | None:
    """A reviewer approves a refund waiting for review, once per review, never more than is
    refundable. `answered`: someone already approved or rejected this review."""
    if view.status is not RefundStatus.PENDING_REVIEW:
        return _not_now(view, "approve")
    if answered:
        return Refusal("another reviewer already answered this review", "already-answered")
    refundable = refundable_now(view)
    if req.amount is not None and req.amount > refundable:
        return Refusal(f"at most {refundable} is refundable", "invalid-amount", "amount")
    return None


def may_reject(view: RefundBody, req: RejectRequest, *, answered: bool) -> Refusal | None:
    if view.status is not RefundStatus.PENDING_REVIEW:
        return _not_now(view, "reject")
    if answered:
        return Refusal("another reviewer already answered this review", "already-answered")
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
