"""Replacing a key reported invalid (补发) instead of refunding it.

When a buyer reports an invalid key, the shop may rather hand over a fresh key from the
supplier than the money: the policy says per product whether that is never done (`off`),
done when the buyer asks (`offer`), or done unless the buyer asks for money (`default`).
The workflow reserves and delivers the fresh key only where a refund would have paid
(automatically, or once a person approved), after voiding the old key; no stock, or a
supplier that refuses, and the refund pays as it always did.

A replacement the buyer reports invalid again is never replaced again: a person looks at it
(`REPLACEMENT_INVALID_RULE`), since either the supplier's batch or the buyer is suspect."""

from __future__ import annotations

from collections.abc import Collection

from domain.decision import Draft
from domain.item_rules import Line
from domain.order import Order, OrderItem
from domain.policy import Policy
from domain.refund import RefundItemRequest
from domain.types import Outcome, ProductType, RefundReason, Remedy, ReplacementMode

__all__ = [
    "REPLACEMENT_INVALID_RULE",
    "replaceable_item",
    "replacement_mode",
    "replacement_reported_invalid",
    "wants_replacement",
]

REPLACEMENT_INVALID_RULE = "card_key.replacement_invalid"


def replacement_mode(
    order: Order,
    items: list[RefundItemRequest] | None,
    policy: Policy,
    *,
    replaced_keys: Collection[str] = (),
) -> ReplacementMode:
    """What the policy allows for a refund of these items. A replacement is one fresh key for
    one key: a refund of a single card-key item holding a single key, never a key that is
    already a replacement (`replaced_keys`); anything else is refunded."""
    item = replaceable_item(order, items, replaced_keys=replaced_keys)
    if item is None:
        return ReplacementMode.OFF
    rules = policy.rules_for(
        product_type=item.product_type, merchant_id=order.merchant_id, sku=item.sku
    )
    return rules.replacement


def replaceable_item(
    order: Order, items: list[RefundItemRequest] | None, *, replaced_keys: Collection[str] = ()
) -> OrderItem | None:
    """The one item whose one key a replacement would replace, if the refund is of such."""
    wanted = {i.item_id for i in items} if items is not None else None
    chosen = [i for i in order.items if wanted is None or i.item_id in wanted]
    if len(chosen) != 1:
        return None
    item = chosen[0]
    replaceable = (
        item.product_type is ProductType.CARD_KEY
        and item.quantity == 1
        and len(item.card_keys) == 1
        and item.card_keys[0].card_key_id not in replaced_keys
    )
    return item if replaceable else None


def wants_replacement(reason: RefundReason, mode: ReplacementMode, remedy: Remedy | None) -> bool:
    """Whether this refund should be answered with a fresh key: an invalid key, a product
    that allows it, and the buyer's choice (or, by default, no choice for money)."""
    if reason is not RefundReason.INVALID_KEY or mode is ReplacementMode.OFF:
        return False
    if mode is ReplacementMode.DEFAULT:
        return remedy is not Remedy.REFUND
    return remedy is Remedy.REPLACEMENT


def replacement_reported_invalid(
    lines: list[Line], replaced_keys: Collection[str], reason: RefundReason
) -> Draft | None:
    """A key we delivered as a replacement, reported invalid again: a person decides."""
    if reason is not RefundReason.INVALID_KEY or not replaced_keys:
        return None
    again = [
        k.card_key_id
        for line in lines
        for k in line.item.card_keys
        if k.card_key_id in replaced_keys
    ]
    if not again:
        return None
    return Draft(
        Outcome.REVIEW,
        REPLACEMENT_INVALID_RULE,
        f"Card key {', '.join(again)} was itself a replacement for a key reported invalid, "
        "and is reported invalid again; a person decides (a bad batch or a suspect claim).",
        "补发的卡密再次被反馈无效，已转人工审核。",
        amount=sum(line.amount for line in lines),
    )
