"""What the RefundWorkflow takes, sends its activities and gets back: one model each way,
so fields can be added without breaking histories already recorded.

Pure models (domain words only): the workflow, its activities' implementations, the API and
the sweeper all use them, and none of them drags in another's dependencies. Histories hold
their JSON, never their module path."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from domain.incident import IncidentMark
from domain.model import Model
from domain.order import CardKeyRef, ClientInfo, Order
from domain.policy import Policy
from domain.refund import (
    CommissionView,
    Evidence,
    RefundBody,
    RefundItemRequest,
    RiskAssessment,
    TimelineEntry,
)
from domain.types import CommissionAction, KeyState, PaymentChannel, RefundReason, Remedy

__all__ = [
    "AbandonPayout",
    "AbnormalRescue",
    "AuditEvent",
    "CaseFile",
    "CaseRequest",
    "CommissionAction",
    "CommissionAnswer",
    "CommissionRequest",
    "GatewayNotice",
    "KeysAnswer",
    "KeysRequest",
    "OpenCaseRequest",
    "OpenedCase",
    "PayoutRequest",
    "ProgressReport",
    "RecordWithCommissions",
    "RefundInput",
    "ReplacementRequest",
    "ReservationAnswer",
    "RiskRequest",
    "SettlementQuery",
]


class RefundInput(Model):
    """The workflow's start argument: what the API stored when the buyer clicked."""

    refund_id: str
    order_id: str
    buyer_id: str
    merchant_id: str
    reason: RefundReason
    reason_text: str = ""
    items: list[RefundItemRequest]
    evidence: list[Evidence] = Field(default_factory=list)
    client: ClientInfo | None = None
    amount: int
    currency: str = "CNY"
    created_at: datetime
    # Set when an incident started the refund (the shop's own initiative, `domain.incident`).
    incident: IncidentMark | None = None
    # Money or a fresh key for an invalid key, as the buyer chose when asking (None: the
    # policy's default).
    remedy: Remedy | None = None


class CaseRequest(Model):
    refund_id: str
    order_id: str


class CaseFile(Model):
    """The order as stored now, what other refunds already took, and the policy in force."""

    order: Order | None
    already_refunded: dict[str, int] = Field(default_factory=dict)
    policy: Policy
    policy_version: str
    policy_error: str | None = None


class OpenCaseRequest(Model):
    """Open the refund's case in one step: load the order and the policy in force, assess
    risk, freeze the distributors' commissions (pro rata of `amount`)."""

    refund_id: str
    order_id: str
    buyer_id: str
    client: ClientInfo | None = None
    items: list[RefundItemRequest]
    amount: int
    at: datetime


class OpenedCase(Model):
    order: Order | None  # None: the order no longer exists
    already_refunded: dict[str, int] = Field(default_factory=dict)
    policy: Policy
    policy_version: str
    risk: RiskAssessment = Field(default_factory=RiskAssessment)
    commissions: list[CommissionView] = Field(default_factory=list)
    # The order's card keys that were delivered as replacements; the order's items already
    # carry them in place of the keys they replaced.
    replaced_keys: list[str] = Field(default_factory=list)


class RiskRequest(Model):
    refund_id: str
    order_id: str
    buyer_id: str
    client: ClientInfo | None = None
    card_key_ids: list[str] = Field(default_factory=list)
    skus: list[str] = Field(default_factory=list)
    at: datetime


class KeysRequest(Model):
    refund_id: str
    keys: list[CardKeyRef]


class KeysAnswer(Model):
    states: dict[str, KeyState]


class ReplacementRequest(Model):
    """Replace one card key reported invalid by a fresh one of the same SKU (补发)."""

    refund_id: str
    order_id: str
    buyer_id: str
    item_id: str
    sku: str
    supplier: str
    replaces: str  # the card_key_id reported invalid
    reservation_id: str | None = None  # once reserved: the reservation to confirm

    @property
    def idempotency_key(self) -> str:
        """From the refund, never from time: one refund reserves at most one key, however
        often the call is repeated."""
        return f"{self.refund_id}-replace"


class ReservationAnswer(Model):
    """What the supplier says of our reservation: `reserved`, `confirmed` (the buyer has the
    key), `released` or `expired`; `out_of_stock` (nothing reserved) or `none` (no
    reservation under our idempotency key). Ids only: a key's secret never enters history."""

    state: str
    reservation_id: str | None = None
    card_key_id: str | None = None


class CommissionRequest(Model):
    refund_id: str
    order_id: str
    merchant_id: str
    currency: str
    action: CommissionAction
    # The refund's share of the order: commissions move pro rata (refund / order amount).
    refund_amount: int
    order_amount: int


class CommissionAnswer(Model):
    commissions: list[CommissionView]


class PayoutRequest(Model):
    refund_id: str
    attempt: int  # 1, 2, ...: part of the idempotency key, stable across retries
    channel: PaymentChannel
    payment_id: str | None
    transaction_id: str | None
    amount: int
    payment_total: int
    currency: str
    buyer_id: str
    merchant_id: str
    reason: str = ""

    @property
    def out_refund_no(self) -> str:
        """The gateway's idempotency key: from the refund and attempt, never from time, so a
        retry after days in review or a worker restart refunds once."""
        return f"{self.refund_id}-p{self.attempt}"


class SettlementQuery(Model):
    refund_id: str
    out_refund_no: str
    channel: PaymentChannel
    transaction_id: str | None


class AbnormalRescue(Model):
    """Send an ABNORMAL refund to a bank card instead (a supervisor's decision). Bank fields
    are already encrypted for the gateway: history never holds them in clear text."""

    refund_id: str
    out_refund_no: str
    to: str  # USER_BANK_CARD | MERCHANT_BANK_CARD
    bank_type: str | None = None
    bank_account: str | None = None
    real_name: str | None = None
    encrypted_with: str | None = None


class AbandonPayout(Model):
    """A person's word that a payout moved no money (see `ResolveAction.PAY_TO_BALANCE`)."""

    refund_id: str
    out_refund_no: str
    operator: str
    note: str


class GatewayNotice(Model):
    """A gateway's verified notification, delivered to the workflow as a signal."""

    out_refund_no: str
    state: str  # PayoutState value
    gateway_refund_id: str | None = None


class AuditEvent(Model):
    key: str
    actor: str
    action: str
    payload: dict[str, Any] = Field(default_factory=dict)


class ProgressReport(Model):
    """The workflow's refund body, written to the database so the API, listings and webhooks
    see it (the webhook body is this body: nothing is read back). Reports carry a sequence
    number: an older report retried late never overwrites a newer one."""

    seq: int
    body: RefundBody
    # body.timeline[first_entry - 1:] are the entries this report adds (1-based sequence).
    first_entry: int
    release_claims: bool = False
    cancel_order: bool = False
    reprice_items: bool = False  # the decision priced the items: store body.items anew
    alerts: list[str] = Field(default_factory=list)
    audit: list[AuditEvent] = Field(default_factory=list)
    # Messages from a reviewer to the buyer's inbox (more evidence, please).
    buyer_messages: list[str] = Field(default_factory=list)

    @property
    def refund_id(self) -> str:
        return self.body.refund_id

    @property
    def new_entries(self) -> list[TimelineEntry]:
        return self.body.timeline[self.first_entry - 1 :]


class RecordWithCommissions(Model):
    """A progress report and the commission move it announces, in one transaction (the
    refund's outcome: claw back when it paid, release when it did not)."""

    report: ProgressReport
    commissions: CommissionRequest | None = None
