"""Properties of `plan_payouts`: the money a refund sends back, and through which route."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from domain.order import Order, Payment
from domain.payout_plan import plan_payouts
from domain.types import Destination, PaymentChannel
from tests.domain.factories import PAID_AT, card_key_item, order

CHANNELS = [PaymentChannel.ALIPAY, PaymentChannel.WECHAT, PaymentChannel.BALANCE]


@st.composite
def paid_orders(draw: st.DrawFn) -> Order:
    """An order covered by one to three payments, the last ones possibly a duplicate charge."""
    price = draw(st.integers(1, 50_000))
    base = order(card_key_item(unit_price=price))
    shares = draw(st.lists(st.integers(1, price), min_size=0, max_size=2))
    first = price - sum(shares) if sum(shares) < price else price
    amounts = [first, *shares] if sum(shares) < price else [price]
    if draw(st.booleans()):
        amounts.append(price)  # charged twice
    payments = [
        Payment(
            payment_id=f"P-{n}",
            channel=draw(st.sampled_from(CHANNELS)),
            transaction_id=f"T-{n}",
            amount=amount,
            paid_at=PAID_AT + timedelta(seconds=n),
        )
        for n, amount in enumerate(amounts)
    ]
    return base.model_copy(update={"payments": payments})


@given(paid_orders(), st.integers(0, 120_000), st.sampled_from(list(Destination)))
def test_the_plan_pays_exactly_the_amount(o: Order, amount: int, destination: Destination) -> None:
    plan = plan_payouts(o, amount, destination=destination)
    assert sum(p.amount for p in plan) == max(amount, 0)
    assert all(p.amount > 0 for p in plan)


@given(paid_orders(), st.integers(1, 120_000))
def test_no_payment_is_refunded_beyond_what_it_paid(o: Order, amount: int) -> None:
    for part in plan_payouts(o, amount, destination=Destination.ORIGINAL):
        if part.payment is not None:
            assert part.amount <= part.payment.amount
            assert part.channel is part.payment.channel


@given(paid_orders(), st.integers(1, 120_000))
def test_original_routes_first_and_balance_only_for_the_rest(o: Order, amount: int) -> None:
    plan = plan_payouts(o, amount, destination=Destination.ORIGINAL)
    to_balance = [p for p in plan if p.payment is None]
    assert len(to_balance) <= 1 and (not to_balance or plan[-1] is to_balance[0])
    duplicates = {p.payment_id for p in o.duplicate_payments}
    assert not any(p.payment and p.payment.payment_id in duplicates for p in plan)
    routed = sum(p.amount for p in plan if p.payment is not None)
    assert routed == min(
        amount, sum(p.amount for p in o.payments if p.payment_id not in duplicates)
    )


@given(paid_orders(), st.integers(1, 120_000))
def test_a_refund_to_balance_goes_there_whole(o: Order, amount: int) -> None:
    (only,) = plan_payouts(o, amount, destination=Destination.BALANCE)
    assert (only.channel, only.payment, only.amount) == (PaymentChannel.BALANCE, None, amount)


def test_a_duplicate_charge_is_refunded_through_the_payment_it_names() -> None:
    o = order(card_key_item(unit_price=5000), payments=2)
    plan = plan_payouts(o, 5000, destination=Destination.ORIGINAL, payment_ids=["P-2"])
    assert [(p.payment.payment_id if p.payment else None, p.amount) for p in plan] == [
        ("P-2", 5000)
    ]
