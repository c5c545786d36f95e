"""Properties of `decide` over generated orders, requests, supplier answers and risk."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import event, given, settings
from hypothesis import strategies as st

from domain.decision import Decision, DecisionCase
from domain.order import CardKeyRef, Order, OrderItem, Payment, Usage
from domain.policy import Policy, load_policy
from domain.refund import RefundItemRequest, RiskAssessment
from domain.rules import RULES, decide, on_review_expired
from domain.types import (
    KeyState,
    OrderStatus,
    Outcome,
    PaymentChannel,
    ProductType,
    RefundReason,
    RiskLevel,
    TopupStatus,
)
from tests.domain.factories import PAID_AT

POLICY: Policy = load_policy(None)
TEXTS = [
    "",
    "卡密用不了",
    "视频无法播放",
    "没收到",
    "卡密无效",
    "扣了两次",
    "买错了",
    "不想要了",
    "ok",
]


@st.composite
def items(draw: st.DrawFn, index: int) -> OrderItem:
    item_id = f"I-{index}"
    product_type = draw(st.sampled_from(list(ProductType)))
    quantity = draw(st.integers(1, 3))
    keys = draw(st.sampled_from([quantity] * 6 + list(range(quantity + 2))))
    return OrderItem(
        item_id=item_id,
        sku=draw(st.sampled_from(["sku-a", "sku-b", "sku-c"])),
        product_type=product_type,
        quantity=quantity,
        unit_price=draw(st.integers(0, 1_500) | st.integers(0, 40_000)),
        card_keys=[
            CardKeyRef(
                card_key_id=f"K-{index}-{n}",
                supplier="sup-a",
                delivered_at=PAID_AT if draw(st.sampled_from([True] * 9 + [False])) else None,
            )
            for n in range(keys)
        ],
        usage=Usage(
            key_revealed=draw(st.booleans()),
            progress_pct=draw(st.integers(0, 100)),
            downloaded=draw(st.booleans()),
            topup_status=draw(st.none() | st.sampled_from(list(TopupStatus))),
        ),
    )


def _left(order: Order, already: dict[str, int], item_id: str) -> int:
    item = order.item(item_id)
    return 0 if item is None else item.quantity - already[item_id]


def _quantities(left: int) -> st.SearchStrategy[int]:
    """Mostly what is left, sometimes one more than that."""
    fits = [st.integers(1, left)] * 9 if left else []
    return st.one_of(*fits, st.just(left + 1))


@st.composite
def cases(draw: st.DrawFn) -> DecisionCase:
    order_items = [draw(items(n)) for n in range(draw(st.sampled_from([1, 1, 1, 2, 3])))]
    amount = sum(i.total for i in order_items)
    status = draw(st.sampled_from([OrderStatus.PAID] * 6 + list(OrderStatus)))
    paid = status is OrderStatus.PAID or (status is OrderStatus.CANCELLED and draw(st.booleans()))
    channels = st.sampled_from(list(PaymentChannel))
    payments = [
        Payment(
            payment_id=f"P-{n}",
            channel=draw(channels),
            transaction_id=f"T-{n}",
            amount=max(amount, 1),
            paid_at=PAID_AT + timedelta(seconds=n),
        )
        for n in range(draw(st.integers(1, 3)) if paid else 0)
    ]
    order = Order(
        order_id="O-1",
        merchant_id="M-7",
        buyer_id="U-1",
        status=status,
        amount=amount,
        created_at=PAID_AT,
        paid_at=PAID_AT if paid else None,
        payments=payments,
        items=order_items,
    )
    keys = [k.card_key_id for i in order_items for k in i.card_keys]
    states = st.sampled_from([KeyState.UNREDEEMED] * 4 + list(KeyState))
    answers = [draw(st.none() | states) for _ in keys]
    key_states = {k: state for k, state in zip(keys, answers, strict=True) if state is not None}
    already = {i.item_id: draw(st.just(0) | st.integers(0, i.quantity)) for i in order_items}
    ids = [i.item_id for i in order_items]
    requested_ids = draw(st.lists(st.sampled_from(ids), unique=True, max_size=3))
    if draw(st.sampled_from([False] * 9 + [True])):
        requested_ids.append("I-x")
    requests = [
        RefundItemRequest(item_id=i, quantity=draw(_quantities(_left(order, already, i))))
        for i in requested_ids
    ]
    minutes = st.integers(0, 30) | st.integers(0, 60 * 48) | st.integers(0, 60 * 24 * 12)
    return DecisionCase(
        order=order,
        items=requests,
        already_refunded=already,
        key_states=key_states,
        risk=RiskAssessment(
            level=draw(st.sampled_from([RiskLevel.LOW] * 3 + list(RiskLevel))),
            auto_limit_pct=draw(st.sampled_from([50, 100, 150])),
        ),
        reason=draw(st.sampled_from(list(RefundReason))),
        reason_text=draw(st.sampled_from(TEXTS)),
        now=PAID_AT + timedelta(minutes=draw(minutes)),
    )


def refundable_value(case: DecisionCase) -> int:
    """What the buyer paid for the requested items, less quantities already refunded."""
    total = 0
    for request in case.items or [
        RefundItemRequest(item_id=i.item_id, quantity=i.quantity) for i in case.order.items
    ]:
        item = case.order.item(request.item_id)
        if item is not None:
            left = item.quantity - min(case.already_refunded.get(item.item_id, 0), item.quantity)
            total += min(request.quantity, left) * item.unit_price
    return total


def must_pay_for_a_redeemed_key(case: DecisionCase) -> bool:
    """Whether any refund of the request would pay for a redeemed key: the item's
    non-redeemed units cannot cover this request plus earlier refunds (pigeonhole)."""
    for request in case.items:
        item = case.order.item(request.item_id)
        if item is None or item.product_type is not ProductType.CARD_KEY:
            continue
        redeemed = sum(
            1
            for key in item.card_keys[: item.quantity]
            if key.delivered_at is not None
            and case.key_states.get(key.card_key_id) is KeyState.REDEEMED
        )
        already = case.already_refunded.get(item.item_id, 0)
        if redeemed and request.quantity + already > item.quantity - redeemed:
            return True
    return False


def check(case: DecisionCase, decision: Decision) -> None:
    assert RULES[decision.rule] is decision.outcome
    if decision.payment_ids:
        duplicates = {p.payment_id: p.amount for p in case.order.duplicate_payments}
        assert set(decision.payment_ids) <= set(duplicates)
        assert decision.amount == sum(duplicates[p] for p in decision.payment_ids)
    else:
        assert decision.amount <= refundable_value(case)
        assert decision.amount <= case.order.paid_total
    if decision.outcome not in (Outcome.AUTO_APPROVE, Outcome.REVIEW):
        assert decision.amount == 0
    if case.risk.level is RiskLevel.BLOCKED:
        assert decision.outcome is not Outcome.AUTO_APPROVE
    if must_pay_for_a_redeemed_key(case) and not decision.payment_ids:
        assert decision.outcome is not Outcome.AUTO_APPROVE
    for view in decision.items:
        item = case.order.item(view.item_id)
        assert item is not None
        assert view.amount == view.quantity * item.unit_price


@settings(max_examples=400, deadline=None)
@given(cases())
def test_decide_keeps_its_promises(case: DecisionCase) -> None:
    decision = decide(case, POLICY)
    event(decision.rule)
    check(case, decision)
    expired = on_review_expired(case, decision, POLICY)
    check(case, expired)


@settings(max_examples=200, deadline=None)
@given(cases())
def test_decide_is_deterministic(case: DecisionCase) -> None:
    copy = DecisionCase.model_validate_json(case.model_dump_json())
    reordered = copy.model_copy(
        update={
            "key_states": dict(reversed(list(copy.key_states.items()))),
            "already_refunded": dict(reversed(list(copy.already_refunded.items()))),
        }
    )
    first = decide(case, POLICY)
    assert decide(case, POLICY) == first
    assert decide(reordered, POLICY) == first
