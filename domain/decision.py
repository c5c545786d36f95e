"""What the rules engine reads and what it answers.

`domain.rules.decide(case, policy)` maps a `DecisionCase` to a `Decision`. It is
pure and deterministic: the workflow calls it directly, tests call it without
Temporal, and `refundctl explain` replays it for hypothetical times and reasons.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import Field

from domain.incident import IncidentMark
from domain.model import Model
from domain.order import Order
from domain.refund import DecisionView, RefundItemRequest, RefundItemView, RiskAssessment
from domain.types import Destination, KeyState, Outcome, RefundReason


class DecisionCase(Model):
    order: Order
    # The items and quantities asked for; the whole order when the buyer named none.
    items: list[RefundItemRequest]
    # Quantities already refunded (or being refunded) per item by other refunds of this order.
    already_refunded: dict[str, int] = Field(default_factory=dict)
    # The supplier's answer per card_key_id; a key missing here was not asked about.
    key_states: dict[str, KeyState] = Field(default_factory=dict)
    risk: RiskAssessment = Field(default_factory=RiskAssessment)
    reason: RefundReason
    reason_text: str = ""
    now: datetime
    # Set when the shop itself refunds the order because of an incident (`domain.incident`):
    # the shop's fault, refunded (see `domain.rules`).
    incident: IncidentMark | None = None
    # Card keys of this order that were delivered as replacements (`domain.replacement`):
    # reported invalid again, a person decides.
    replaced_keys: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class Draft:
    """A decision under construction; `domain.rules` finishes it into a `Decision`."""

    outcome: Outcome
    rule: str
    en: str
    zh: str
    amount: int = 0
    # Whether the fast lane may turn this review into a refund to balance.
    fast_lane_ok: bool = False
    payment_ids: tuple[str, ...] = ()
    destination: Destination | None = None


class Decision(Model):
    outcome: Outcome
    rule: str  # e.g. "card_key.unredeemed": stable, greppable, shown to reviewers
    explanation: str  # English, for reviewers and logs
    explanation_zh: str  # Chinese, for the buyer
    amount: int  # what this refund may pay back, in minor units; 0 unless money is owed
    items: list[RefundItemView] = Field(default_factory=list)
    destination: Destination = Destination.ORIGINAL
    # For a duplicate charge: the payments to refund instead of allocating over the order's.
    payment_ids: list[str] = Field(default_factory=list)
    review_deadline_hours: int = 24
    policy_version: str = ""

    def view(self) -> DecisionView:
        """The decision as the refund body shows it."""
        return DecisionView(
            outcome=self.outcome,
            rule=self.rule,
            explanation=self.explanation,
            explanation_zh=self.explanation_zh,
            policy_version=self.policy_version,
            refundable_amount=self.amount,
        )


def priced_items(order: Order, items: list[RefundItemRequest]) -> list[RefundItemView]:
    """The items asked for, at the order's prices (before the rules decide what is owed)."""
    prices = {i.item_id: i.unit_price for i in order.items}
    return [
        RefundItemView(
            item_id=i.item_id, quantity=i.quantity, amount=prices.get(i.item_id, 0) * i.quantity
        )
        for i in items
    ]
