"""An order as the shop platform records it (CONTRACT.md, "Orders")."""

from __future__ import annotations

from pydantic import Field, model_validator

from domain.contacts import BuyerContact
from domain.model import (
    Amount,
    Currency,
    Identifier,
    Model,
    PositiveAmount,
    Quantity,
    ShortText,
    UtcDatetime,
)
from domain.types import OrderStatus, PaymentChannel, ProductType, TopupStatus


class CardKeyRef(Model):
    """Only the key's id: card-key secrets never reach this service."""

    card_key_id: Identifier
    supplier: Identifier
    delivered_at: UtcDatetime | None = None
    # The supplier's batch the key came from, when the platform knows it: an incident can
    # select a bad batch by it (`domain.incident`).
    batch_id: Identifier | None = None


class Usage(Model):
    key_revealed: bool = False
    progress_pct: int = Field(default=0, ge=0, le=100, strict=True)
    downloaded: bool = False
    topup_status: TopupStatus | None = None


class OrderItem(Model):
    item_id: Identifier
    sku: Identifier
    title: ShortText = ""
    product_type: ProductType
    quantity: Quantity
    unit_price: Amount
    card_keys: list[CardKeyRef] = Field(default_factory=list, max_length=1000)
    usage: Usage = Field(default_factory=Usage)

    @property
    def total(self) -> int:
        return self.quantity * self.unit_price


class Payment(Model):
    payment_id: Identifier
    channel: PaymentChannel
    transaction_id: Identifier
    amount: PositiveAmount
    paid_at: UtcDatetime


class ClientInfo(Model):
    ip: ShortText | None = Field(default=None, max_length=64)
    device_id: Identifier | None = None


class CommissionShare(Model):
    beneficiary_id: Identifier
    level: int = Field(ge=1, le=10, strict=True)
    amount: Amount


class Order(Model):
    order_id: Identifier
    merchant_id: Identifier
    buyer_id: Identifier
    status: OrderStatus
    currency: Currency = "CNY"
    amount: Amount
    created_at: UtcDatetime
    paid_at: UtcDatetime | None = None
    payments: list[Payment] = Field(default_factory=list, max_length=20)
    items: list[OrderItem] = Field(min_length=1, max_length=200)
    client: ClientInfo | None = None
    commissions: list[CommissionShare] = Field(default_factory=list, max_length=20)

    @model_validator(mode="after")
    def _consistent(self) -> Order:
        ids = [i.item_id for i in self.items]
        if len(set(ids)) != len(ids):
            raise ValueError("items: item_id values must be unique within an order")
        if sum(i.total for i in self.items) != self.amount:
            raise ValueError("amount: must equal the sum of quantity * unit_price over items")
        pay_ids = [p.payment_id for p in self.payments]
        if len(set(pay_ids)) != len(pay_ids):
            raise ValueError("payments: payment_id values must be unique within an order")
        if self.status is OrderStatus.PAID:
            if not self.payments:
                raise ValueError("payments: a paid order needs at least one payment")
            if sum(p.amount for p in self.payments) < self.amount:
                raise ValueError("payments: a paid order's payments must cover its amount")
        if sum(c.amount for c in self.commissions) > self.amount:
            raise ValueError("commissions: cannot exceed the order amount")
        return self

    def item(self, item_id: str) -> OrderItem | None:
        return next((i for i in self.items if i.item_id == item_id), None)

    @property
    def paid_total(self) -> int:
        return sum(p.amount for p in self.payments)

    @property
    def duplicate_payments(self) -> list[Payment]:
        """Payments beyond the first that covered the order: a system charged the buyer twice."""
        covered, extra = 0, []
        for p in sorted(self.payments, key=lambda p: p.paid_at):
            if covered >= self.amount:
                extra.append(p)
            else:
                covered += p.amount
        return extra


class OrderIntake(Order):
    """`POST /v1/orders`: the order, and optionally how to reach its buyer. The contact is
    kept apart (`order()` is what the workflow reads), so it never enters Temporal history."""

    buyer_contact: BuyerContact | None = None

    def order(self) -> Order:
        fields = {name: getattr(self, name) for name in Order.model_fields}
        return Order.model_construct(
            _fields_set=self.model_fields_set - {"buyer_contact"}, **fields
        )


class UsageReport(Model):
    """`POST /v1/orders/{order_id}/usage`: one usage event for one item."""

    item_id: Identifier
    key_revealed: bool | None = None
    progress_pct: int | None = Field(default=None, ge=0, le=100, strict=True)
    downloaded: bool | None = None
    topup_status: TopupStatus | None = None

    @model_validator(mode="after")
    def _something(self) -> UsageReport:
        if all(
            v is None
            for v in (self.key_revealed, self.progress_pct, self.downloaded, self.topup_status)
        ):
            raise ValueError(
                "a usage report needs at least one of key_revealed, progress_pct, "
                "downloaded, topup_status"
            )
        return self

    def apply(self, usage: Usage) -> Usage:
        """Usage only grows: a revealed key stays revealed, progress never goes back."""
        return Usage(
            key_revealed=usage.key_revealed or bool(self.key_revealed),
            progress_pct=max(usage.progress_pct, self.progress_pct or 0),
            downloaded=usage.downloaded or bool(self.downloaded),
            topup_status=self.topup_status or usage.topup_status,
        )
