"""A refund as the contract shows it: the request a buyer's click makes and the body
that `GET /v1/refunds/{id}` and the workflow's `status` query both return."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field, HttpUrl, model_validator

from domain.model import (
    Amount,
    Identifier,
    LongText,
    Model,
    PositiveAmount,
    Quantity,
    ShortText,
    UtcDatetime,
)
from domain.order import ClientInfo
from domain.types import (
    CommissionState,
    Destination,
    EvidenceKind,
    Outcome,
    PaymentChannel,
    PayoutState,
    RefundReason,
    RefundStatus,
    Remedy,
    RiskLevel,
)


class Evidence(Model):
    kind: EvidenceKind
    url: HttpUrl | None = Field(default=None)
    text: LongText | None = None

    @model_validator(mode="after")
    def _has_content(self) -> Evidence:
        if self.url is None and not self.text:
            raise ValueError("evidence needs a url or a text")
        if self.url is not None and len(str(self.url)) > 2048:
            raise ValueError("url: at most 2048 characters")
        return self


class RefundItemRequest(Model):
    item_id: Identifier
    quantity: Quantity


class RefundRequest(Model):
    """`POST /v1/refunds`: the buyer clicked "apply for refund"."""

    order_id: Identifier
    buyer_id: Identifier
    reason: RefundReason
    reason_text: ShortText = ""
    items: list[RefundItemRequest] | None = Field(default=None, min_length=1, max_length=200)
    evidence: list[Evidence] = Field(default_factory=list, max_length=20)
    client: ClientInfo | None = None
    # For an invalid key: money back, or a fresh key where the product's policy offers one
    # (`domain.replacement`); left out, the policy's default.
    remedy: Remedy | None = None

    @model_validator(mode="after")
    def _unique_items(self) -> RefundRequest:
        if self.items is not None:
            ids = [i.item_id for i in self.items]
            if len(set(ids)) != len(ids):
                raise ValueError("items: each item_id at most once")
        if self.remedy is Remedy.REPLACEMENT and self.reason is not RefundReason.INVALID_KEY:
            raise ValueError("remedy: a replacement key is only for reason invalid_key")
        return self


class EvidenceRequest(Model):
    evidence: list[Evidence] = Field(min_length=1, max_length=20)


class CancelRequest(Model):
    buyer_id: Identifier


class RemedyRequest(Model):
    """The buyer's choice, on the progress page, between money and a fresh key."""

    buyer_id: Identifier
    remedy: Remedy


class AppealRequest(Model):
    buyer_id: Identifier
    text: LongText = Field(min_length=1)


class ApproveRequest(Model):
    reviewer: Identifier
    note: LongText = ""
    amount: PositiveAmount | None = None


class RejectRequest(Model):
    reviewer: Identifier
    reason: LongText = Field(min_length=1)


class ClaimRequest(Model):
    """A reviewer takes a case: nobody else may act on it until the claim lapses
    (`review.claim_minutes`) or is released."""

    reviewer: Identifier


class ReleaseRequest(Model):
    reviewer: Identifier


class ReassignRequest(Model):
    """A supervisor gives a case to another reviewer (the claim starts afresh)."""

    supervisor: Identifier
    to: Identifier


class EvidenceAsk(Model):
    """A reviewer asks the buyer for more evidence; `message` goes to the buyer's inbox and
    progress page, and the case waits for the buyer's answer."""

    reviewer: Identifier
    message: LongText = Field(min_length=1)


class RecheckRequest(Model):
    """Ask the supplier again whether the refund's card keys were redeemed."""

    reviewer: Identifier


class ResolveAction(StrEnum):
    """What a supervisor or SRE does about a refund that needs attention."""

    VERIFY = "verify"  # ask the gateway again (signed query), e.g. after fixing its keys
    ABNORMAL_REFUND = "abnormal_refund"  # WeChat ABNORMAL: send the money to a bank card
    # A person checked that the original route moved no money and will not: pay to balance.
    PAY_TO_BALANCE = "pay_to_balance"


class AbnormalRefundTarget(StrEnum):
    """WeChat's abnormal-refund `type`."""

    USER_BANK_CARD = "USER_BANK_CARD"
    MERCHANT_BANK_CARD = "MERCHANT_BANK_CARD"


class ResolveRequest(Model):
    """`POST /v1/refunds/{id}/resolve` and the workflow's `resolve` update and signal.

    For `abnormal_refund` to the buyer's card, the API encrypts `bank_account` and
    `real_name` for the gateway before the workflow sees them (`encrypted_with` names the
    gateway key), so history never holds them in clear text."""

    operator: Identifier
    action: ResolveAction
    note: LongText = ""
    to: AbnormalRefundTarget | None = None
    bank_type: ShortText | None = None
    bank_account: LongText | None = None
    real_name: LongText | None = None
    encrypted_with: ShortText | None = None

    @model_validator(mode="after")
    def _complete(self) -> ResolveRequest:
        if self.action is ResolveAction.ABNORMAL_REFUND:
            if self.to is None:
                raise ValueError("to: required for abnormal_refund")
            if self.to is AbnormalRefundTarget.USER_BANK_CARD and not (
                self.bank_type and self.bank_account and self.real_name
            ):
                raise ValueError(
                    "bank_type, bank_account and real_name are required to refund to the "
                    "buyer's bank card"
                )
        if self.action is ResolveAction.PAY_TO_BALANCE and not self.note.strip():
            raise ValueError("note: say why the original route moved no money")
        return self


class RiskSignal(Model):
    code: str
    detail: str = ""
    weight: int = 0


class RiskAssessment(Model):
    level: RiskLevel = RiskLevel.LOW
    signals: list[RiskSignal] = Field(default_factory=list)
    # How much the buyer's history moves the automatic-approval limit, in percent (100 = as is).
    auto_limit_pct: int = 100


class DecisionView(Model):
    outcome: Outcome
    rule: str
    explanation: str
    explanation_zh: str = ""
    policy_version: str = ""
    refundable_amount: Amount = 0


class FirstApproval(Model):
    """An approval above the four-eyes amount, waiting for a second, different reviewer."""

    reviewer: str
    amount: int
    note: str = ""
    at: UtcDatetime


class ReviewView(Model):
    deadline: UtcDatetime
    escalated: bool = False
    reviewer: str | None = None
    note: str | None = None
    appealed: bool = False
    appeal_text: str | None = None
    # Who is working on the case, until when (a lapsed claim holds nothing).
    claimed_by: str | None = None
    claimed_until: UtcDatetime | None = None
    # Four eyes: the first of two approvals, while the second is awaited.
    first_approval: FirstApproval | None = None
    # What a reviewer asked the buyer for; `awaiting_evidence` until the buyer adds some.
    evidence_requested: str | None = None
    awaiting_evidence: bool = False


class RefundItemView(Model):
    item_id: str
    quantity: int
    amount: int


class PayoutView(Model):
    channel: PaymentChannel
    amount: int
    state: PayoutState
    gateway_refund_id: str | None = None
    out_refund_no: str
    payment_id: str | None = None
    attempt: int = 1
    # The gateway's last word: its status or error code/sub-code (e.g. ABNORMAL,
    # SIGNATURE_INVALID, ACQ.SYSTEM_ERROR), so the state is explained, not just named.
    gateway_status: str | None = None


class CommissionView(Model):
    beneficiary_id: str
    level: int = 1
    amount: int
    state: CommissionState


class ReplacementView(Model):
    """The fresh key delivered instead of money (status `replaced`): its id and the key it
    replaced. Like every card key here, only ids: the platform shows the secret."""

    card_key_id: str
    supplier: str
    replaced_card_key_id: str
    item_id: str
    reservation_id: str
    delivered_at: UtcDatetime


class TimelineEntry(Model):
    stage: str
    at: UtcDatetime
    detail: str = ""


class RefundLinks(Model):
    self_: str = Field(alias="self", serialization_alias="self")

    model_config = Model.model_config | {"populate_by_name": True}


class RefundAccepted(Model):
    refund_id: str
    status: RefundStatus
    links: RefundLinks


class RefundBody(Model):
    refund_id: str
    order_id: str
    buyer_id: str
    merchant_id: str
    status: RefundStatus
    amount: int
    currency: str = "CNY"
    destination: Destination = Destination.ORIGINAL
    reason: RefundReason
    reason_text: str = ""
    decision: DecisionView | None = None
    risk: RiskAssessment | None = None
    review: ReviewView | None = None
    items: list[RefundItemView] = Field(default_factory=list)
    payouts: list[PayoutView] = Field(default_factory=list)
    commissions: list[CommissionView] = Field(default_factory=list)
    evidence: list[Evidence] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    # An invalid key: whether a fresh key may be had instead of money (the product's policy),
    # what the buyer chose (None: the policy's default), and the fresh key once the refund
    # ended `replaced`.
    replacement_offered: bool = False
    remedy: Remedy | None = None
    replacement: ReplacementView | None = None
    workflow_id: str
    created_at: datetime
    updated_at: datetime


def refundable_now(body: RefundBody) -> int:
    """What a reviewer may approve at most: the decision's refundable amount while the rules
    would pay (automatically or after review); the items' value when a person overrides a
    rejection on appeal."""
    d = body.decision
    if d is not None and d.outcome in (Outcome.AUTO_APPROVE, Outcome.REVIEW):
        return d.refundable_amount
    return body.amount


def workflow_id_for(refund_id: str) -> str:
    """The workflow id is the business id (CONTRACT: `refund-{refund_id}`)."""
    return f"refund-{refund_id}"
