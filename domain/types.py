"""The words of the domain, as the public contract spells them.

Every value here appears in CONTRACT.md or DOMAIN.md; adding a member is a
contract change by addition, renaming one breaks integrators.
"""

from __future__ import annotations

from enum import StrEnum


class OrderStatus(StrEnum):
    UNPAID = "unpaid"
    PAID = "paid"
    CANCELLED = "cancelled"


class ProductType(StrEnum):
    CARD_KEY = "card_key"
    COURSE = "course"
    MEMBERSHIP = "membership"
    TOPUP = "topup"


class PaymentChannel(StrEnum):
    ALIPAY = "alipay"
    WECHAT = "wechat"
    BALANCE = "balance"


class TopupStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class RefundReason(StrEnum):
    INVALID_KEY = "invalid_key"
    NOT_RECEIVED = "not_received"
    NOT_AS_DESCRIBED = "not_as_described"
    DUPLICATE_CHARGE = "duplicate_charge"
    WRONG_PURCHASE = "wrong_purchase"
    CHANGED_MIND = "changed_mind"
    TECHNICAL_ISSUE = "technical_issue"
    OTHER = "other"


class RefundStatus(StrEnum):
    SUBMITTED = "submitted"
    CHECKING = "checking"
    PENDING_REVIEW = "pending_review"
    APPROVED = "approved"
    REFUNDING = "refunding"
    REFUNDED = "refunded"
    REJECTED = "rejected"
    REDIRECTED_TO_SUPPORT = "redirected_to_support"
    CANCELLED = "cancelled"
    FAILED = "failed"
    # Terminal: the buyer got a fresh card key instead of money (the old key voided).
    REPLACED = "replaced"
    # Not terminal: where the money is cannot be known without a person (a gateway answered
    # ABNORMAL, or its answers could not be verified past the policy's limit). No other route
    # pays while a refund is here.
    NEEDS_ATTENTION = "needs_attention"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @property
    def money_moving(self) -> bool:
        """Once money starts to move a buyer can no longer cancel."""
        return self in (
            RefundStatus.REFUNDING,
            RefundStatus.REFUNDED,
            RefundStatus.NEEDS_ATTENTION,
        )


TERMINAL_STATUSES = frozenset(
    {
        RefundStatus.REFUNDED,
        RefundStatus.REJECTED,
        RefundStatus.REDIRECTED_TO_SUPPORT,
        RefundStatus.CANCELLED,
        RefundStatus.FAILED,
        RefundStatus.REPLACED,
    }
)


class Outcome(StrEnum):
    """What the rules decided. Values follow the contract's `decision.outcome`."""

    AUTO_APPROVE = "auto_approved"
    REVIEW = "review"
    REJECT = "rejected"
    REDIRECT_TO_SUPPORT = "redirected_to_support"
    CANCEL_UNPAID = "cancelled_unpaid"


class KeyState(StrEnum):
    """What the card-key supplier says about a key."""

    UNREDEEMED = "unredeemed"
    REDEEMED = "redeemed"
    INVALID = "invalid"
    LOCKED = "locked"
    VOIDED = "voided"
    UNREACHABLE = "unreachable"  # the supplier did not answer in time: no evidence either way


class Remedy(StrEnum):
    """What a buyer who reports an invalid key wants: money back, or a fresh key (补发)."""

    REFUND = "refund"
    REPLACEMENT = "replacement"


class ReplacementMode(StrEnum):
    """The policy's word per product on replacing a key reported invalid: never (`off`),
    when the buyer asks (`offer`), or unless the buyer asks for money (`default`)."""

    OFF = "off"
    OFFER = "offer"
    DEFAULT = "default"


class Destination(StrEnum):
    ORIGINAL = "original"
    BALANCE = "balance"


class PayoutState(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    CLOSED = "closed"
    ABNORMAL = "abnormal"  # WeChat: the money left the merchant but did not reach the buyer
    FAILED = "failed"  # a verified refusal: no money moved
    # The gateway's answer could not be verified (bad or missing signature, no status): the
    # refund may or may not exist; a signed query decides, never another route.
    UNKNOWN = "unknown"

    @property
    def settled(self) -> bool:
        """A final state: nothing more will happen to this payout at the gateway by itself."""
        return self in (PayoutState.SUCCEEDED, PayoutState.CLOSED, PayoutState.FAILED)

    @property
    def allows_another_route(self) -> bool:
        """Only a verified refusal or a verified CLOSED proves no money moved on this route."""
        return self in (PayoutState.CLOSED, PayoutState.FAILED)


class CommissionState(StrEnum):
    EARNED = "earned"  # on the order, no refund touches it
    FROZEN = "frozen"
    CLAWED_BACK = "clawed_back"
    RELEASED = "released"
    DEBT = "debt"  # clawed back after the distributor withdrew: they owe it


class CommissionAction(StrEnum):
    """What a refund does to its order's commissions: freeze on submission, claw back (pro
    rata) when money goes back, release when it does not."""

    FREEZE = "freeze"
    CLAW_BACK = "claw_back"
    RELEASE = "release"


class RiskLevel(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    BLOCKED = "blocked"


class Role(StrEnum):
    PLATFORM = "platform"
    REVIEWER = "reviewer"
    ADMIN = "admin"


class EvidenceKind(StrEnum):
    SCREENSHOT = "screenshot"
    VIDEO = "video"
    TEXT = "text"
    LINK = "link"
    OTHER = "other"
