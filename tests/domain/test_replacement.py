"""`domain.replacement` (补发): which refunds may be answered with a fresh key, what the buyer's
choice does under each policy mode, that a replacement reported invalid again goes to a
person, and when the buyer may still choose."""

from __future__ import annotations

import pytest

from domain import acceptance, rules
from domain.policy import Policy
from domain.policy_loading import default_policy_text, load_policy, parse_policy
from domain.refund import RefundItemRequest, RemedyRequest
from domain.replacement import REPLACEMENT_INVALID_RULE, replacement_mode, wants_replacement
from domain.types import (
    KeyState,
    Outcome,
    RefundReason,
    RefundStatus,
    Remedy,
    ReplacementMode,
)
from tests.domain.factories import card_key_item, case, content_item, order
from tests.domain.test_acceptance import refund

INVALID = RefundReason.INVALID_KEY


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(None)


def test_the_shipped_policy_offers_replacements_for_card_keys_only(policy: Policy) -> None:
    assert replacement_mode(order(card_key_item()), None, policy) is ReplacementMode.OFFER
    assert replacement_mode(order(content_item()), None, policy) is ReplacementMode.OFF


def test_one_key_for_one_key_and_never_a_replacement_again(policy: Policy) -> None:
    two_keys = order(card_key_item(quantity=2))
    two_items = order(card_key_item("I-1"), card_key_item("I-2"))
    one = [RefundItemRequest(item_id="I-1", quantity=1)]
    assert replacement_mode(two_keys, None, policy) is ReplacementMode.OFF
    assert replacement_mode(two_items, None, policy) is ReplacementMode.OFF
    assert replacement_mode(two_items, one, policy) is ReplacementMode.OFFER
    replaced = order(card_key_item())
    fresh = replaced.items[0].card_keys[0].card_key_id
    assert replacement_mode(replaced, None, policy, replaced_keys=[fresh]) is ReplacementMode.OFF


def test_a_merchant_or_sku_can_make_it_the_default_or_turn_it_off() -> None:
    # A bare `off` is YAML's false: still the word off.
    overrides = (
        "\nskus:\n  steam-50:\n    replacement: default\n  steam-100:\n    replacement: off\n"
    )
    text = default_policy_text()
    assert "\nskus: {}\n" in text
    policy = parse_policy(text.replace("\nskus: {}\n", overrides), source="test")
    assert replacement_mode(order(card_key_item()), None, policy) is ReplacementMode.DEFAULT
    off = order(card_key_item(sku="steam-100"))
    assert replacement_mode(off, None, policy) is ReplacementMode.OFF


@pytest.mark.parametrize(
    ("mode", "remedy", "replace"),
    [
        (ReplacementMode.OFF, Remedy.REPLACEMENT, False),
        (ReplacementMode.OFFER, None, False),
        (ReplacementMode.OFFER, Remedy.REPLACEMENT, True),
        (ReplacementMode.OFFER, Remedy.REFUND, False),
        (ReplacementMode.DEFAULT, None, True),
        (ReplacementMode.DEFAULT, Remedy.REFUND, False),
        (ReplacementMode.DEFAULT, Remedy.REPLACEMENT, True),
    ],
)
def test_the_buyers_choice_under_each_mode(
    mode: ReplacementMode, remedy: Remedy | None, replace: bool
) -> None:
    assert wants_replacement(INVALID, mode, remedy) is replace
    assert wants_replacement(RefundReason.CHANGED_MIND, mode, remedy) is False


def test_a_replacement_reported_invalid_again_goes_to_a_person(policy: Policy) -> None:
    o = order(card_key_item())
    fresh = o.items[0].card_keys[0].card_key_id
    first = rules.decide(case(o, reason=INVALID, key_state=KeyState.INVALID), policy)
    assert first.outcome is Outcome.AUTO_APPROVE
    again = case(o, reason=INVALID, key_state=KeyState.INVALID).model_copy(
        update={"replaced_keys": [fresh]}
    )
    decision = rules.decide(again, policy)
    assert decision.outcome is Outcome.REVIEW
    assert (
        decision.rule == REPLACEMENT_INVALID_RULE and rules.RULES[decision.rule] is Outcome.REVIEW
    )
    assert fresh in decision.explanation and "补发" in decision.explanation_zh
    assert decision.amount == 5000
    # Another reason on the same key is judged as ever.
    other = again.model_copy(update={"reason": RefundReason.CHANGED_MIND})
    assert rules.decide(other, policy).rule != REPLACEMENT_INVALID_RULE


def test_the_buyer_chooses_while_the_refund_waits_and_only_where_offered() -> None:
    waiting = refund(RefundStatus.PENDING_REVIEW).model_copy(update={"replacement_offered": True})
    ask = RemedyRequest(buyer_id="U-42", remedy=Remedy.REPLACEMENT)
    assert acceptance.may_choose_remedy(waiting, ask, keys_voided=False) is None
    assert acceptance.may_choose_remedy(waiting, ask, keys_voided=True) is not None
    stranger = RemedyRequest(buyer_id="U-99", remedy=Remedy.REPLACEMENT)
    refusal = acceptance.may_choose_remedy(waiting, stranger, keys_voided=False)
    assert refusal is not None and refusal.problem == "not-your-refund"
    not_offered = refund(RefundStatus.PENDING_REVIEW)
    refusal = acceptance.may_choose_remedy(not_offered, ask, keys_voided=False)
    assert refusal is not None and refusal.problem == "replacement-not-offered"
    money = RemedyRequest(buyer_id="U-42", remedy=Remedy.REFUND)
    assert acceptance.may_choose_remedy(not_offered, money, keys_voided=False) is None
    for status in (RefundStatus.REFUNDING, RefundStatus.REFUNDED, RefundStatus.REPLACED):
        done = waiting.model_copy(update={"status": status})
        assert acceptance.may_choose_remedy(done, ask, keys_voided=False) is not None
