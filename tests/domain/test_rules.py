"""The rules engine against DOMAIN.md: one row per rule, the four seeds, and the details
(amounts, destinations, multi-item orders, review expiry)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.decision import DecisionCase
from domain.order import OrderItem
from domain.policy import Policy, load_policy, policy_from_data
from domain.rules import RULES, decide, on_review_expired, window_phase
from domain.types import (
    Destination,
    KeyState,
    OrderStatus,
    Outcome,
    PaymentChannel,
    ProductType,
    RefundReason,
    RiskLevel,
    TopupStatus,
)
from tests.domain.factories import PAID_AT, card_key_item, case, content_item, order

MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
TECH = RefundReason.TECHNICAL_ISSUE


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(None)


def topup_item(status: TopupStatus | None) -> OrderItem:
    return content_item(product_type=ProductType.TOPUP, sku="phone-50", topup_status=status)


# fmt: off
TABLE: list[tuple[str, DecisionCase, Outcome, str]] = [
    ("unpaid order is cancelled",
     case(order(status=OrderStatus.UNPAID)), Outcome.CANCEL_UNPAID, "order.unpaid"),
    ("cancelled order without payment is cancelled",
     case(order(status=OrderStatus.CANCELLED)), Outcome.CANCEL_UNPAID, "order.unpaid"),
    ("unknown item is refused",
     case(items=[("I-404", 1)]), Outcome.REJECT, "item.unknown"),
    ("more than remains refundable is refused",
     case(order(card_key_item(quantity=2)), items=[("I-1", 2)], already_refunded={"I-1": 1}),
     Outcome.REJECT, "quantity.exceeds_refundable"),
    ("duplicate payment is refunded",
     case(order(payments=2), reason=RefundReason.DUPLICATE_CHARGE),
     Outcome.AUTO_APPROVE, "duplicate_charge.auto"),
    ("duplicate charge in free text is refunded",
     case(order(payments=2), reason=RefundReason.OTHER, text="扣了两次钱"),
     Outcome.AUTO_APPROVE, "duplicate_charge.auto"),
    ("claimed duplicate without a second payment goes to a person",
     case(reason=RefundReason.DUPLICATE_CHARGE), Outcome.REVIEW, "duplicate_charge.unconfirmed"),
    ("no key issued is refunded",
     case(order(card_key_item(delivered=False)), key_state=None),
     Outcome.AUTO_APPROVE, "delivery.not_delivered"),
    ("card-key item without keys is refunded",
     case(order(card_key_item(keys=0)), key_state=None),
     Outcome.AUTO_APPROVE, "delivery.not_delivered"),
    ("unredeemed key is refunded",
     case(), Outcome.AUTO_APPROVE, "card_key.unredeemed"),
    ("locked key counts as unredeemed",
     case(key_state=KeyState.LOCKED), Outcome.AUTO_APPROVE, "card_key.unredeemed"),
    ("redeemed key is refused",
     case(key_state=KeyState.REDEEMED), Outcome.REJECT, "card_key.redeemed"),
    ("redeemed key with a technical complaint is still refused",
     case(key_state=KeyState.REDEEMED, reason=TECH, text="用不了"),
     Outcome.REJECT, "card_key.redeemed"),
    ("invalid key is refunded even with a technical complaint",
     case(key_state=KeyState.INVALID, reason=TECH, text="报错"),
     Outcome.AUTO_APPROVE, "card_key.invalid_confirmed"),
    ("supplier unreachable goes to a person",
     case(key_state=KeyState.UNREACHABLE), Outcome.REVIEW, "card_key.supplier_unreachable"),
    ("supplier not asked goes to a person",
     case(key_state=None), Outcome.REVIEW, "card_key.supplier_unreachable"),
    ("revealed key goes to a person",
     case(order(card_key_item(key_revealed=True))), Outcome.REVIEW, "card_key.revealed"),
    ("card key after 7 days is refused",
     case(after=8 * DAY), Outcome.REJECT, "window.expired"),
    ("failed top-up is refunded",
     case(order(topup_item(TopupStatus.FAILED)), key_state=None),
     Outcome.AUTO_APPROVE, "topup.failed"),
    ("failed top-up is refunded after the window too",
     case(order(topup_item(TopupStatus.FAILED)), key_state=None, after=30 * DAY),
     Outcome.AUTO_APPROVE, "topup.failed"),
    ("succeeded top-up is refused",
     case(order(topup_item(TopupStatus.SUCCEEDED)), key_state=None),
     Outcome.REJECT, "topup.succeeded"),
    ("pending top-up goes to a person",
     case(order(topup_item(TopupStatus.PENDING)), key_state=None),
     Outcome.REVIEW, "topup.pending"),
    ("course in the cooling-off is refunded",
     case(order(content_item(progress_pct=50)), after=10 * MIN),
     Outcome.AUTO_APPROVE, "window.cooling_off"),
    ("cooling-off beats a technical complaint",
     case(order(content_item()), after=5 * MIN, reason=TECH, text="打不开"),
     Outcome.AUTO_APPROVE, "window.cooling_off"),
    ("course with low usage in 24 h is refunded",
     case(order(content_item(progress_pct=5)), after=3 * HOUR),
     Outcome.AUTO_APPROVE, "window.conditional_low_usage"),
    ("course downloaded in 24 h goes to a person",
     case(order(content_item(downloaded=True)), after=3 * HOUR),
     Outcome.REVIEW, "window.conditional_usage_high"),
    ("membership with revealed key in 24 h goes to a person",
     case(order(content_item(product_type=ProductType.MEMBERSHIP, key_revealed=True)),
          after=3 * HOUR),
     Outcome.REVIEW, "window.conditional_usage_high"),
    ("course after 24 h is refused",
     case(order(content_item()), after=25 * HOUR), Outcome.REJECT, "window.expired"),
    ("technical complaint goes to support",
     case(reason=TECH, text="卡密用不了"),
     Outcome.REDIRECT_TO_SUPPORT, "reason.technical_redirect"),
    ("technical free text under another reason goes to support",
     case(reason=RefundReason.CHANGED_MIND, text="doesn't work on my PC"),
     Outcome.REDIRECT_TO_SUPPORT, "reason.technical_redirect"),
    ("blocked buyer never gets an automatic refund",
     case(risk=RiskLevel.BLOCKED), Outcome.REVIEW, "risk.blocked"),
    ("high risk goes to a person",
     case(risk=RiskLevel.HIGH), Outcome.REVIEW, "risk.high"),
    ("medium risk is still automatic",
     case(risk=RiskLevel.MEDIUM), Outcome.AUTO_APPROVE, "card_key.unredeemed"),
    ("above the automatic limit goes to a person",
     case(order(card_key_item(unit_price=30000))), Outcome.REVIEW, "amount.above_auto_limit"),
    ("history halves the automatic limit",
     case(order(card_key_item(unit_price=15000)), auto_limit_pct=50),
     Outcome.REVIEW, "amount.above_auto_limit"),
    ("trusted history raises the automatic limit",
     case(order(card_key_item(unit_price=25000)), auto_limit_pct=150),
     Outcome.AUTO_APPROVE, "card_key.unredeemed"),
    ("small doubtful refund takes the fast lane",
     case(order(content_item(unit_price=800, progress_pct=40)), after=2 * HOUR),
     Outcome.AUTO_APPROVE, "fast_lane.balance"),
    ("fast lane is only for low risk",
     case(order(content_item(unit_price=800, progress_pct=40)), after=2 * HOUR,
          risk=RiskLevel.MEDIUM),
     Outcome.REVIEW, "window.conditional_usage_high"),
    ("fast lane never pays an unverifiable key",
     case(order(card_key_item(unit_price=500)), key_state=KeyState.UNREACHABLE),
     Outcome.REVIEW, "card_key.supplier_unreachable"),
]
# fmt: on


@pytest.mark.parametrize(
    ("decision_case", "outcome", "rule"),
    [pytest.param(c, o, r, id=name) for name, c, o, r in TABLE],
)
def test_rule_table(
    policy: Policy, decision_case: DecisionCase, outcome: Outcome, rule: str
) -> None:
    decision = decide(decision_case, policy)
    assert (decision.outcome, decision.rule) == (outcome, rule), decision.explanation
    assert RULES[decision.rule] is decision.outcome
    assert decision.explanation and decision.explanation_zh
    assert decision.policy_version == policy.version


def test_every_rule_id_carries_one_outcome() -> None:
    assert all("." in rule for rule in RULES)


# --- the four seed scenarios ---------------------------------------------------------------


def test_seed_course_refunded_12_minutes_after_purchase_is_automatic(policy: Policy) -> None:
    decision = decide(case(order(content_item()), after=12 * MIN), policy)
    assert decision.outcome is Outcome.AUTO_APPROVE
    assert decision.amount == 9900
    assert "12 minutes" in decision.explanation
    assert "12分钟" in decision.explanation_zh


def test_seed_course_at_two_hours_with_20_percent_watched_goes_to_review(policy: Policy) -> None:
    decision = decide(case(order(content_item(progress_pct=20)), after=2 * HOUR), policy)
    assert (decision.outcome, decision.rule) == (Outcome.REVIEW, "window.conditional_usage_high")
    assert "20%" in decision.explanation
    assert decision.amount == 9900
    assert decision.review_deadline_hours == 24


def test_seed_video_wont_play_three_days_later_is_redirected(policy: Policy) -> None:
    seed = case(
        order(content_item()), after=3 * DAY, reason=RefundReason.OTHER, text="视频无法播放"
    )
    decision = decide(seed, policy)
    assert (decision.outcome, decision.rule) == (
        Outcome.REDIRECT_TO_SUPPORT,
        "reason.technical_redirect",
    )
    assert decision.amount == 0


def test_seed_invalid_unredeemed_key_is_refunded_at_once(policy: Policy) -> None:
    decision = decide(case(key_state=KeyState.INVALID, reason=RefundReason.INVALID_KEY), policy)
    assert (decision.outcome, decision.rule) == (Outcome.AUTO_APPROVE, "card_key.invalid_confirmed")
    assert decision.amount == 5000
    assert decision.destination is Destination.ORIGINAL


# --- amounts, destinations, items ----------------------------------------------------------


def test_duplicate_charge_refunds_the_duplicate_payments_only(policy: Policy) -> None:
    decision = decide(case(order(payments=3), reason=RefundReason.DUPLICATE_CHARGE), policy)
    assert decision.payment_ids == ["P-2", "P-3"]
    assert decision.amount == 10000
    assert decision.items == []


def test_balance_payment_refunds_to_balance(policy: Policy) -> None:
    decision = decide(case(order(channel=PaymentChannel.BALANCE)), policy)
    assert decision.destination is Destination.BALANCE


def test_fast_lane_pays_to_balance(policy: Policy) -> None:
    small = case(order(content_item(unit_price=800, progress_pct=40)), after=2 * HOUR)
    decision = decide(small, policy)
    assert decision.destination is Destination.BALANCE
    assert decision.amount == 800


def test_partial_refund_of_one_item_of_a_multi_item_order(policy: Policy) -> None:
    o = order(card_key_item("I-1", quantity=3, unit_price=1500), content_item("I-2"))
    decision = decide(case(o, items=[("I-1", 2)]), policy)
    assert decision.outcome is Outcome.AUTO_APPROVE
    assert decision.amount == 3000
    assert [(v.item_id, v.quantity, v.amount) for v in decision.items] == [("I-1", 2, 3000)]


def test_earlier_refunds_are_assumed_to_have_taken_the_unredeemed_keys(policy: Policy) -> None:
    o = order(card_key_item(quantity=2, unit_price=1500))
    states = {"K-I-1-0": KeyState.UNREDEEMED, "K-I-1-1": KeyState.REDEEMED}
    decision = decide(
        case(o, key_states=states, items=[("I-1", 1)], already_refunded={"I-1": 1}), policy
    )
    assert decision.rule == "card_key.redeemed"


def test_the_strictest_item_decides_and_is_named(policy: Policy) -> None:
    o = order(card_key_item("I-1"), card_key_item("I-2", sku="steam-100"))
    states = {"K-I-1-0": KeyState.UNREDEEMED, "K-I-2-0": KeyState.REDEEMED}
    decision = decide(case(o, key_states=states), policy)
    assert (decision.outcome, decision.rule) == (Outcome.REJECT, "card_key.redeemed")
    assert "item I-2 decides" in decision.explanation
    assert decision.amount == 0
    assert len(decision.items) == 2


def test_reject_beats_redirect_beats_automatic_across_items(policy: Policy) -> None:
    o = order(card_key_item("I-1"), card_key_item("I-2", sku="steam-100"))
    redeemed = {"K-I-1-0": KeyState.REDEEMED, "K-I-2-0": KeyState.UNREDEEMED}
    decision = decide(case(o, key_states=redeemed, reason=TECH), policy)
    assert (decision.outcome, decision.rule) == (Outcome.REJECT, "card_key.redeemed")
    invalid = {"K-I-1-0": KeyState.INVALID, "K-I-2-0": KeyState.UNREDEEMED}
    decision = decide(case(o, key_states=invalid, reason=TECH), policy)
    assert (decision.outcome, decision.rule) == (
        Outcome.REDIRECT_TO_SUPPORT,
        "reason.technical_redirect",
    )
    assert decision.amount == 0


def test_usage_review_beats_automatic_across_items(policy: Policy) -> None:
    o = order(card_key_item("I-1"), content_item("I-2", progress_pct=50))
    decision = decide(case(o, after=2 * HOUR), policy)
    assert (decision.outcome, decision.rule) == (Outcome.REVIEW, "window.conditional_usage_high")
    assert decision.amount == 5000 + 9900


def test_explanations_name_amounts_in_yuan(policy: Policy) -> None:
    decision = decide(case(order(card_key_item(unit_price=30000))), policy)
    assert "300.00 CNY" in decision.explanation
    assert "200.00 CNY" in decision.explanation
    assert "300.00元" in decision.explanation_zh


def test_buyer_text_does_not_reveal_risk_signals(policy: Policy) -> None:
    decision = decide(case(risk=RiskLevel.BLOCKED), policy)
    assert "blacklist" in decision.explanation
    assert "黑名单" not in decision.explanation_zh and "风险" not in decision.explanation_zh


# --- overrides -----------------------------------------------------------------------------


def _with(policy: Policy, **sections: object) -> Policy:
    data = policy.model_dump(mode="json", exclude={"version"})
    data.update(sections)
    return policy_from_data(data)


def test_merchant_and_sku_overrides_change_the_decision(policy: Policy) -> None:
    strict = _with(
        policy,
        merchants={"M-7": {"skus": {"steam-50": {"windows": {"refundable": False}}}}},
    )
    assert decide(case(), strict).rule == "product.non_refundable"
    # Another merchant selling the same SKU keeps the default.
    other = case(order(merchant_id="M-8"))
    assert decide(other, strict).rule == "card_key.unredeemed"
    # A non-refundable product still refunds the shop's own faults.
    assert decide(case(key_state=KeyState.INVALID), strict).rule == "card_key.invalid_confirmed"


def test_merchant_can_close_the_fast_lane(policy: Policy) -> None:
    closed = _with(policy, merchants={"M-7": {"fast_lane": {"enabled": False}}})
    small = case(order(content_item(unit_price=800, progress_pct=40)), after=2 * HOUR)
    assert decide(small, closed).rule == "window.conditional_usage_high"


def test_review_period_between_conditional_window_and_hard_limit(policy: Policy) -> None:
    longer = _with(policy, skus={"python-course": {"windows": {"hard_limit_days": 7}}})
    decision = decide(case(order(content_item()), after=3 * DAY), longer)
    assert (decision.outcome, decision.rule) == (Outcome.REVIEW, "window.review_period")
    assert decide(case(order(content_item()), after=8 * DAY), longer).rule == "window.expired"


def test_window_phase_edges(policy: Policy) -> None:
    course = policy.product_types.course.windows
    assert window_phase(course, 15 * MIN).value == "cooling_off"
    assert window_phase(course, 15 * MIN + timedelta(seconds=1)).value == "conditional"
    assert window_phase(course, 24 * HOUR).value == "conditional"
    assert window_phase(course, 24 * HOUR + timedelta(seconds=1)).value == "expired"


# --- review expiry -------------------------------------------------------------------------


def test_small_low_risk_review_approves_itself_on_expiry(policy: Policy) -> None:
    small = case(order(content_item(unit_price=1500, progress_pct=40)), after=2 * HOUR)
    decision = decide(small, policy)
    assert decision.outcome is Outcome.REVIEW
    expired = on_review_expired(small, decision, policy)
    assert (expired.outcome, expired.rule) == (Outcome.AUTO_APPROVE, "review.expired_auto_approve")
    assert expired.amount == 1500


@pytest.mark.parametrize(
    ("price", "risk"),
    [(9900, RiskLevel.LOW), (1500, RiskLevel.MEDIUM), (1500, RiskLevel.BLOCKED)],
)
def test_other_reviews_keep_waiting_on_expiry(policy: Policy, price: int, risk: RiskLevel) -> None:
    doubtful = case(
        order(content_item(unit_price=price, progress_pct=40)), after=2 * HOUR, risk=risk
    )
    decision = decide(doubtful, policy)
    expired = on_review_expired(doubtful, decision, policy)
    assert (expired.outcome, expired.rule) == (Outcome.REVIEW, "review.expired_wait")
    again = on_review_expired(doubtful, expired, policy)
    assert again.explanation == expired.explanation


def test_expiry_never_pays_a_redeemed_key_under_appeal(policy: Policy) -> None:
    appealed = case(order(card_key_item(unit_price=500)), key_state=KeyState.REDEEMED)
    rejected = decide(appealed, policy)
    back_in_review = rejected.model_copy(update={"outcome": Outcome.REVIEW, "amount": 500})
    assert on_review_expired(appealed, back_in_review, policy).rule == "review.expired_wait"


def test_decision_is_plain_data(policy: Policy) -> None:
    decision = decide(case(), policy)
    assert type(decision).model_validate_json(decision.model_dump_json()) == decision
    assert decision.policy_version and PAID_AT
