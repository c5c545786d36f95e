"""Payouts against fake gateways (the `PayoutGateway` protocol) and the platform balance,
on a real database: the intent is stored before the call, answers are recorded as said,
money is posted once."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from sqlalchemy import select
from temporalio.exceptions import ApplicationError

from activities.payouts import Payouts
from domain.order import Order
from domain.types import PaymentChannel, PayoutState
from peers.balance import BalanceGateway
from peers.payouts import (
    AbnormalRefundRequest,
    AnswerUntrusted,
    GatewayRefund,
    GatewayRefused,
    Gateways,
    RefundOrder,
)
from store import ledger
from store.models import AuditRow, PayoutRow
from tests.activities.conftest import run_activity
from tests.scratch import Scratch, an_order, stored_order, stored_refund
from workflows.messages import AbandonPayout, AbnormalRescue, PayoutRequest, SettlementQuery

Answer = GatewayRefund | Exception


@dataclass
class FakeGateway:
    """Answers what it is told to, in order; remembers what it was asked."""

    channel: PaymentChannel = PaymentChannel.ALIPAY
    instant: bool = False
    sends: list[Answer] = field(default_factory=list)
    queries: list[Answer] = field(default_factory=list)
    sent: list[RefundOrder] = field(default_factory=list)
    queried: list[RefundOrder] = field(default_factory=list)

    async def send_refund(self, order: RefundOrder) -> GatewayRefund:
        self.sent.append(order)
        return _answer(self.sends.pop(0))

    async def query_refund(self, order: RefundOrder) -> GatewayRefund:
        self.queried.append(order)
        return _answer(self.queries.pop(0))


@dataclass
class RescuingGateway(FakeGateway):
    channel: PaymentChannel = PaymentChannel.WECHAT
    rescued: list[tuple[str, AbnormalRefundRequest]] = field(default_factory=list)

    async def rescue_abnormal_refund(
        self, order: RefundOrder, gateway_refund_id: str, request: AbnormalRefundRequest
    ) -> GatewayRefund:
        self.rescued.append((gateway_refund_id, request))
        return refund(PayoutState.SUCCEEDED, order.amount, "SUCCESS")


def _answer(answer: Answer) -> GatewayRefund:
    if isinstance(answer, Exception):
        raise answer
    return answer


def refund(state: PayoutState, amount: int, raw: str, gateway_id: str = "G-1") -> GatewayRefund:
    return GatewayRefund(state=state, gateway_refund_id=gateway_id, amount=amount, raw_status=raw)


@pytest.fixture
def alipay() -> FakeGateway:
    return FakeGateway()


@pytest.fixture
def wechat() -> RescuingGateway:
    return RescuingGateway()


@pytest.fixture
def payouts(scratch: Scratch, alipay: FakeGateway, wechat: RescuingGateway) -> Payouts:
    return Payouts(
        scratch.sessions,
        gateways=Gateways([alipay, wechat, BalanceGateway()]),
        reads=scratch.reads,
    )


async def payout_request(
    scratch: Scratch, channel: PaymentChannel = PaymentChannel.ALIPAY
) -> tuple[Order, PayoutRequest]:
    order = await stored_order(scratch, an_order(channel=channel))
    refund_id = await stored_refund(scratch, order)
    payment = order.payments[0]
    return order, PayoutRequest(
        refund_id=refund_id,
        attempt=1,
        channel=channel,
        payment_id=payment.payment_id,
        transaction_id=payment.transaction_id,
        amount=order.amount,
        payment_total=payment.amount,
        currency=order.currency,
        buyer_id=order.buyer_id,
        merchant_id=order.merchant_id,
        reason="card key invalid",
    )


async def balance(scratch: Scratch, account: str) -> int:
    async with scratch.reads() as session:
        return await ledger.balance(session, account)


async def test_a_payout_is_paid_once_and_posted_once(
    scratch: Scratch, payouts: Payouts, alipay: FakeGateway
) -> None:
    order, req = await payout_request(scratch)
    alipay.sends = [refund(PayoutState.SUCCEEDED, req.amount, "REFUND_SUCCESS")]
    heartbeats: list[object] = []
    merchant = ledger.merchant_settlement(order.merchant_id)
    owed = await balance(scratch, merchant)  # the sale, less the commission

    paid = await run_activity(payouts.send_payout, req, heartbeats=heartbeats)
    again = await run_activity(payouts.send_payout, req)  # a retry after the answer

    assert paid.state is PayoutState.SUCCEEDED and paid.gateway_refund_id == "G-1"
    assert again == paid
    assert [o.out_refund_no for o in alipay.sent] == [f"{req.refund_id}-p1"]
    assert heartbeats, "waiting on a gateway heartbeats"
    assert await balance(scratch, merchant) == owed - req.amount


async def test_processing_is_settled_by_a_query(
    scratch: Scratch, payouts: Payouts, alipay: FakeGateway
) -> None:
    _, req = await payout_request(scratch)
    alipay.sends = [refund(PayoutState.PROCESSING, req.amount, "PROCESSING")]
    alipay.queries = [refund(PayoutState.SUCCEEDED, req.amount, "REFUND_SUCCESS")]

    sent = await run_activity(payouts.send_payout, req)
    query = SettlementQuery(
        refund_id=req.refund_id,
        out_refund_no=req.out_refund_no,
        channel=req.channel,
        transaction_id=req.transaction_id,
    )
    settled = await run_activity(payouts.query_payout, query)
    asked_again = await run_activity(payouts.query_payout, query)  # settled: nothing to ask

    assert sent.state is PayoutState.PROCESSING
    assert settled.state is asked_again.state is PayoutState.SUCCEEDED
    assert len(alipay.queried) == 1


async def test_a_retried_send_answering_processing_is_checked_at_once(
    scratch: Scratch, payouts: Payouts, alipay: FakeGateway
) -> None:
    """The worker died mid-call; Temporal retries the send, and Alipay answers a repeated
    number with fund_change N ("processing"): the refund it already made is found at once."""
    _, req = await payout_request(scratch)
    alipay.sends = [refund(PayoutState.PROCESSING, req.amount, "fund_change=N")]
    alipay.queries = [refund(PayoutState.SUCCEEDED, req.amount, "REFUND_SUCCESS")]

    retried = await run_activity(payouts.send_payout, req, attempt=2)

    assert retried.state is PayoutState.SUCCEEDED and len(alipay.queried) == 1
    _, first = await payout_request(scratch)
    alipay.sends = [refund(PayoutState.PROCESSING, first.amount, "fund_change=N")]
    assert (await run_activity(payouts.send_payout, first)).state is PayoutState.PROCESSING
    assert len(alipay.queried) == 1  # a first call's "processing" waits for the back-off


async def test_a_verified_refusal_fails_the_payout_and_is_not_retried(
    scratch: Scratch, payouts: Payouts, alipay: FakeGateway
) -> None:
    _, req = await payout_request(scratch)
    alipay.sends = [GatewayRefused("ACQ.TRADE_HAS_CLOSE", "trade closed")]

    with pytest.raises(ApplicationError) as raised:
        await run_activity(payouts.send_payout, req)

    assert raised.value.type == "GatewayRefused" and raised.value.non_retryable
    async with scratch.reads() as session:
        row = await session.get(PayoutRow, req.out_refund_no)
    assert row is not None and row.state is PayoutState.FAILED
    assert row.gateway_status == "ACQ.TRADE_HAS_CLOSE"


async def test_an_untrusted_answer_is_unknown_until_a_person_abandons_it(
    scratch: Scratch, payouts: Payouts, alipay: FakeGateway
) -> None:
    order, req = await payout_request(scratch)
    alipay.sends = [AnswerUntrusted("SIGNATURE_INVALID", "bad signature")]
    merchant = ledger.merchant_settlement(order.merchant_id)
    owed = await balance(scratch, merchant)

    unknown = await run_activity(payouts.send_payout, req)
    abandoned = await run_activity(
        payouts.abandon_payout,
        AbandonPayout(
            refund_id=req.refund_id,
            out_refund_no=req.out_refund_no,
            operator="alice",
            note="the gateway has no such refund",
        ),
    )

    assert unknown.state is PayoutState.UNKNOWN
    assert abandoned.state is PayoutState.FAILED
    assert await balance(scratch, merchant) == owed, "no money moved"
    async with scratch.reads() as session:
        actor = await session.scalar(
            select(AuditRow.actor).where(AuditRow.event_key == f"payout:{req.out_refund_no}:failed")
        )
    assert actor == "operator:alice"


async def test_a_balance_payout_settles_in_our_own_books(
    scratch: Scratch, payouts: Payouts
) -> None:
    order, req = await payout_request(scratch, PaymentChannel.BALANCE)

    paid = await run_activity(payouts.send_payout, req)

    assert paid.state is PayoutState.SUCCEEDED
    assert await balance(scratch, ledger.buyer_balance(order.buyer_id)) == req.amount


async def test_an_abnormal_refund_is_rescued_to_a_bank_card(
    scratch: Scratch, payouts: Payouts, wechat: RescuingGateway
) -> None:
    _, req = await payout_request(scratch, PaymentChannel.WECHAT)
    wechat.sends = [refund(PayoutState.ABNORMAL, req.amount, "ABNORMAL", gateway_id="W-9")]

    abnormal = await run_activity(payouts.send_payout, req)
    rescued = await run_activity(
        payouts.rescue_abnormal_payout,
        AbnormalRescue(
            refund_id=req.refund_id, out_refund_no=req.out_refund_no, to="USER_BANK_CARD"
        ),
    )

    assert abnormal.state is PayoutState.ABNORMAL
    assert rescued.state is PayoutState.SUCCEEDED
    assert [gateway_id for gateway_id, _ in wechat.rescued] == ["W-9"]


async def test_a_channel_without_a_gateway_is_a_typed_refusal(scratch: Scratch) -> None:
    _, req = await payout_request(scratch, PaymentChannel.WECHAT)
    only_balance = Payouts(scratch.sessions, gateways=Gateways([BalanceGateway()]))

    with pytest.raises(ApplicationError) as raised:
        await run_activity(only_balance.send_payout, req)

    assert raised.value.type == "UnknownChannel" and raised.value.non_retryable
