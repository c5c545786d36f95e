"""The refund request read against the order: which items it asks for and how many of each
remain refundable (other refunds of the order count), as one `Line` per item, and the first
problem with it (an unknown item, more than remains, nothing left to refund).

Pure and deterministic: no I/O, no clock.
"""

from __future__ import annotations

from domain.decision import DecisionCase, Draft
from domain.item_rules import Line, item_units
from domain.order import Order, OrderItem
from domain.policy import Policy
from domain.refund import RefundItemRequest
from domain.types import Outcome

__all__ = ["requested_lines"]


def _merged_requests(case: DecisionCase) -> list[RefundItemRequest]:
    """The requested items in request order, one entry per item (quantities added up);
    the rest of the whole order when the buyer named none."""
    if not case.items:
        return [
            RefundItemRequest(item_id=item.item_id, quantity=_remaining(case, item))
            for item in case.order.items
            if _remaining(case, item) > 0
        ]
    quantities: dict[str, int] = {}
    for request in case.items:
        quantities[request.item_id] = quantities.get(request.item_id, 0) + request.quantity
    order = list(dict.fromkeys(request.item_id for request in case.items))
    return [RefundItemRequest(item_id=i, quantity=quantities[i]) for i in order]


def _already_refunded(case: DecisionCase, item: OrderItem) -> int:
    return min(max(case.already_refunded.get(item.item_id, 0), 0), item.quantity)


def _remaining(case: DecisionCase, item: OrderItem) -> int:
    return item.quantity - _already_refunded(case, item)


def requested_lines(case: DecisionCase, policy: Policy) -> tuple[list[Line], Draft | None]:
    """The lines of the known requested items, and the first problem with the request."""
    order = case.order
    requests = _merged_requests(case)
    lines: list[Line] = []
    problem: Draft | None = None
    if not requests:
        problem = _nothing_left(order)
    for request in requests:
        item = order.item(request.item_id)
        if item is None:
            problem = problem or _unknown_item(order, request.item_id)
            continue
        done = _already_refunded(case, item)
        if request.quantity > item.quantity - done:
            problem = problem or _quantity_exceeded(item, request.quantity, done)
        rules = policy.rules_for(
            product_type=item.product_type, merchant_id=order.merchant_id, sku=item.sku
        )
        units = item_units(item, case.key_states)[done : done + request.quantity]
        lines.append(Line(item=item, quantity=request.quantity, rules=rules, units=tuple(units)))
    return lines, problem


def _nothing_left(order: Order) -> Draft:
    return Draft(
        Outcome.REJECT,
        "quantity.exceeds_refundable",
        f"Every item of order {order.order_id} is already refunded or being refunded.",
        "该订单的所有商品都已退款或正在退款中。",
    )


def _unknown_item(order: Order, item_id: str) -> Draft:
    return Draft(
        Outcome.REJECT,
        "item.unknown",
        f"Order {order.order_id} has no item {item_id}.",
        f"订单中没有商品 {item_id}。",
    )


def _quantity_exceeded(item: OrderItem, requested: int, done: int) -> Draft:
    left = item.quantity - done
    return Draft(
        Outcome.REJECT,
        "quantity.exceeds_refundable",
        f"Item {item.item_id}: {requested} requested, but only {left} of {item.quantity} "
        f"remain refundable ({done} already refunded or being refunded).",
        f"商品「{item.title or item.sku}」申请退款 {requested} 件，但仅剩 {left} 件可退"
        f"（共 {item.quantity} 件，已退或退款中 {done} 件）。",
    )
