"""Balance holds through the steps that move them: the refund stored (held), its balance
payout recorded (spent), its reports applied (released; held again on appeal), each step
retried as Temporal would retry it, against a real database (`store.holds`)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from activities.payouts import Payouts
from activities.records import RefundRecords
from domain.holds import HoldState
from domain.model import utcnow
from domain.order import Order, Payment
from domain.policy import CurrentPolicy
from domain.refund import RefundBody, ReviewView, TimelineEntry
from domain.types import PaymentChannel, RefundStatus
from peers.balance import BalanceGateway
from peers.payouts import Gateways
from store import holds, ledger, withdrawals
from store import refunds as refund_rows
from store.hold_rows import BalanceHoldRow
from store.models import LedgerEntryRow
from tests.activities.conftest import run_activity
from tests.scratch import Scratch, an_order, stored_order, stored_refund, unique
from workflows.messages import PayoutRequest, ProgressReport


@pytest.fixture
def records(scratch: Scratch) -> RefundRecords:
    return RefundRecords(scratch.sessions, policy=CurrentPolicy().get, reads=scratch.reads)


@pytest.fixture
def payouts(scratch: Scratch) -> Payouts:
    return Payouts(scratch.sessions, gateways=Gateways([BalanceGateway()]), reads=scratch.reads)


def mixed(order: Order, *, from_balance: int) -> Order:
    """The same order paid partly by Alipay, `from_balance` from the platform balance."""
    [paid] = order.payments
    return order.model_copy(
        update={
            "payments": [
                paid.model_copy(update={"amount": order.amount - from_balance}),
                Payment(
                    payment_id="P-2",
                    channel=PaymentChannel.BALANCE,
                    transaction_id=unique("T"),
                    amount=from_balance,
                    paid_at=paid.paid_at,
                ),
            ]
        }
    )


async def books(scratch: Scratch, order: Order) -> tuple[int, int]:
    """The merchant's settlement and held accounts."""
    async with scratch.reads() as session:
        return (
            await ledger.balance(session, ledger.merchant_settlement(order.merchant_id)),
            await ledger.balance(session, ledger.merchant_held(order.merchant_id)),
        )


async def the_hold(scratch: Scratch, refund_id: str) -> BalanceHoldRow | None:
    async with scratch.reads() as session:
        return await session.get(BalanceHoldRow, refund_id)


async def postings(scratch: Scratch, txn_id: str) -> int:
    async with scratch.reads() as session:
        return int(
            await session.scalar(select(func.count()).where(LedgerEntryRow.txn_id == txn_id)) or 0
        )


async def report(
    scratch: Scratch,
    records: RefundRecords,
    refund_id: str,
    status: RefundStatus,
    *,
    seq: int,
    amount: int | None = None,
    times: int = 2,
) -> None:
    """Report a status as the workflow does, `times` times (a retried local activity)."""
    async with scratch.reads() as session:
        body: RefundBody | None = await refund_rows.load_body(session, refund_id)
    assert body is not None
    now = utcnow()
    changed = body.model_copy(
        update={
            "status": status,
            "amount": body.amount if amount is None else amount,
            "review": ReviewView(deadline=now + timedelta(hours=24))
            if status is RefundStatus.PENDING_REVIEW
            else body.review,
            "timeline": [*body.timeline, TimelineEntry(stage=status.value, at=now)],
        }
    )
    for _ in range(times):
        await run_activity(
            records.record_progress,
            ProgressReport(seq=seq, body=changed, first_entry=len(changed.timeline)),
        )


async def pay_to_balance(payouts: Payouts, order: Order, refund_id: str, amount: int) -> None:
    req = PayoutRequest(
        refund_id=refund_id,
        attempt=1,
        channel=PaymentChannel.BALANCE,
        payment_id=order.payments[-1].payment_id,
        transaction_id=order.payments[-1].transaction_id,
        amount=amount,
        payment_total=order.payments[-1].amount,
        currency=order.currency,
        buyer_id=order.buyer_id,
        merchant_id=order.merchant_id,
        reason="card key invalid",
    )
    await run_activity(payouts.send_payout, req)
    await run_activity(payouts.send_payout, req)  # a retry after the answer was recorded


async def test_a_balance_paid_refund_is_held_once_and_spent_once(
    scratch: Scratch, records: RefundRecords, payouts: Payouts
) -> None:
    order = await stored_order(scratch, an_order(channel=PaymentChannel.BALANCE))
    settled, _ = await books(scratch, order)  # the sale, less the commission
    refund_id = await stored_refund(scratch, order)
    async with scratch.sessions.begin() as session:  # the same refund stored again holds nothing
        again = await holds.hold(
            session, refund_id=refund_id, order=order, asked=5000, now=utcnow()
        )
    assert again == 0
    assert await books(scratch, order) == (settled - 5000, 5000)
    assert await postings(scratch, f"refund:{refund_id}:hold") == 2

    await pay_to_balance(payouts, order, refund_id, 5000)
    assert await books(scratch, order) == (settled - 5000, 0), "debited once, from the hold"
    async with scratch.reads() as session:
        assert await ledger.balance(session, ledger.buyer_balance(order.buyer_id)) == 5000
    await report(scratch, records, refund_id, RefundStatus.REFUNDED, seq=2)

    hold = await the_hold(scratch, refund_id)
    assert hold is not None and (hold.state, hold.spent, hold.released) == (
        HoldState.SPENT,
        5000,
        0,
    )
    assert await postings(scratch, f"refund:{refund_id}:release") == 0
    assert await books(scratch, order) == (settled - 5000, 0)


async def test_a_rejected_refund_releases_once_and_an_appeal_holds_again(
    scratch: Scratch, records: RefundRecords
) -> None:
    order = await stored_order(scratch, an_order(channel=PaymentChannel.BALANCE))
    settled, _ = await books(scratch, order)
    refund_id = await stored_refund(scratch, order)
    await report(scratch, records, refund_id, RefundStatus.PENDING_REVIEW, seq=2)
    assert await books(scratch, order) == (settled - 5000, 5000)

    await report(scratch, records, refund_id, RefundStatus.REJECTED, seq=3)
    assert await books(scratch, order) == (settled, 0)
    assert await postings(scratch, f"refund:{refund_id}:release") == 2
    hold = await the_hold(scratch, refund_id)
    assert hold is not None and (hold.state, hold.released) == (HoldState.RELEASED, 5000)

    # The buyer appeals: the refund is live again, and so is its hold (round 2).
    await report(scratch, records, refund_id, RefundStatus.PENDING_REVIEW, seq=4)
    assert await books(scratch, order) == (settled - 5000, 5000)
    await report(scratch, records, refund_id, RefundStatus.REJECTED, seq=5)
    assert await books(scratch, order) == (settled, 0)
    hold = await the_hold(scratch, refund_id)
    assert hold is not None and (hold.round, hold.amount, hold.released) == (2, 10000, 10000)


async def test_an_approval_for_less_spends_part_and_releases_the_rest(
    scratch: Scratch, records: RefundRecords, payouts: Payouts
) -> None:
    order = await stored_order(scratch, an_order(channel=PaymentChannel.BALANCE))
    settled, _ = await books(scratch, order)
    refund_id = await stored_refund(scratch, order)

    await pay_to_balance(payouts, order, refund_id, 3000)
    await report(scratch, records, refund_id, RefundStatus.REFUNDED, seq=2, amount=3000)

    assert await books(scratch, order) == (settled - 3000, 0)
    hold = await the_hold(scratch, refund_id)
    assert hold is not None and (hold.state, hold.spent, hold.released) == (
        HoldState.RELEASED,
        3000,
        2000,
    )


async def test_only_the_balance_part_of_a_mixed_payment_is_held(scratch: Scratch) -> None:
    order = await stored_order(scratch, mixed(an_order(), from_balance=1500))
    settled, _ = await books(scratch, order)
    async with scratch.reads() as session:
        before = (await holds.total_held(session)).get("CNY", 0)
    await stored_refund(scratch, order)
    assert await books(scratch, order) == (settled - 1500, 1500)
    async with scratch.reads() as session:  # what the gauge shows
        assert (await holds.total_held(session))["CNY"] == before + 1500


async def test_gateway_paid_orders_hold_nothing(scratch: Scratch) -> None:
    order = await stored_order(scratch, an_order(channel=PaymentChannel.ALIPAY))
    refund_id = await stored_refund(scratch, order)
    assert await the_hold(scratch, refund_id) is None


async def test_a_withdrawal_takes_only_what_is_available_and_once(scratch: Scratch) -> None:
    order = await stored_order(scratch, an_order(channel=PaymentChannel.BALANCE, amount=9000))
    settled, _ = await books(scratch, order)  # 8100: 9000 less the commission
    await stored_refund(scratch, order)
    async with scratch.reads() as session:
        before = await holds.merchant_balance(session, order.merchant_id, "CNY")
    assert (before.settlement, before.held, before.available) == (settled, 9000, 0)

    async with scratch.sessions.begin() as session:
        with pytest.raises(withdrawals.Insufficient) as refused:
            await withdrawals.withdraw(
                session,
                account=ledger.merchant_settlement(order.merchant_id),
                txn=withdrawals.txn_id("merchant-withdrawal", order.merchant_id, "W-1"),
                amount=1,
                currency="CNY",
                subject=f"merchant:{order.merchant_id}",
                action="merchant.withdrawn",
                now=utcnow(),
            )
    assert refused.value.available == 0
