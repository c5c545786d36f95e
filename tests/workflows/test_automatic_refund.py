"""RefundWorkflow when the rules refund at once: the card key is voided before the money
moves and the commission is clawed back after; a small review takes the fast lane to the
platform balance."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from domain.types import (
    CommissionState,
    Destination,
    Outcome,
    PaymentChannel,
    PayoutState,
    RefundStatus,
)
from tests.workflows.scenarios import (
    CLAW_BACK,
    LARGE,
    assert_paid_once,
    revealed,
    stages,
    unredeemed,
)
from tests.workflows.support import running_refund
from workflows.search import REFUND_AMOUNT, REFUND_STATUS, RISK_LEVEL


async def test_unredeemed_key_is_refunded_automatically(env: WorkflowEnvironment) -> None:
    async with running_refund(env, unredeemed(LARGE), name="auto_approve") as refund:
        body = await refund.result()
        backend = refund.backend

        assert body.status is RefundStatus.REFUNDED
        assert body.decision is not None
        assert body.decision.outcome is Outcome.AUTO_APPROVE
        assert body.decision.rule == "card_key.unredeemed"
        assert body.review is None
        assert_paid_once(backend, LARGE)
        payout = backend.payouts[0]
        assert payout.channel is PaymentChannel.ALIPAY
        assert payout.out_refund_no == f"{body.refund_id}-p1"
        assert [(p.state, p.amount) for p in body.payouts] == [(PayoutState.SUCCEEDED, LARGE)]
        # The key is voided before money moves, and money moves before commissions go back.
        names = backend.names()
        assert names.index("lock_card_keys") < names.index("send_payout")
        # Paid out before it ever waited: never frozen, the commission is taken straight back.
        assert backend.commission_actions == [CLAW_BACK]
        assert [c.state for c in body.commissions] == [CommissionState.CLAWED_BACK]
        assert stages(body)[-1] == "money_arrived"
        # An automatic refund that settles at once is written once, when it ends, with every
        # timeline entry it passed through (the lean path: nothing waits on the way).
        (report,) = backend.reports
        assert report.body.status is RefundStatus.REFUNDED and report.release_claims
        assert [e.stage for e in report.new_entries] == [
            "checking_card_key",
            "card_key_checked",
            "decided",
            "approved_for_payout",
            "card_key_locked",
            "refunding",
            "refund_sent",
            "money_arrived",
        ]
        # One step opens the case; the supplier is asked inside the workflow's own task.
        assert names[:2] == ["open_case", "query_key_redemption"]

        found = (await refund.handle.describe()).typed_search_attributes
        assert found.get(REFUND_STATUS) == "refunded"
        assert found.get(RISK_LEVEL) == "low"
        assert found.get(REFUND_AMOUNT) == LARGE


async def test_fast_lane_pays_small_review_to_balance(env: WorkflowEnvironment) -> None:
    async with running_refund(env, revealed(800), name="fast_lane_balance") as refund:
        body = await refund.result()
        assert body.status is RefundStatus.REFUNDED
        assert body.destination is Destination.BALANCE
        assert body.decision is not None and body.decision.rule == "fast_lane.balance"
        assert [(p.channel, p.amount) for p in refund.backend.payouts] == [
            (PaymentChannel.BALANCE, 800)
        ]
