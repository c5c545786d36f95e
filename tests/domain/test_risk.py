"""Risk scoring: levels, signals and the automatic-limit factor."""

from __future__ import annotations

import pytest

from domain.policy import Policy, load_policy
from domain.risk import RiskFacts, assess
from domain.types import RiskLevel

CLEAN = {"account_age_days": 60, "lifetime_orders": 3, "lifetime_refunds": 0}


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(None)


@pytest.mark.parametrize(
    ("facts", "level", "codes"),
    [
        (CLEAN, RiskLevel.LOW, []),
        ({**CLEAN, "buyer_blacklisted": True}, RiskLevel.BLOCKED, ["blacklist.buyer"]),
        ({**CLEAN, "device_blacklisted": True}, RiskLevel.BLOCKED, ["blacklist.device"]),
        ({**CLEAN, "ip_blacklisted": True}, RiskLevel.BLOCKED, ["blacklist.ip"]),
        ({**CLEAN, "buyer_refunds_today": 3}, RiskLevel.HIGH, ["buyer.daily_limit"]),
        ({**CLEAN, "buyer_refunds_today": 2}, RiskLevel.LOW, []),
        ({**CLEAN, "buyer_refunds_this_month": 10}, RiskLevel.HIGH, ["buyer.monthly_limit"]),
        ({**CLEAN, "card_key_prior_refunds": 1}, RiskLevel.HIGH, ["card_key.repeat"]),
        ({**CLEAN, "device_refunds_last_hour": 3}, RiskLevel.HIGH, ["device.burst"]),
        ({**CLEAN, "ip_refunds_last_hour": 5}, RiskLevel.MEDIUM, ["ip.burst"]),
        (
            {**CLEAN, "linked_accounts_same_sku_30d": 2},
            RiskLevel.HIGH,
            ["linked_accounts.same_sku"],
        ),
        ({"account_age_days": None}, RiskLevel.LOW, ["buyer.new_account"]),
        (
            {"account_age_days": 2, "ip_refunds_last_hour": 5},
            RiskLevel.HIGH,
            ["ip.burst", "buyer.new_account"],
        ),
        (
            {"account_age_days": 400, "lifetime_orders": 10, "lifetime_refunds": 4},
            RiskLevel.MEDIUM,
            ["buyer.high_refund_rate"],
        ),
    ],
)
def test_levels_and_signals(
    policy: Policy, facts: dict[str, object], level: RiskLevel, codes: list[str]
) -> None:
    assessment = assess(RiskFacts.model_validate(facts), policy)
    assert assessment.level is level
    assert [s.code for s in assessment.signals] == codes
    assert all(s.detail for s in assessment.signals)


@pytest.mark.parametrize(
    ("facts", "pct"),
    [
        (CLEAN, 100),
        ({"account_age_days": 365, "lifetime_orders": 40, "lifetime_refunds": 1}, 150),
        ({"account_age_days": 365, "lifetime_orders": 40, "lifetime_refunds": 3}, 100),
        ({"account_age_days": 365, "lifetime_orders": 10, "lifetime_refunds": 5}, 50),
        ({"account_age_days": 365, "lifetime_orders": 40, "buyer_refunds_today": 3}, 100),
    ],
)
def test_history_moves_the_automatic_limit(
    policy: Policy, facts: dict[str, object], pct: int
) -> None:
    assert assess(RiskFacts.model_validate(facts), policy).auto_limit_pct == pct


def test_details_are_readable(policy: Policy) -> None:
    signal = assess(RiskFacts(buyer_refunds_today=4, account_age_days=30), policy).signals[0]
    assert signal.detail == "4 refunds by this buyer today (limit 3)"


def test_assessment_is_deterministic(policy: Policy) -> None:
    facts = RiskFacts(ip_refunds_last_hour=9, card_key_prior_refunds=2, account_age_days=1)
    assert assess(facts, policy) == assess(facts.model_copy(), policy)
