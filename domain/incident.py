"""Incidents: a supplier's bad batch or a platform outage hurt many orders at once, and the
shop refunds them all first, on its own initiative (seed 003's emergency plan).

What an incident is made of, in domain words: the declaration (a selection of orders, the
reason buyers are shown, where the money goes, how fast), the dry run's verdict on each
matched order (refund these items, or skip it and why) and the policy's limits. The running
incident — its states, progress, report and what people may do when — is
`domain.incident_run`. Pure: the IncidentWorkflow, the API and the dry-run activity all ask
these functions, so they cannot drift apart.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Annotated

from pydantic import Field, model_validator

from domain.model import Identifier, Model, ShortText, UtcDatetime
from domain.order import Order, OrderItem
from domain.policy import IncidentPolicy
from domain.refund import RefundItemRequest
from domain.types import (
    Destination,
    KeyState,
    OrderStatus,
    ProductType,
    RefundReason,
)
from domain.wording import money_en

__all__ = [
    "INCIDENT_CALLER",
    "INCIDENT_RULE",
    "INCIDENT_RULE_REDEEMED",
    "MAX_SELECTED_KEYS",
    "IncidentDeclaration",
    "IncidentMark",
    "IncidentSelection",
    "PlanSummary",
    "PlannedOrder",
    "RatePerSecond",
    "SkipReason",
    "affected_items",
    "batch_size",
    "effective_rate",
    "incident_idempotency_key",
    "incident_refund_id",
    "limit_refusal",
    "plan_order",
    "selection_refusal",
    "workflow_id_for_incident",
]

# The rules' ids for an incident refund (domain.rules): the shop's fault, refunded; a key
# redeemed meanwhile goes to a person.
INCIDENT_RULE = "incident.shop_fault"
INCIDENT_RULE_REDEEMED = "incident.key_redeemed"

MAX_SELECTED_KEYS = 10_000

RatePerSecond = Annotated[float, Field(gt=0, le=1000)]


def workflow_id_for_incident(incident_id: str) -> str:
    """The incident's workflow id is its business id."""
    return f"incident-{incident_id}"


def _derived(incident_id: str, order_id: str) -> str:
    return hashlib.sha256(f"incident\n{incident_id}\n{order_id}".encode()).hexdigest()


def incident_refund_id(incident_id: str, order_id: str) -> str:
    """The refund an incident starts for an order: the same id however often the incident
    runs, is re-declared or is retried after a crash, so an order is refunded by it once."""
    return "rf_" + _derived(incident_id, order_id)[:16]


def incident_idempotency_key(incident_id: str, order_id: str) -> str:
    """The refund's idempotency key (caller `INCIDENT_CALLER`), from incident and order."""
    return "incident-" + _derived(incident_id, order_id)[:48]


# The caller that incident refunds' idempotency keys are scoped to.
INCIDENT_CALLER = "incident"


# --- the declaration ---------------------------------------------------------------------------


class IncidentSelection(Model):
    """Which orders the incident hurt. Card keys (by id, or a supplier's batch) select the
    items holding them; a merchant, SKU or product type selects orders paid inside
    [`paid_from`, `paid_until`) — the window is required then, so a selection never means
    "everything the merchant ever sold". Filters given together must all hold."""

    card_key_ids: list[Identifier] = Field(default_factory=list, max_length=MAX_SELECTED_KEYS)
    batch_id: Identifier | None = None
    supplier: Identifier | None = None
    merchant_id: Identifier | None = None
    sku: Identifier | None = None
    product_type: ProductType | None = None
    paid_from: UtcDatetime | None = None
    paid_until: UtcDatetime | None = None

    @model_validator(mode="after")
    def _a_real_selection(self) -> IncidentSelection:
        by_keys = bool(self.card_key_ids) or self.batch_id is not None
        by_orders = any(v is not None for v in (self.merchant_id, self.sku, self.product_type))
        window = (self.paid_from, self.paid_until)
        if not by_keys and not by_orders:
            raise ValueError(
                "name card_key_ids, a batch_id, or a merchant_id / sku / product_type with "
                "paid_from and paid_until"
            )
        if (window[0] is None) != (window[1] is None):
            raise ValueError("paid_from and paid_until: give both or neither")
        if by_orders and not by_keys and window[0] is None:
            raise ValueError(
                "paid_from and paid_until: required when selecting orders by merchant, SKU "
                "or product type"
            )
        if window[0] is not None and window[1] is not None and window[1] <= window[0]:
            raise ValueError("paid_until must be after paid_from")
        if self.supplier is not None and not by_keys:
            raise ValueError("supplier: only with card_key_ids or a batch_id")
        if len(set(self.card_key_ids)) != len(self.card_key_ids):
            raise ValueError("card_key_ids: each at most once")
        return self

    @property
    def by_keys(self) -> bool:
        return bool(self.card_key_ids) or self.batch_id is not None

    def holds_key(self, card_key_id: str, supplier: str, batch_id: str | None) -> bool:
        if self.supplier is not None and supplier != self.supplier:
            return False
        if self.card_key_ids and card_key_id in self.card_key_ids:
            return True
        return self.batch_id is not None and batch_id == self.batch_id

    def matches_item(self, item: OrderItem) -> bool:
        if self.sku is not None and item.sku != self.sku:
            return False
        if self.product_type is not None and item.product_type is not self.product_type:
            return False
        if self.by_keys:
            return any(
                self.holds_key(k.card_key_id, k.supplier, k.batch_id) for k in item.card_keys
            )
        return True

    def matches_order(self, order: Order) -> bool:
        if self.merchant_id is not None and order.merchant_id != self.merchant_id:
            return False
        if self.paid_from is not None and self.paid_until is not None:
            paid = order.paid_at
            if paid is None or not self.paid_from <= paid < self.paid_until:
                return False
        return bool(affected_items(order, self))


class IncidentDeclaration(Model):
    """`POST /v1/incidents`: what an admin (a supervisor) declares."""

    incident_id: Identifier
    declared_by: Identifier
    selection: IncidentSelection
    # Shown to every buyer refunded (timeline, notifications, the gateway's refund notice).
    reason: ShortText = Field(min_length=1)
    destination: Destination = Destination.ORIGINAL
    # The refund reason word the refunds are recorded with (reports group by it).
    refund_reason: RefundReason = RefundReason.OTHER
    # Refunds started per second; default: the policy's `incidents.default_rate_per_second`.
    rate_per_second: RatePerSecond | None = None
    # Above the policy's `incidents` limits the dry run refuses unless this says otherwise.
    override_limits: bool = False

    @model_validator(mode="after")
    def _reason_has_words(self) -> IncidentDeclaration:
        if not self.reason.strip():
            raise ValueError("reason: say what happened; buyers are shown it")
        return self


class IncidentMark(Model):
    """What a refund started by an incident carries into its workflow (`RefundInput`): the
    rules treat it as the shop's fault (`domain.rules`), refunded to `destination`."""

    incident_id: str
    reason: str
    destination: Destination = Destination.ORIGINAL


# --- the dry run -------------------------------------------------------------------------------


class SkipReason(StrEnum):
    """Why a matched order is not refunded by the incident."""

    UNPAID = "unpaid"
    ORDER_CANCELLED = "order_cancelled"
    ALREADY_REFUNDED = "already_refunded"
    REFUND_OPEN = "refund_open"
    KEY_REDEEMED = "key_redeemed"


class PlannedOrder(Model):
    """One matched order as the dry run judged it: the items to refund (what remains of each
    affected item), or why it is skipped."""

    order_id: str
    buyer_id: str
    merchant_id: str
    currency: str
    amount: int
    items: list[RefundItemRequest] = Field(default_factory=list)
    skip: SkipReason | None = None


class PlanSummary(Model):
    matched: int = 0
    matched_amounts: dict[str, int] = Field(
        default_factory=dict, description="what the matched orders were paid, per currency"
    )
    to_refund: int = 0
    amounts: dict[str, int] = Field(
        default_factory=dict, description="money the incident would refund, per currency"
    )
    skipped: dict[SkipReason, int] = Field(default_factory=dict)

    def add(self, planned: PlannedOrder, *, paid: int) -> None:
        self.matched += 1
        self.matched_amounts[planned.currency] = (
            self.matched_amounts.get(planned.currency, 0) + paid
        )
        if planned.skip is not None:
            self.skipped[planned.skip] = self.skipped.get(planned.skip, 0) + 1
            return
        self.to_refund += 1
        self.amounts[planned.currency] = self.amounts.get(planned.currency, 0) + planned.amount

    def in_words(self) -> str:
        money = ", ".join(money_en(a, c) for c, a in sorted(self.amounts.items())) or "nothing"
        skipped = ", ".join(f"{n} {r.value}" for r, n in sorted(self.skipped.items())) or "none"
        return (
            f"dry run: {self.matched} orders matched, {self.to_refund} to refund ({money}); "
            f"skipped: {skipped}"
        )


def affected_items(order: Order, selection: IncidentSelection) -> list[OrderItem]:
    return [i for i in order.items if selection.matches_item(i)]


def plan_order(
    order: Order,
    selection: IncidentSelection,
    *,
    already_refunded: dict[str, int],
    open_items: set[str],
    key_states: dict[str, KeyState],
) -> PlannedOrder:
    """The dry run's verdict on one matched order. `already_refunded`: quantities paid back or
    being paid back per item; `open_items`: items an open refund holds; `key_states`: the
    supplier's answers (a key not asked about, or unreachable, does not block: the refund
    itself asks again and voids the key before paying)."""
    items = affected_items(order, selection)
    verdict = PlannedOrder(
        order_id=order.order_id,
        buyer_id=order.buyer_id,
        merchant_id=order.merchant_id,
        currency=order.currency,
        amount=0,
    )
    if order.status is OrderStatus.UNPAID or order.paid_total == 0:
        return verdict.model_copy(update={"skip": SkipReason.UNPAID})
    if order.status is OrderStatus.CANCELLED:
        return verdict.model_copy(update={"skip": SkipReason.ORDER_CANCELLED})
    if any(i.item_id in open_items for i in items):
        return verdict.model_copy(update={"skip": SkipReason.REFUND_OPEN})
    remaining = [
        (i, i.quantity - min(already_refunded.get(i.item_id, 0), i.quantity)) for i in items
    ]
    remaining = [(i, left) for i, left in remaining if left > 0]
    if not remaining:
        return verdict.model_copy(update={"skip": SkipReason.ALREADY_REFUNDED})
    unused = [
        (i, left)
        for i, left in remaining
        if not any(key_states.get(k.card_key_id) is KeyState.REDEEMED for k in i.card_keys)
    ]
    if not unused:
        return verdict.model_copy(update={"skip": SkipReason.KEY_REDEEMED})
    return verdict.model_copy(
        update={
            "items": [RefundItemRequest(item_id=i.item_id, quantity=left) for i, left in unused],
            "amount": sum(i.unit_price * left for i, left in unused),
        }
    )


def selection_refusal(matched: int) -> str | None:
    if matched == 0:
        return (
            "the selection matches no order: check the card key ids, the batch id, the "
            "merchant, SKU or product type and the paid_from/paid_until window"
        )
    return None


def limit_refusal(
    *, orders: int, amounts: dict[str, int], limits: IncidentPolicy, override: bool
) -> str | None:
    """Why a selection this large needs `override_limits: true`, or None. The limits bound
    the selection (what it matches, paid amounts per currency): a brake on a wrong one."""
    if override:
        return None
    if orders > limits.max_orders:
        return (
            f"the selection matches {orders} orders, above the policy's limit of "
            f"{limits.max_orders} (incidents.max_orders); check the selection, or declare it "
            "again with override_limits: true"
        )
    for currency, amount in sorted(amounts.items()):
        if amount > limits.max_amount:
            return (
                f"the selection matches orders of {amount} {currency} (minor units), above the "
                f"policy's limit of {limits.max_amount} (incidents.max_amount); check the "
                "selection, or declare it again with override_limits: true"
            )
    return None


def batch_size(rate: float, largest: int) -> int:
    """Refunds started per batch: about a second's worth, one at least, `largest` at most."""
    return max(1, min(largest, round(rate)))


def effective_rate(requested: float | None, limits: IncidentPolicy) -> float:
    return min(requested or limits.default_rate_per_second, limits.max_rate_per_second)
