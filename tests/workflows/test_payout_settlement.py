"""RefundWorkflow settling a payout the gateway did not finish at once: a notification wakes
it, a "processing" refund is polled with back-off, a CLOSED route falls back to the balance
with a new refund number, and a payout no route can make is reported."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from datetime import datetime, timedelta

from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from domain.types import PaymentChannel, PayoutState, RefundStatus
from tests.workflows.fakes import FakeBackend
from tests.workflows.scenarios import (
    CLAW_BACK,
    FREEZE,
    LARGE,
    assert_paid_once,
    processing,
    signals_processed,
    stages,
    unredeemed,
)
from tests.workflows.support import running_refund
from workflows.messages import GatewayNotice
from workflows.refund import RefundWorkflow


async def test_gateway_notification_settles_a_processing_payout_early(
    env: WorkflowEnvironment,
) -> None:
    async with running_refund(env, processing(), name="processing_notified") as refund:
        body = await refund.wait_for(
            lambda b: [p.state for p in b.payouts] == [PayoutState.PROCESSING]
        )
        assert body.status is RefundStatus.REFUNDING  # money is not back yet
        assert refund.backend.called("query_payout") == []
        no = body.payouts[0].out_refund_no

        await refund.handle.signal(
            RefundWorkflow.on_gateway_notification,
            GatewayNotice(out_refund_no=no, state="succeeded", gateway_refund_id="wx-1"),
        )
        body = await refund.result()
        assert body.status is RefundStatus.REFUNDED
        assert_paid_once(refund.backend, LARGE)
        (sent,), (query,) = (
            [c for c in refund.backend.calls if c.name == name]
            for name in ("send_payout", "query_payout")
        )
        assert query.arg.out_refund_no == no
        # The notification, not the first 10 s back-off, made the workflow ask.
        assert sent.scheduled is not None and query.scheduled is not None
        assert query.scheduled - sent.scheduled < timedelta(seconds=10)


async def test_processing_payout_is_polled_with_back_off_until_it_succeeds(
    env: WorkflowEnvironment,
) -> None:
    scenario = processing(PayoutState.PROCESSING, PayoutState.PROCESSING)
    async with running_refund(env, scenario, name="processing_polled") as refund:
        body = await refund.wait_for(lambda b: bool(b.payouts))
        no = body.payouts[0].out_refund_no

        # A notification only wakes the workflow: it believes the gateway's query, which
        # still says "processing".
        await refund.handle.signal(
            RefundWorkflow.on_gateway_notification,
            GatewayNotice(out_refund_no=no, state="succeeded"),
        )
        for _ in range(200):
            if refund.backend.called("query_payout"):
                break
            await asyncio.sleep(0.02)
        body = await signals_processed(refund, "after the first query")
        assert body.status is RefundStatus.REFUNDING
        assert [p.state for p in body.payouts] == [PayoutState.PROCESSING]

        body = await refund.result()
        assert body.status is RefundStatus.REFUNDED
        assert [p.state for p in body.payouts] == [PayoutState.SUCCEEDED]
        assert_paid_once(refund.backend, LARGE)
        queried = [c.scheduled for c in refund.backend.calls if c.name == "query_payout"]
        assert len(queried) == 3
        gaps = [b - a for a, b in itertools.pairwise(queried) if a and b]
        # Back-off after the notification-triggered query: 30 s, then 1 min.
        assert gaps[0] >= timedelta(seconds=30) and gaps[1] >= timedelta(minutes=1)


async def test_closed_route_falls_back_to_balance(env: WorkflowEnvironment) -> None:
    async with running_refund(env, processing(PayoutState.CLOSED), name="closed_fallback") as r:
        body = await r.result()

        assert body.status is RefundStatus.REFUNDED
        assert [(p.attempt, p.channel, p.amount) for p in r.backend.payouts] == [
            (1, PaymentChannel.ALIPAY, LARGE),
            (2, PaymentChannel.BALANCE, LARGE),
        ]
        assert [(p.channel, p.state) for p in body.payouts] == [
            (PaymentChannel.ALIPAY, PayoutState.CLOSED),
            (PaymentChannel.BALANCE, PayoutState.SUCCEEDED),
        ]
        # A new out-refund number for the new attempt (WeChat: CLOSED needs a new one).
        assert len({p.out_refund_no for p in r.backend.payouts}) == 2
        assert "route_fallback" in stages(body)
        assert r.backend.commission_actions == [FREEZE, CLAW_BACK]


async def test_payout_that_cannot_be_made_is_reported(env: WorkflowEnvironment) -> None:
    def nowhere_to_pay(now: datetime) -> FakeBackend:
        backend = unredeemed(LARGE)(now)
        backend.send_states = {1: PayoutState.CLOSED, 2: PayoutState.FAILED}
        return backend

    async with running_refund(env, nowhere_to_pay, name="payout_failed") as refund:
        with contextlib.suppress(WorkflowFailureError):
            await refund.result()
        assert refund.backend.reports[-1].body.status is RefundStatus.FAILED
