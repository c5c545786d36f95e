"""Which keys a refund claims back from their supplier, and how much (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from domain.refund import RefundBody, RefundItemView, TimelineEntry
from domain.supplier_claims import SoldKey, claim_id_for, confirmed_invalid, plan_claims
from domain.types import KeyState, RefundReason, RefundStatus
from domain.wording import describe_keys

AT = datetime(2026, 1, 1, tzinfo=UTC)
KEYS = [
    SoldKey("I-1", "K-1", "sup-a"),
    SoldKey("I-1", "K-2", "sup-a"),
    SoldKey("I-1", "K-3", "sup-a"),
    SoldKey("I-2", "K-4", "sup-b"),
]


def body(
    checks: list[tuple[str, dict[str, KeyState]]],
    items: list[RefundItemView],
    *,
    status: RefundStatus = RefundStatus.REFUNDED,
    amount: int | None = None,
) -> RefundBody:
    return RefundBody(
        refund_id="rf-1",
        order_id="O-1",
        buyer_id="U-1",
        merchant_id="M-1",
        status=status,
        amount=sum(i.amount for i in items) if amount is None else amount,
        reason=RefundReason.INVALID_KEY,
        items=items,
        timeline=[
            TimelineEntry(stage=stage, at=AT, detail=describe_keys(states))
            for stage, states in checks
        ],
        workflow_id="refund-rf-1",
        created_at=AT,
        updated_at=AT,
    )


def test_the_share_of_an_item_whose_keys_are_invalid_per_supplier() -> None:
    checked = {
        "K-1": KeyState.INVALID,
        "K-2": KeyState.UNREDEEMED,
        "K-3": KeyState.INVALID,
        "K-4": KeyState.INVALID,
    }
    items = [
        RefundItemView(item_id="I-1", quantity=3, amount=1000),
        RefundItemView(item_id="I-2", quantity=1, amount=700),
    ]
    plans = plan_claims(body([("card_key_checked", checked)], items), KEYS)
    # 1000 fen for three units: 334 + 333 for the two invalid ones (the odd fen goes first).
    assert [(p.supplier, p.card_key_ids, p.amount) for p in plans] == [
        ("sup-a", ("K-1", "K-3"), 667),
        ("sup-b", ("K-4",), 700),
    ]
    assert plans[0].claim_id == claim_id_for("rf-1", "sup-a") != plans[1].claim_id
    assert plans[0].claim_id == claim_id_for("rf-1", "sup-a")  # the same however often


def test_a_partial_refund_claims_at_most_its_units_and_what_it_paid() -> None:
    checked = {"K-1": KeyState.INVALID, "K-2": KeyState.INVALID}
    one_unit = [RefundItemView(item_id="I-1", quantity=1, amount=400)]
    (plan,) = plan_claims(body([("card_key_checked", checked)], one_unit), KEYS)
    assert (plan.card_key_ids, plan.amount) == (("K-1",), 400)
    # A reviewer approved less than the items' value: the claim follows the money.
    (capped,) = plan_claims(body([("card_key_checked", checked)], one_unit, amount=250), KEYS)
    assert capped.amount == 250


def test_the_latest_word_of_the_supplier_counts() -> None:
    checks = [
        ("card_key_checked", {"K-1": KeyState.UNREACHABLE}),
        ("card_key_rechecked", {"K-1": KeyState.INVALID}),
    ]
    items = [RefundItemView(item_id="I-1", quantity=1, amount=500)]
    assert confirmed_invalid(body(checks, items)) == {"K-1"}
    later = [*checks, ("card_key_rechecked", {"K-1": KeyState.UNREDEEMED})]
    assert plan_claims(body(later, items), KEYS) == []


def test_nothing_is_claimed_for_a_refund_not_paid_or_without_invalid_keys() -> None:
    items = [RefundItemView(item_id="I-1", quantity=1, amount=500)]
    invalid = [("card_key_checked", {"K-1": KeyState.INVALID})]
    assert plan_claims(body(invalid, items, status=RefundStatus.REJECTED), KEYS) == []
    assert plan_claims(body([("card_key_checked", {"K-1": KeyState.REDEEMED})], items), KEYS) == []
    assert plan_claims(body([], items), KEYS) == []
