"""The pre-check (智能预检, seed 003): before a buyer asks for a refund, what would likely
happen — automatic, a person reviews, no, or support first — with the rule and its
explanation, the amount, and what the buyer can try first (the policy's `self_help`).

The decision itself is the rules engine's, replayed by `ops.explain` exactly as the workflow
would decide; this module only words it for the buyer."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

from domain.decision import Decision
from domain.order import Order
from domain.policy import Policy
from domain.refund import RefundItemRequest
from domain.types import Destination, Outcome, ProductType, ReplacementMode

__all__ = ["PrecheckAnswer", "PrecheckOutcome", "SelfHelpAdvice", "outcome_of", "self_help_for"]


class PrecheckOutcome(StrEnum):
    AUTOMATIC = "automatic"  # the refund would be approved by the rules, money back at once
    REVIEW = "review"  # a person would decide
    NO = "no"  # no self-service refund (the buyer may still appeal to a person)
    SUPPORT = "support"  # support helps first (a technical problem)


_OUTCOMES = {
    Outcome.AUTO_APPROVE: PrecheckOutcome.AUTOMATIC,
    Outcome.REVIEW: PrecheckOutcome.REVIEW,
    Outcome.REJECT: PrecheckOutcome.NO,
    Outcome.REDIRECT_TO_SUPPORT: PrecheckOutcome.SUPPORT,
    # An unpaid order is simply cancelled: no money to give back.
    Outcome.CANCEL_UNPAID: PrecheckOutcome.NO,
}


def outcome_of(decision: Decision) -> PrecheckOutcome:
    return _OUTCOMES[decision.outcome]


class SelfHelpAdvice(BaseModel):
    product_type: ProductType
    zh: str
    en: str


def self_help_for(
    order: Order, items: list[RefundItemRequest] | None, policy: Policy
) -> list[SelfHelpAdvice]:
    """The policy's self-help steps for the product types asked about, in order of the
    items, each product type once."""
    wanted = {i.item_id for i in items} if items else None
    types = list(
        dict.fromkeys(i.product_type for i in order.items if wanted is None or i.item_id in wanted)
    )
    return [
        SelfHelpAdvice(product_type=t, zh=step.zh, en=step.en)
        for t in types
        for step in policy.self_help.of(t)
    ]


class PrecheckAnswer(BaseModel):
    """`POST /v1/refunds/precheck`: nothing was created; this is what would likely happen."""

    precheck_id: str = Field(description="quote it to correlate a later refund")
    order_id: str
    outcome: PrecheckOutcome
    rule: str
    explanation: str
    explanation_zh: str
    amount: int = Field(description="what the refund would pay back, minor units")
    currency: str
    destination: Destination
    self_help: list[SelfHelpAdvice]
    policy_version: str
    replacement: ReplacementMode = Field(
        default=ReplacementMode.OFF,
        description="for an invalid key: `offer` (a fresh key instead of money if the buyer "
        "asks: `remedy: replacement`), `default` (a fresh key unless the buyer asks for money: "
        "`remedy: refund`) or `off`",
    )
