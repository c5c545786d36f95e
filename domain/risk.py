"""Risk scoring: from counts about the buyer, device and IP to a level and signals.

The risk activity gathers `RiskFacts` from the database; `assess` turns them into a
`RiskAssessment` with thresholds from `policy.risk`. Pure and deterministic: signals are
checked in a fixed order, so two identical cases always get the same signals in the same
order, and every signal says in words what it saw.

Levels: any blacklist hit is `blocked`; otherwise the signal weights add up to a score
(`medium_score`, `high_score`). The buyer's history also moves the automatic-approval
limit (`auto_limit_pct`): old clean accounts get more, frequent refunders less.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from domain.model import Model
from domain.policy import Policy, RiskPolicy
from domain.refund import RiskAssessment, RiskSignal
from domain.types import RiskLevel

Count = Annotated[int, Field(ge=0, le=10_000_000, strict=True)]


class RiskFacts(Model):
    """Counts of *earlier* refunds (the refund being decided is not counted)."""

    buyer_refunds_today: Count = 0
    buyer_refunds_this_month: Count = 0
    # Earlier refunds that involved any of the card keys of this refund.
    card_key_prior_refunds: Count = 0
    device_refunds_last_hour: Count = 0
    ip_refunds_last_hour: Count = 0
    # Other accounts sharing a device or IP with the buyer that bought and refunded the
    # same SKU in the last 30 days ("team" abuse).
    linked_accounts_same_sku_30d: Count = 0
    buyer_blacklisted: bool = False
    device_blacklisted: bool = False
    ip_blacklisted: bool = False
    # Days since the buyer's first order was seen; None when this is the first.
    account_age_days: int | None = Field(default=None, ge=0, strict=True)
    lifetime_orders: Count = 0
    lifetime_refunds: Count = 0


def _blacklist_signals(facts: RiskFacts) -> list[RiskSignal]:
    hits = [
        ("blacklist.buyer", facts.buyer_blacklisted, "the buyer is on the blacklist"),
        ("blacklist.device", facts.device_blacklisted, "the device is on the blacklist"),
        ("blacklist.ip", facts.ip_blacklisted, "the IP address is on the blacklist"),
    ]
    return [RiskSignal(code=code, detail=detail, weight=100) for code, hit, detail in hits if hit]


def _at_limit(count: int, limit: int) -> bool:
    """A limit of 0 disables the check."""
    return limit > 0 and count >= limit


def _count_signals(facts: RiskFacts, risk: RiskPolicy) -> list[RiskSignal]:
    w = risk.weights
    checks = [
        (
            "buyer.daily_limit",
            facts.buyer_refunds_today,
            risk.buyer_refunds_per_day,
            w.buyer_daily_limit,
            "refunds by this buyer today",
        ),
        (
            "buyer.monthly_limit",
            facts.buyer_refunds_this_month,
            risk.buyer_refunds_per_month,
            w.buyer_monthly_limit,
            "refunds by this buyer this month",
        ),
        (
            "card_key.repeat",
            facts.card_key_prior_refunds,
            risk.card_key_prior_refunds,
            w.card_key_repeat,
            "earlier refunds on the same card key(s)",
        ),
        (
            "device.burst",
            facts.device_refunds_last_hour,
            risk.device_refunds_per_hour,
            w.device_burst,
            "refunds from this device in the last hour",
        ),
        (
            "ip.burst",
            facts.ip_refunds_last_hour,
            risk.ip_refunds_per_hour,
            w.ip_burst,
            "refunds from this IP address in the last hour",
        ),
        (
            "linked_accounts.same_sku",
            facts.linked_accounts_same_sku_30d,
            risk.linked_accounts,
            w.linked_accounts,
            "accounts sharing a device or IP bought and refunded the same SKU in 30 days",
        ),
    ]
    return [
        RiskSignal(code=code, detail=f"{count} {what} (limit {limit})", weight=weight)
        for code, count, limit, weight, what in checks
        if _at_limit(count, limit)
    ]


def _refund_rate_pct(facts: RiskFacts) -> int:
    if facts.lifetime_orders == 0:
        return 0
    return facts.lifetime_refunds * 100 // facts.lifetime_orders


def _is_new_account(facts: RiskFacts, risk: RiskPolicy) -> bool:
    age = facts.account_age_days
    return age is None or age < risk.new_account_days


def _has_high_refund_rate(facts: RiskFacts, risk: RiskPolicy) -> bool:
    return (
        facts.lifetime_orders >= risk.refund_rate_min_orders
        and facts.lifetime_refunds * 100 >= risk.high_refund_rate_pct * facts.lifetime_orders
    )


def _history_signals(facts: RiskFacts, risk: RiskPolicy) -> list[RiskSignal]:
    signals = []
    if _is_new_account(facts, risk):
        age = "first order" if facts.account_age_days is None else f"{facts.account_age_days} days"
        signals.append(
            RiskSignal(
                code="buyer.new_account",
                detail=f"account age {age} (new below {risk.new_account_days} days)",
                weight=risk.weights.new_account,
            )
        )
    if _has_high_refund_rate(facts, risk):
        signals.append(
            RiskSignal(
                code="buyer.high_refund_rate",
                detail=(
                    f"{facts.lifetime_refunds} refunds on {facts.lifetime_orders} orders "
                    f"({_refund_rate_pct(facts)} %, high from {risk.high_refund_rate_pct} %)"
                ),
                weight=risk.weights.high_refund_rate,
            )
        )
    return signals


def _is_trusted(facts: RiskFacts, risk: RiskPolicy) -> bool:
    return (
        facts.account_age_days is not None
        and facts.account_age_days >= risk.trusted_min_age_days
        and facts.lifetime_orders >= risk.trusted_min_orders
        and facts.lifetime_refunds * 100 <= risk.trusted_max_refund_rate_pct * facts.lifetime_orders
    )


def auto_limit_pct(facts: RiskFacts, risk: RiskPolicy, *, clean: bool) -> int:
    """How far the buyer's history moves the automatic limit: the lowest reduction that
    applies, or the trusted bonus for an old clean account with no signal at all."""
    pct, reduced = 100, False
    if _has_high_refund_rate(facts, risk):
        pct, reduced = min(pct, risk.high_refund_rate_auto_limit_pct), True
    if _is_new_account(facts, risk):
        pct, reduced = min(pct, risk.new_account_auto_limit_pct), True
    if not reduced and clean and _is_trusted(facts, risk):
        pct = risk.trusted_auto_limit_pct
    return pct


def _level(signals: list[RiskSignal], risk: RiskPolicy) -> RiskLevel:
    if any(signal.code.startswith("blacklist.") for signal in signals):
        return RiskLevel.BLOCKED
    score = sum(signal.weight for signal in signals)
    if score >= risk.high_score and score > 0:
        return RiskLevel.HIGH
    if score >= risk.medium_score and score > 0:
        return RiskLevel.MEDIUM
    return RiskLevel.LOW


def assess(facts: RiskFacts, policy: Policy) -> RiskAssessment:
    """Level, signals and automatic-limit factor for one refund."""
    risk = policy.risk
    signals = [
        *_blacklist_signals(facts),
        *_count_signals(facts, risk),
        *_history_signals(facts, risk),
    ]
    return RiskAssessment(
        level=_level(signals, risk),
        signals=signals,
        auto_limit_pct=auto_limit_pct(facts, risk, clean=not signals),
    )
