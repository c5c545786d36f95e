"""RefundWorkflow locking the card keys before money moves: a key redeemed meanwhile goes to
a person (and never approves itself), the buyer is told why, and a cancel that arrives while
the key is being voided must not strand the buyer."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio.testing import WorkflowEnvironment

from domain.refund import CancelRequest
from domain.types import Outcome, RefundStatus
from tests.workflows.fakes import FakeBackend
from tests.workflows.scenarios import (
    BUYER,
    FREEZE,
    LARGE,
    RELEASE,
    SMALL,
    redeemed_at_lock,
    reject,
    stages,
    unredeemed,
)
from tests.workflows.support import running_refund
from workflows.refund import RefundWorkflow


async def test_key_redeemed_before_the_lock_goes_to_a_person(env: WorkflowEnvironment) -> None:
    async with running_refund(env, redeemed_at_lock(), name="redeemed_at_lock") as refund:
        body = await refund.wait_for_status(RefundStatus.PENDING_REVIEW)
        assert body.decision is not None
        assert body.decision.outcome is Outcome.REVIEW
        assert body.decision.rule == "card_key.redeemed_at_lock"
        assert "card_key_redeemed" in stages(body)
        assert refund.backend.payouts == []
        assert refund.backend.reports[-1].body.status is RefundStatus.PENDING_REVIEW

        await refund.handle.signal(RefundWorkflow.on_reject, reject())
        await refund.wait_for_status(RefundStatus.REJECTED)
        assert refund.backend.commission_actions == [FREEZE, RELEASE]
        assert refund.backend.payouts == []


async def test_key_redeemed_at_lock_never_approves_itself(env: WorkflowEnvironment) -> None:
    scenario = redeemed_at_lock(SMALL)
    async with running_refund(env, scenario, name="redeemed_at_lock_expiry") as r:
        await r.wait_for_status(RefundStatus.PENDING_REVIEW)
        await env.sleep(timedelta(hours=25))
        body = await r.wait_for(lambda b: "review_escalated" in stages(b))
        assert body.status is RefundStatus.PENDING_REVIEW
        assert "approved" not in stages(body)  # with the bug: "approved by system", re-lock
        assert len(r.backend.called("lock_card_keys")) == 1


async def test_key_redeemed_at_lock_is_explained_to_the_buyer(env: WorkflowEnvironment) -> None:
    async with running_refund(env, redeemed_at_lock(), name="redeemed_at_lock_zh") as refund:
        body = await refund.wait_for_status(RefundStatus.PENDING_REVIEW)
        decided = next(e for e in body.timeline if e.stage == "decided")
        assert body.decision is not None
        assert body.decision.explanation_zh != decided.detail


async def test_cancel_after_the_key_is_voided_does_not_strand_the_buyer(
    env: WorkflowEnvironment,
) -> None:
    def gated(now: datetime) -> FakeBackend:
        backend = unredeemed(LARGE)(now)
        backend.lock_gate = asyncio.Event()
        return backend

    async with running_refund(env, gated, name="cancel_during_lock") as r:
        await asyncio.wait_for(r.backend.lock_started.wait(), timeout=10)
        await r.handle.signal(RefundWorkflow.on_cancel, CancelRequest(buyer_id=BUYER))
        assert r.backend.lock_gate is not None
        r.backend.lock_gate.set()  # the supplier voids the key
        body = await r.result()
        voided = bool(r.backend.called("lock_card_keys"))
        assert not (voided and body.status is RefundStatus.CANCELLED and not r.backend.payouts)


async def test_a_lock_the_supplier_refuses_for_good_goes_to_a_person(
    env: WorkflowEnvironment,
) -> None:
    """The lean refund locks in a local activity, whose final failure reaches the workflow as
    the ApplicationError itself; before `local-supplier-failures` that failed the refund."""

    def refusing(now: datetime) -> FakeBackend:
        backend = unredeemed()(now)
        backend.lock_fails = True
        return backend

    async with running_refund(env, refusing, name="lock_refused") as refund:
        body = await refund.wait_for_status(RefundStatus.PENDING_REVIEW)
        assert body.decision is not None and body.decision.rule == "card_key.lock_failed"
        assert "card_key_lock_failed" in stages(body)
        assert refund.backend.payouts == []
        assert len(refund.backend.called("lock_card_keys")) == 1

        await refund.handle.signal(RefundWorkflow.on_reject, reject())
        await refund.wait_for_status(RefundStatus.REJECTED)
