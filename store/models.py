"""The tables. Orders arrive from the platform; refunds, payouts, ledger and audit are ours.

Every write that can be repeated (an activity retried, a POST sent twice) is guarded by
a primary key or unique constraint, so a repeat is an upsert or a no-op, never a copy.
Datetimes and domain words are stored through the column types of `store.column_types`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from domain.types import (
    CommissionState,
    Destination,
    OrderStatus,
    PaymentChannel,
    PayoutState,
    ProductType,
    RefundReason,
    RefundStatus,
    Remedy,
    RiskLevel,
    TopupStatus,
)
from store.column_types import UtcDateTime, Words

ID = String(128)
Money = BigInteger()
Timestamp = UtcDateTime()


class Base(DeclarativeBase):
    pass


class OrderRow(Base):
    __tablename__ = "orders"

    order_id: Mapped[str] = mapped_column(ID, primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ID, index=True)
    buyer_id: Mapped[str] = mapped_column(ID, index=True)
    status: Mapped[OrderStatus] = mapped_column(Words(OrderStatus, 16))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(Money)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    paid_at: Mapped[datetime | None] = mapped_column(Timestamp)
    client_ip: Mapped[str | None] = mapped_column(String(64), index=True)
    device_id: Mapped[str | None] = mapped_column(ID, index=True)
    # Hash of the canonical body as first posted: the same body again is a 200, another a 409.
    body_hash: Mapped[str] = mapped_column(String(64))
    # The order as recorded (JSON): read back in one query; its status and the items' usage,
    # which change later, come from their columns.
    document: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(Timestamp)


class OrderItemRow(Base):
    __tablename__ = "order_items"

    order_id: Mapped[str] = mapped_column(ID, ForeignKey("orders.order_id"), primary_key=True)
    item_id: Mapped[str] = mapped_column(ID, primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    sku: Mapped[str] = mapped_column(ID, index=True)
    title: Mapped[str] = mapped_column(String(200))
    product_type: Mapped[ProductType] = mapped_column(Words(ProductType, 16))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[int] = mapped_column(Money)


class ItemUsageRow(Base):
    __tablename__ = "item_usage"
    __table_args__ = (
        ForeignKeyConstraint(
            ["order_id", "item_id"], ["order_items.order_id", "order_items.item_id"]
        ),
    )

    order_id: Mapped[str] = mapped_column(ID, primary_key=True)
    item_id: Mapped[str] = mapped_column(ID, primary_key=True)
    key_revealed: Mapped[bool] = mapped_column(Boolean, default=False)
    progress_pct: Mapped[int] = mapped_column(Integer, default=0)
    downloaded: Mapped[bool] = mapped_column(Boolean, default=False)
    topup_status: Mapped[TopupStatus | None] = mapped_column(Words(TopupStatus, 16))
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class PaymentRow(Base):
    __tablename__ = "payments"

    order_id: Mapped[str] = mapped_column(ID, ForeignKey("orders.order_id"), primary_key=True)
    payment_id: Mapped[str] = mapped_column(ID, primary_key=True)
    channel: Mapped[PaymentChannel] = mapped_column(Words(PaymentChannel, 16))
    transaction_id: Mapped[str] = mapped_column(ID, index=True)
    amount: Mapped[int] = mapped_column(Money)
    paid_at: Mapped[datetime] = mapped_column(Timestamp)


class CardKeyRow(Base):
    """Which key ids were delivered for an item. Never the key's secret."""

    __tablename__ = "card_keys"
    __table_args__ = (
        ForeignKeyConstraint(
            ["order_id", "item_id"], ["order_items.order_id", "order_items.item_id"]
        ),
    )

    order_id: Mapped[str] = mapped_column(ID, primary_key=True)
    item_id: Mapped[str] = mapped_column(ID, primary_key=True)
    card_key_id: Mapped[str] = mapped_column(ID, primary_key=True, index=True)
    position: Mapped[int] = mapped_column(Integer)
    supplier: Mapped[str] = mapped_column(ID)
    delivered_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # The supplier's batch, when the platform reports it: incidents select bad batches by it.
    batch_id: Mapped[str | None] = mapped_column(ID, index=True)


class CommissionRow(Base):
    """A distributor's share of an order, as the platform reported it."""

    __tablename__ = "commissions"

    order_id: Mapped[str] = mapped_column(ID, ForeignKey("orders.order_id"), primary_key=True)
    beneficiary_id: Mapped[str] = mapped_column(ID, primary_key=True, index=True)
    level: Mapped[int] = mapped_column(Integer, primary_key=True)
    amount: Mapped[int] = mapped_column(Money)


class RefundRow(Base):
    __tablename__ = "refunds"
    __table_args__ = (
        Index("ix_refunds_buyer_created", "buyer_id", "created_at"),
        Index("ix_refunds_device_created", "device_id", "created_at"),
        Index("ix_refunds_ip_created", "client_ip", "created_at"),
        # The review queue: keyset pages by (deadline, refund id) within a status.
        Index("ix_refunds_status_deadline", "status", "review_deadline", "refund_id"),
        Index("ix_refunds_created", "created_at", "refund_id"),
    )

    refund_id: Mapped[str] = mapped_column(ID, primary_key=True)
    order_id: Mapped[str] = mapped_column(ID, ForeignKey("orders.order_id"), index=True)
    buyer_id: Mapped[str] = mapped_column(ID)
    merchant_id: Mapped[str] = mapped_column(ID, index=True)
    status: Mapped[RefundStatus] = mapped_column(Words(RefundStatus, 32))
    amount: Mapped[int] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    destination: Mapped[Destination] = mapped_column(Words(Destination, 16))
    reason: Mapped[RefundReason] = mapped_column(Words(RefundReason, 32))
    reason_text: Mapped[str] = mapped_column(String(200))
    client_ip: Mapped[str | None] = mapped_column(String(64))
    device_id: Mapped[str | None] = mapped_column(ID)
    risk_level: Mapped[RiskLevel | None] = mapped_column(Words(RiskLevel, 16))
    review_deadline: Mapped[datetime | None] = mapped_column(Timestamp)
    # The review as the console's queue filters it (copied from `review` with each report):
    # who holds the case until when, and whether it waits for the buyer's evidence.
    claimed_by: Mapped[str | None] = mapped_column(ID)
    claimed_until: Mapped[datetime | None] = mapped_column(Timestamp)
    awaiting_evidence: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    policy_version: Mapped[str | None] = mapped_column(String(64))
    # The parts of the contract body the workflow owns, kept as the workflow last reported them.
    decision: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    risk: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    review: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    evidence: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Highest timeline sequence number the workflow has reported (projection writes are ordered).
    progress_seq: Mapped[int] = mapped_column(Integer, default=0)
    # The refund body (JSON) exactly as the workflow last reported it: what
    # `GET /v1/refunds/{id}` answers with one primary-key read (None until the first report).
    document: Mapped[str | None] = mapped_column(Text)
    workflow_id: Mapped[str] = mapped_column(ID, unique=True)
    workflow_started: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)
    # The incident that started this refund (the shop's own initiative), if one did.
    incident_id: Mapped[str | None] = mapped_column(ID, index=True)
    # For an invalid key: money or a fresh key, as the buyer chose when asking (None: the
    # policy's default). The workflow's start argument is built from this row.
    remedy: Mapped[Remedy | None] = mapped_column(Words(Remedy, 16))
    # Whether a fresh key may be had instead (the product's policy), and the one delivered
    # when the refund ended `replaced` (`ReplacementView`; `card_key_replacements` indexes it).
    replacement_offered: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    replacement: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    # The body's parts, read only together with the refunds they belong to
    # (`store.refunds.WITH_PARTS`: one query per part for any number of refunds). Touching
    # one that was not loaded raises instead of quietly costing a query per refund.
    items: Mapped[list[RefundItemRow]] = relationship(
        viewonly=True, lazy="raise", order_by=lambda: RefundItemRow.item_id
    )
    timeline: Mapped[list[TimelineRow]] = relationship(
        viewonly=True, lazy="raise", order_by=lambda: TimelineRow.seq
    )
    payouts: Mapped[list[PayoutRow]] = relationship(
        viewonly=True, lazy="raise", order_by=lambda: PayoutRow.attempt
    )
    commissions: Mapped[list[RefundCommissionRow]] = relationship(
        viewonly=True,
        lazy="raise",
        order_by=lambda: (RefundCommissionRow.level, RefundCommissionRow.beneficiary_id),
    )


class RefundItemRow(Base):
    __tablename__ = "refund_items"

    refund_id: Mapped[str] = mapped_column(ID, ForeignKey("refunds.refund_id"), primary_key=True)
    item_id: Mapped[str] = mapped_column(ID, primary_key=True)
    quantity: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(Money)


class RefundClaimRow(Base):
    """An open refund's hold on an order item. The primary key is what makes a second
    concurrent refund on the same item fail (409) instead of racing past a SELECT."""

    __tablename__ = "refund_claims"

    order_id: Mapped[str] = mapped_column(ID, primary_key=True)
    item_id: Mapped[str] = mapped_column(ID, primary_key=True)
    refund_id: Mapped[str] = mapped_column(ID, ForeignKey("refunds.refund_id"), index=True)


class TimelineRow(Base):
    __tablename__ = "refund_timeline"
    __table_args__ = (UniqueConstraint("refund_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    refund_id: Mapped[str] = mapped_column(ID, ForeignKey("refunds.refund_id"))
    seq: Mapped[int] = mapped_column(Integer)
    stage: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(Timestamp)
    detail: Mapped[str] = mapped_column(Text, default="")


class PayoutRow(Base):
    """One attempt to move money back. `out_refund_no` is the gateway idempotency key:
    derived from refund id and attempt, never from time."""

    __tablename__ = "payouts"

    out_refund_no: Mapped[str] = mapped_column(String(64), primary_key=True)
    refund_id: Mapped[str] = mapped_column(ID, ForeignKey("refunds.refund_id"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    payment_id: Mapped[str | None] = mapped_column(ID)
    transaction_id: Mapped[str | None] = mapped_column(ID, index=True)
    channel: Mapped[PaymentChannel] = mapped_column(Words(PaymentChannel, 16))
    amount: Mapped[int] = mapped_column(Money)
    payment_total: Mapped[int] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    buyer_id: Mapped[str] = mapped_column(ID)
    merchant_id: Mapped[str] = mapped_column(ID)
    reason: Mapped[str] = mapped_column(String(80), default="")
    state: Mapped[PayoutState] = mapped_column(Words(PayoutState, 16))
    gateway_refund_id: Mapped[str | None] = mapped_column(String(128))
    # The gateway's last word on it: its status (ABNORMAL...) or error code/sub-code
    # (SIGNATURE_INVALID, ACQ.SYSTEM_ERROR...), kept for the timeline and for SREs.
    gateway_status: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(Timestamp, index=True)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)
    settled_at: Mapped[datetime | None] = mapped_column(Timestamp)


class RefundCommissionRow(Base):
    """A refund's effect on one distributor's commission: frozen, then clawed back or released."""

    __tablename__ = "refund_commissions"

    refund_id: Mapped[str] = mapped_column(ID, ForeignKey("refunds.refund_id"), primary_key=True)
    beneficiary_id: Mapped[str] = mapped_column(ID, primary_key=True)
    level: Mapped[int] = mapped_column(Integer, primary_key=True)
    amount: Mapped[int] = mapped_column(Money)
    state: Mapped[CommissionState] = mapped_column(Words(CommissionState, 16))
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class IdempotencyKeyRow(Base):
    """`Idempotency-Key` of `POST /v1/refunds`, scoped to the caller's API key.
    Inserted in the same transaction as the refund, so two identical POSTs at the same
    instant make one refund: the loser hits the primary key and reads the winner's."""

    __tablename__ = "idempotency_keys"

    caller: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    refund_id: Mapped[str] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(Timestamp, index=True)


class BalanceRow(Base):
    """The running balance of one ledger account (a buyer's wallet, a distributor's
    commission account, a merchant's settlement). Always the sum of its ledger entries."""

    __tablename__ = "balances"

    account: Mapped[str] = mapped_column(String(200), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    amount: Mapped[int] = mapped_column(Money, default=0)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class LedgerEntryRow(Base):
    """Double entry: the entries of one `txn_id` sum to zero. `txn_id` is derived from the
    business step (refund id + what happened), so posting the same step twice is a no-op."""

    __tablename__ = "ledger_entries"
    __table_args__ = (UniqueConstraint("txn_id", "account", "currency"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    txn_id: Mapped[str] = mapped_column(String(200), index=True)
    account: Mapped[str] = mapped_column(String(200), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(Money)
    refund_id: Mapped[str | None] = mapped_column(ID, index=True)
    memo: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class AuditRow(Base):
    """Append-only and hash-chained: each entry's hash covers the previous entry's hash."""

    __tablename__ = "audit_log"
    # The supervisors' view counts a day's decisions by action.
    __table_args__ = (Index("ix_audit_action_at", "action", "at"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_key: Mapped[str] = mapped_column(String(200), unique=True)
    at: Mapped[datetime] = mapped_column(Timestamp)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(200), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class NotificationRow(Base):
    """Transactional outbox: written with the status change it announces, delivered by
    the worker's dispatcher with retries, so a down webhook never stalls a refund."""

    __tablename__ = "notifications"
    __table_args__ = (
        # One notice per refund step, channel and recipient (several distributors share a step).
        UniqueConstraint(
            "refund_id", "seq", "channel", "recipient", name="uq_notifications_step_recipient"
        ),
        Index("ix_notifications_due", "delivered_at", "next_attempt_at"),
        Index("ix_notifications_recipient", "recipient", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    refund_id: Mapped[str] = mapped_column(ID, index=True)
    seq: Mapped[int] = mapped_column(Integer)
    # webhook | inbox | supervisor | upline | message | sms | email
    channel: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(32))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(Timestamp)
    delivered_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_error: Mapped[str | None] = mapped_column(String(500))
    # A buyer message (sms, email) the dispatcher gave up on: refused for good, out of
    # attempts, or the buyer opted out meanwhile; `last_error` says which. Webhooks never
    # give up ("until a 2xx").
    failed_at: Mapped[datetime | None] = mapped_column(Timestamp)


class BuyerContactRow(Base):
    """How to reach the buyer of an order (`buyer_contact` on the order): kept apart from
    the order's document, which the workflow reads, so contacts never enter its history."""

    __tablename__ = "buyer_contacts"

    order_id: Mapped[str] = mapped_column(ID, ForeignKey("orders.order_id"), primary_key=True)
    buyer_id: Mapped[str] = mapped_column(ID, index=True)
    phone: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(254))
    language: Mapped[str] = mapped_column(String(8))
    recorded_at: Mapped[datetime] = mapped_column(Timestamp)


class BuyerOptOutRow(Base):
    """A buyer who asked for no more messages on a channel (sms | email), for all orders."""

    __tablename__ = "buyer_opt_outs"

    buyer_id: Mapped[str] = mapped_column(ID, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    at: Mapped[datetime] = mapped_column(Timestamp)


class BlacklistRow(Base):
    __tablename__ = "blacklist"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # buyer | device | ip
    value: Mapped[str] = mapped_column(String(128), primary_key=True)
    reason: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class ConsoleAccountRow(Base):
    """A person who signs in to the reviewer console. Only a password hash (argon2) is kept."""

    __tablename__ = "console_accounts"

    username: Mapped[str] = mapped_column(ID, primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))  # reviewer | supervisor | admin
    password_hash: Mapped[str] = mapped_column(String(255))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class ConsoleSessionRow(Base):
    """A signed-in console session. The cookie holds a random token; only its SHA-256 is
    stored, so a database read does not hand out sessions. Forms carry `csrf`."""

    __tablename__ = "console_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    reviewer: Mapped[str] = mapped_column(ID)  # the identity actions are taken under
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    via: Mapped[str] = mapped_column(String(16))  # password | api_key
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    expires_at: Mapped[datetime] = mapped_column(Timestamp, index=True)


# Incidents', pre-checks', replacements', supplier claims' and balance holds' tables live in
# modules of their own; imported here so that `Base.metadata` (Alembic, the schema test) knows
# every table.
import store.claim_rows  # noqa: E402
import store.hold_rows  # noqa: E402
import store.incident_rows  # noqa: E402
import store.replacement_rows  # noqa: E402, F401
