"""Small factories for orders and decision cases: every test names only what it is about."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from domain.decision import DecisionCase
from domain.order import CardKeyRef, Order, OrderItem, Payment, Usage
from domain.refund import RefundItemRequest, RiskAssessment
from domain.types import (
    KeyState,
    OrderStatus,
    PaymentChannel,
    ProductType,
    RefundReason,
    RiskLevel,
)

PAID_AT = datetime(2026, 11, 20, 8, 0, 5, tzinfo=UTC)


def card_key_item(
    item_id: str = "I-1",
    *,
    quantity: int = 1,
    unit_price: int = 5000,
    delivered: bool = True,
    keys: int | None = None,
    sku: str = "steam-50",
    **usage: Any,
) -> OrderItem:
    count = quantity if keys is None else keys
    return OrderItem(
        item_id=item_id,
        sku=sku,
        title="Steam wallet 50",
        product_type=ProductType.CARD_KEY,
        quantity=quantity,
        unit_price=unit_price,
        card_keys=[
            CardKeyRef(
                card_key_id=f"K-{item_id}-{n}",
                supplier="sup-a",
                delivered_at=PAID_AT + timedelta(seconds=1) if delivered else None,
            )
            for n in range(count)
        ],
        usage=Usage(**usage),
    )


def content_item(
    item_id: str = "I-1",
    *,
    product_type: ProductType = ProductType.COURSE,
    quantity: int = 1,
    unit_price: int = 9900,
    sku: str = "python-course",
    **usage: Any,
) -> OrderItem:
    return OrderItem(
        item_id=item_id,
        sku=sku,
        title="Python in 30 days",
        product_type=product_type,
        quantity=quantity,
        unit_price=unit_price,
        usage=Usage(**usage),
    )


def order(
    *items: OrderItem,
    status: OrderStatus = OrderStatus.PAID,
    channel: PaymentChannel = PaymentChannel.ALIPAY,
    payments: int = 1,
    merchant_id: str = "M-7",
) -> Order:
    items = items or (card_key_item(),)
    amount = sum(i.quantity * i.unit_price for i in items)
    paid = status is OrderStatus.PAID and amount > 0
    return Order(
        order_id="O-1001",
        merchant_id=merchant_id,
        buyer_id="U-42",
        status=status,
        amount=amount,
        created_at=PAID_AT - timedelta(seconds=5),
        paid_at=PAID_AT if paid else None,
        payments=[
            Payment(
                payment_id=f"P-{n + 1}",
                channel=channel,
                transaction_id=f"T-{n + 1}",
                amount=amount,
                paid_at=PAID_AT + timedelta(seconds=n),
            )
            for n in range(payments if paid else 0)
        ],
        items=list(items),
    )


def keys_of(o: Order, state: KeyState) -> dict[str, KeyState]:
    return {k.card_key_id: state for i in o.items for k in i.card_keys}


def case(
    o: Order | None = None,
    *,
    after: timedelta = timedelta(hours=1),
    reason: RefundReason = RefundReason.CHANGED_MIND,
    text: str = "",
    key_state: KeyState | None = KeyState.UNREDEEMED,
    key_states: dict[str, KeyState] | None = None,
    items: list[tuple[str, int]] | None = None,
    already_refunded: dict[str, int] | None = None,
    risk: RiskLevel = RiskLevel.LOW,
    auto_limit_pct: int = 100,
) -> DecisionCase:
    o = o or order()
    states = key_states if key_states is not None else {}
    if key_states is None and key_state is not None:
        states = keys_of(o, key_state)
    requested = items if items is not None else [(i.item_id, i.quantity) for i in o.items]
    return DecisionCase(
        order=o,
        items=[RefundItemRequest(item_id=i, quantity=q) for i, q in requested],
        already_refunded=already_refunded or {},
        key_states=states,
        risk=RiskAssessment(level=risk, auto_limit_pct=auto_limit_pct),
        reason=reason,
        reason_text=text,
        now=PAID_AT + after,
    )
