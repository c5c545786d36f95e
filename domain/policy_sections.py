"""The policy's sections: windows, usage thresholds, limits, the fast lane, review, payouts,
reasons and risk thresholds, and the whole `Policy` they make (see `domain.policy`).

Every section is a frozen pydantic model that refuses unknown keys; an override section
(`...Override`) holds only the keys written in the file, and `apply_override` merges it
into what it inherits. Plain data: no I/O, no `yaml`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, ClassVar, Self, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    model_serializer,
    model_validator,
)

from domain.model import MAX_AMOUNT, Identifier
from domain.types import Destination, ProductType, RefundReason, ReplacementMode, RiskLevel

Fen = Annotated[int, Field(ge=0, le=MAX_AMOUNT, strict=True)]
Count = Annotated[int, Field(ge=0, le=1_000_000, strict=True)]
Percent = Annotated[int, Field(ge=0, le=100, strict=True)]
Minutes = Annotated[int, Field(ge=0, le=60 * 24 * 366, strict=True)]
Hours = Annotated[int, Field(ge=0, le=24 * 366, strict=True)]
PositiveHours = Annotated[int, Field(ge=1, le=24 * 366, strict=True)]
Days = Annotated[int, Field(ge=0, le=3660, strict=True)]
Keyword = Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True)]

_RISK_RANK = {RiskLevel.LOW: 0, RiskLevel.MEDIUM: 1, RiskLevel.HIGH: 2, RiskLevel.BLOCKED: 3}


def risk_rank(level: RiskLevel) -> int:
    """Risk levels in order: low < medium < high < blocked."""
    return _RISK_RANK[level]


class PolicyPart(BaseModel):
    """Base of every policy section: unknown keys are typos, values never change in place."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PolicyOverride(PolicyPart):
    """A partial section: only the keys written in the file override the inherited value.

    Serialising keeps only those keys, so an override survives the round trip through
    Temporal's payload converter with the same meaning (an explicit `null` stays explicit).
    """

    # Keys that may be written as `null` (meaning "no limit"); elsewhere null is a mistake.
    nullable: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _null_only_where_meaningful(self) -> Self:
        for name in sorted(self.model_fields_set - self.nullable):
            if getattr(self, name) is None:
                raise ValueError(f"{name}: null is not allowed here; leave the key out to inherit")
        return self

    @model_serializer(mode="wrap")
    def _only_keys_written(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {key: value for key, value in data.items() if key in self.model_fields_set}


# --- per product: windows, usage, limits ---------------------------------------------------


class Windows(PolicyPart):
    """When a self-service refund is possible, measured from payment.

    - `refundable: false`: the product is "non-refundable" (only shop faults are refunded:
      undelivered goods, an invalid key, a failed top-up, a duplicate charge);
    - up to `cooling_off_minutes`: any reason, automatic (0 = no cooling-off);
    - up to `conditional_hours`: automatic when usage is low, else a person decides
      (`null` = the conditional window lasts until the hard limit);
    - after the conditional window and up to `hard_limit_days`: a person decides;
    - after both: no self-service refund (the buyer may appeal). `null` = no limit.

    Any combination has a meaning (so an override can never make rules unusable): the
    cooling-off is checked first, and the conditional window ends at the hard limit at the
    latest.
    """

    refundable: bool = True
    cooling_off_minutes: Minutes = 0
    conditional_hours: Hours | None = None
    hard_limit_days: Days | None = None


class UsageLimits(PolicyPart):
    """What counts as "low usage" inside the conditional window.

    Usage is low while `progress_pct < max_progress_pct` (DOMAIN: "under 10 %"; `null` =
    progress is not checked), nothing was downloaded (if `downloaded_blocks`) and the key
    was not revealed (if `key_revealed_blocks`).
    """

    max_progress_pct: Percent | None = 10
    downloaded_blocks: bool = True
    key_revealed_blocks: bool = True


def _replacement_word(value: Any) -> Any:
    """YAML reads a bare `off` as false: that is the word `off` here, not a type error."""
    return ReplacementMode.OFF if value is False else value


ReplacementWord = Annotated[ReplacementMode, BeforeValidator(_replacement_word)]


class ProductRules(PolicyPart):
    windows: Windows
    usage: UsageLimits = Field(default_factory=UsageLimits)
    # Above this amount (fen, scaled by the buyer's history) a person decides. null = no limit.
    auto_approve_max_amount: Fen | None = None
    # Whether refunds of this product may take the fast lane (small amounts to balance).
    fast_lane: bool = True
    # A key reported invalid: replace it (补发) instead of refunding — never, when the buyer
    # asks, or unless the buyer asks for money (`domain.replacement`).
    replacement: ReplacementWord = ReplacementMode.OFF


class WindowsOverride(PolicyOverride):
    nullable = frozenset({"conditional_hours", "hard_limit_days"})

    refundable: bool | None = None
    cooling_off_minutes: Minutes | None = None
    conditional_hours: Hours | None = None
    hard_limit_days: Days | None = None


class UsageLimitsOverride(PolicyOverride):
    nullable = frozenset({"max_progress_pct"})

    max_progress_pct: Percent | None = None
    downloaded_blocks: bool | None = None
    key_revealed_blocks: bool | None = None


class ProductRulesOverride(PolicyOverride):
    nullable = frozenset({"auto_approve_max_amount"})

    windows: WindowsOverride | None = None
    usage: UsageLimitsOverride | None = None
    auto_approve_max_amount: Fen | None = None
    fast_lane: bool | None = None
    replacement: ReplacementWord | None = None


class ProductTypes(PolicyPart):
    card_key: ProductRules
    course: ProductRules
    membership: ProductRules
    topup: ProductRules

    def of(self, product_type: ProductType) -> ProductRules:
        rules: ProductRules = getattr(self, product_type.value)
        return rules


# --- fast lane, review, reasons ------------------------------------------------------------


class FastLane(PolicyPart):
    """Small refunds for low-risk buyers that a person would otherwise look at go through at
    once, to `destination` (DOMAIN: "≤ 10 CNY ... refund to platform balance at once")."""

    enabled: bool = True
    max_amount: Fen = 1000
    destination: Destination = Destination.BALANCE
    max_risk: RiskLevel = RiskLevel.LOW

    @model_validator(mode="after")
    def _never_blocked(self) -> FastLane:
        if self.max_risk is RiskLevel.BLOCKED:
            raise ValueError("max_risk: a blocked buyer never takes the fast lane")
        return self


class FastLaneOverride(PolicyOverride):
    enabled: bool | None = None
    max_amount: Fen | None = None
    destination: Destination | None = None
    max_risk: RiskLevel | None = None


class ReviewExpiry(PolicyPart):
    """What happens when the review deadline passes without a person's answer: refunds up to
    `auto_approve_max_amount` for buyers at most `max_risk` approve themselves; the rest keep
    waiting (with louder alerts every `realert_hours`)."""

    auto_approve_max_amount: Fen = 2000
    max_risk: RiskLevel = RiskLevel.LOW

    @model_validator(mode="after")
    def _never_blocked(self) -> ReviewExpiry:
        if self.max_risk is RiskLevel.BLOCKED:
            raise ValueError("max_risk: a blocked buyer's refund never approves itself")
        return self


class ReviewPolicy(PolicyPart):
    """The review queue: the deadline and its re-alerts, what happens when it passes, how long
    a reviewer's claim on a case holds (`claim_minutes`; then anyone may take it), and the
    amount above which an approval needs a second, different reviewer
    (`four_eyes_above_amount`, fen; null: never)."""

    deadline_hours: PositiveHours = 24
    realert_hours: PositiveHours = 4
    on_expiry: ReviewExpiry = Field(default_factory=ReviewExpiry)
    claim_minutes: Annotated[int, Field(ge=1, le=24 * 60, strict=True)] = 30
    four_eyes_above_amount: Fen | None = 50000


class PayoutPolicy(PolicyPart):
    """How long the workflow settles a payout on its own before a person must look.

    - `verify_limit_minutes`: an answer that could not be verified (bad or missing signature,
      no status) is re-checked by signed queries this long; then the refund needs attention.
      Never longer than it takes an SRE to notice a rotated key: the default is an hour.
    - `processing_limit_minutes`: a verified "processing" refund (a bank card refund can take
      days) is polled this long before a person is asked.
    """

    verify_limit_minutes: Minutes = 60
    processing_limit_minutes: Minutes = 7200


class ReasonsPolicy(PolicyPart):
    """Which (classified) reasons go to support before money, and extra keywords per reason
    that are added to `domain.reasons`' built-in tables."""

    redirect_to_support: list[RefundReason] = Field(
        default_factory=lambda: [RefundReason.TECHNICAL_ISSUE]
    )
    keywords: dict[RefundReason, list[Keyword]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _no_keywords_for_other(self) -> ReasonsPolicy:
        if RefundReason.OTHER in self.keywords:
            raise ValueError("keywords: 'other' is what nothing matched; it takes no keywords")
        return self


# --- risk ----------------------------------------------------------------------------------


class RiskWeights(PolicyPart):
    """Points each signal adds to the risk score (blacklists block regardless of points)."""

    buyer_daily_limit: Count = 60
    buyer_monthly_limit: Count = 60
    card_key_repeat: Count = 60
    device_burst: Count = 60
    ip_burst: Count = 40
    linked_accounts: Count = 60
    new_account: Count = 20
    high_refund_rate: Count = 30


class RiskPolicy(PolicyPart):
    """Thresholds for `domain.risk.assess`. Counts are of earlier refunds (not this one);
    a signal fires when a count reaches its limit."""

    buyer_refunds_per_day: Count = 3
    buyer_refunds_per_month: Count = 10
    card_key_prior_refunds: Count = 1
    device_refunds_per_hour: Count = 3
    ip_refunds_per_hour: Count = 5
    linked_accounts: Count = 2
    new_account_days: Count = 7
    # A buyer with at least `refund_rate_min_orders` orders refunding at least this share.
    high_refund_rate_pct: Percent = 30
    refund_rate_min_orders: Count = 5
    # Old clean accounts get a higher automatic limit.
    trusted_min_age_days: Count = 180
    trusted_min_orders: Count = 10
    trusted_max_refund_rate_pct: Percent = 5
    # The automatic limit in percent of the product's, by history.
    trusted_auto_limit_pct: Annotated[int, Field(ge=0, le=1000, strict=True)] = 150
    new_account_auto_limit_pct: Annotated[int, Field(ge=0, le=1000, strict=True)] = 100
    high_refund_rate_auto_limit_pct: Annotated[int, Field(ge=0, le=1000, strict=True)] = 50
    medium_score: Count = 30
    high_score: Count = 60
    weights: RiskWeights = Field(default_factory=RiskWeights)

    @model_validator(mode="after")
    def _scores_ordered(self) -> RiskPolicy:
        if self.high_score < self.medium_score:
            raise ValueError("high_score must be at least medium_score")
        return self


# --- incidents and self-help ----------------------------------------------------------------


class IncidentPolicy(PolicyPart):
    """Incidents (a bad supplier batch, an outage): refunds the shop starts for many orders at
    once (`domain.incident`). A selection above `max_orders` orders or `max_amount` (fen, per
    currency) is refused unless its declaration says `override_limits: true`; refunds start
    at `default_rate_per_second` unless the declaration names a rate, never faster than
    `max_rate_per_second`."""

    max_orders: Count = 1000
    max_amount: Fen = 10_000_000
    default_rate_per_second: Annotated[float, Field(gt=0, le=1000)] = 5.0
    max_rate_per_second: Annotated[float, Field(gt=0, le=1000)] = 50.0

    @model_validator(mode="after")
    def _default_within_max(self) -> IncidentPolicy:
        if self.default_rate_per_second > self.max_rate_per_second:
            raise ValueError("default_rate_per_second must be at most max_rate_per_second")
        return self


class SelfHelpStep(PolicyPart):
    """One thing a buyer can try before asking for a refund (seed 003's 智能预检)."""

    zh: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    en: Annotated[str, StringConstraints(min_length=1, max_length=500)]


class SelfHelp(PolicyPart):
    """Self-help steps per product type, shown by `POST /v1/refunds/precheck`."""

    card_key: list[SelfHelpStep] = Field(default_factory=list, max_length=20)
    course: list[SelfHelpStep] = Field(default_factory=list, max_length=20)
    membership: list[SelfHelpStep] = Field(default_factory=list, max_length=20)
    topup: list[SelfHelpStep] = Field(default_factory=list, max_length=20)

    def of(self, product_type: ProductType) -> list[SelfHelpStep]:
        steps: list[SelfHelpStep] = getattr(self, product_type.value)
        return steps


# --- claims against suppliers ----------------------------------------------------------------


class ClaimsPolicy(PolicyPart):
    """Claims against a supplier for the keys it confirmed invalid (`domain.supplier_claims`):
    one the supplier has not credited `write_off_days` after it was opened is written off."""

    write_off_days: Days = 30


# --- merchants and the whole policy --------------------------------------------------------


class MerchantPolicy(PolicyPart):
    product_types: dict[ProductType, ProductRulesOverride] = Field(default_factory=dict)
    skus: dict[Identifier, ProductRulesOverride] = Field(default_factory=dict)
    fast_lane: FastLaneOverride | None = None


class Policy(PolicyPart):
    """The whole decision policy. `version` identifies its content (set by `parse_policy`) and
    is recorded on every decision, so a reviewer can tell which policy decided."""

    name: str = ""
    version: str = ""
    product_types: ProductTypes
    fast_lane: FastLane = Field(default_factory=FastLane)
    review: ReviewPolicy = Field(default_factory=ReviewPolicy)
    appeal_window_hours: PositiveHours = 168
    payouts: PayoutPolicy = Field(default_factory=PayoutPolicy)
    reasons: ReasonsPolicy = Field(default_factory=ReasonsPolicy)
    risk: RiskPolicy = Field(default_factory=RiskPolicy)
    merchants: dict[Identifier, MerchantPolicy] = Field(default_factory=dict)
    skus: dict[Identifier, ProductRulesOverride] = Field(default_factory=dict)
    incidents: IncidentPolicy = Field(default_factory=IncidentPolicy)
    # Words for buyers, not rules: left out of the policy's serialised form (the policy
    # travels in every refund's history, which never needs them) and of its version.
    self_help: SelfHelp = Field(default_factory=SelfHelp, exclude=True)
    # Collecting from suppliers after a refund, not deciding one: left out the same way, so
    # no refund's history or decision version changes with it.
    claims: ClaimsPolicy = Field(default_factory=ClaimsPolicy, exclude=True)

    def rules_for(self, *, product_type: ProductType, merchant_id: str, sku: str) -> ProductRules:
        """The rules for one item: product type, then merchant, then SKU (most specific wins)."""
        rules = self.product_types.of(product_type)
        merchant = self.merchants.get(merchant_id)
        if merchant is not None:
            rules = apply_override(rules, merchant.product_types.get(product_type))
        rules = apply_override(rules, self.skus.get(sku))
        if merchant is not None:
            rules = apply_override(rules, merchant.skus.get(sku))
        return rules

    def fast_lane_for(self, merchant_id: str) -> FastLane:
        merchant = self.merchants.get(merchant_id)
        return apply_override(self.fast_lane, merchant.fast_lane if merchant else None)

    def content_hash(self) -> str:
        """First 12 hex digits of the sha256 of the canonical JSON of the content."""
        canonical = json.dumps(
            self.model_dump(mode="json", exclude={"version"}),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


P = TypeVar("P", bound=PolicyPart)


def apply_override(base: P, override: PolicyOverride | None) -> P:
    """`base` with the keys written in `override` replaced (nested sections merged)."""
    if override is None:
        return base
    data: dict[str, Any] = {name: getattr(base, name) for name in type(base).model_fields}
    for name in sorted(override.model_fields_set):
        value = getattr(override, name)
        inherited = data.get(name)
        if isinstance(value, PolicyOverride) and isinstance(inherited, PolicyPart):
            data[name] = apply_override(inherited, value)
        else:
            data[name] = value
    return type(base).model_validate(data)
