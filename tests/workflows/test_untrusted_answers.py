"""When the gateway's answer cannot be trusted (issue 14): unknown is never "refused".

An answer that does not verify, ABNORMAL, or no verified answer within the policy's limits
never sends the money down another route: the workflow verifies by query, and past its
limits hands the refund to a person (`needs_attention`), who resolves it through the
`resolve` update. Each test asserts what the gateway was asked — exactly one refund."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from domain.policy import PayoutPolicy
from domain.refund import AbnormalRefundTarget, ResolveAction, ResolveRequest
from domain.types import PaymentChannel, PayoutState, RefundStatus
from tests.workflows.fakes import DEFAULT_POLICY, FakeBackend
from tests.workflows.support import Refund, card_key_order, running_refund
from workflows.messages import GatewayNotice
from workflows.refund import RefundWorkflow
from workflows.search import REFUND_STATUS

AMOUNT = 5000
Scenario = Callable[[datetime], FakeBackend]


def gateway(send: PayoutState, *queries: PayoutState, then: PayoutState) -> Scenario:
    """An automatic refund whose gateway answers `send` to the refund call, `queries` to
    the first queries and `then` to every later one."""

    def make(now: datetime) -> FakeBackend:
        backend = FakeBackend(order=card_key_order(now, amount=AMOUNT))
        backend.send_states = {1: send}
        backend.query_states = list(queries)
        backend.settles_to = then
        return backend

    return make


def resolve(action: ResolveAction, **fields: object) -> ResolveRequest:
    return ResolveRequest.model_validate({"operator": "sre-li", "action": action, **fields})


async def resolve_now(refund: Refund, req: ResolveRequest) -> object:
    return await refund.handle.execute_update(RefundWorkflow.resolve, req)


def gateway_refunds(backend: FakeBackend) -> list[tuple[int, PaymentChannel]]:
    return [(p.attempt, p.channel) for p in backend.payouts]


async def test_unverified_answer_is_settled_by_a_signed_query(env: WorkflowEnvironment) -> None:
    scenario = gateway(PayoutState.UNKNOWN, then=PayoutState.SUCCEEDED)
    async with running_refund(env, scenario, name="unverified_then_verified") as refund:
        body = await refund.result()

        assert body.status is RefundStatus.REFUNDED
        assert gateway_refunds(refund.backend) == [(1, PaymentChannel.ALIPAY)]
        assert [p.state for p in body.payouts] == [PayoutState.SUCCEEDED]
        stages = [e.stage for e in body.timeline]
        assert "refund_unverified" in stages and "route_fallback" not in stages
        (sent,), (query,) = (
            [c for c in refund.backend.calls if c.name == name]
            for name in ("send_payout", "query_payout")
        )
        # Checked within seconds, not after the 10 s "processing" back-off.
        assert sent.scheduled and query.scheduled
        assert query.scheduled - sent.scheduled < timedelta(seconds=5)


async def test_no_verified_answer_in_time_goes_to_a_person_not_to_balance(
    env: WorkflowEnvironment,
) -> None:
    scenario = gateway(PayoutState.UNKNOWN, then=PayoutState.UNKNOWN)
    async with running_refund(env, scenario, name="unverified_needs_attention") as refund:
        await refund.wait_for(lambda b: bool(b.payouts))
        await env.sleep(timedelta(minutes=70))  # past the policy's 60 minutes
        body = await refund.wait_for_status(RefundStatus.NEEDS_ATTENTION)

        assert gateway_refunds(refund.backend) == [(1, PaymentChannel.ALIPAY)]
        assert body.timeline[-1].stage == "needs_attention"
        assert "no verified answer" in body.timeline[-1].detail
        assert any("needs attention" in a for a in refund.backend.alerts())
        described = await refund.handle.describe()
        assert described.typed_search_attributes.get(REFUND_STATUS) == "needs_attention"
        queries = len(refund.backend.called("query_payout"))
        assert queries >= 3  # it kept asking before it gave up on its own

        # The SRE fixes the gateway key; a verified query now shows the refund as done.
        refund.backend.settles_to = PayoutState.SUCCEEDED
        answered = await resolve_now(refund, resolve(ResolveAction.VERIFY))
        assert getattr(answered, "status", None) is not RefundStatus.NEEDS_ATTENTION
        body = await refund.result()
        assert body.status is RefundStatus.REFUNDED
        assert gateway_refunds(refund.backend) == [(1, PaymentChannel.ALIPAY)]
        report = refund.backend.reports[-1]
        assert report.body.status is RefundStatus.REFUNDED


def wechat_abnormal(now: datetime) -> FakeBackend:
    backend = gateway(PayoutState.ABNORMAL, then=PayoutState.SUCCEEDED)(now)
    backend.order = card_key_order(now, amount=AMOUNT, channel=PaymentChannel.WECHAT)
    return backend


async def test_abnormal_goes_to_a_person_and_the_abnormal_refund_settles_it(
    env: WorkflowEnvironment,
) -> None:
    async with running_refund(env, wechat_abnormal, name="abnormal_rescued") as refund:
        body = await refund.wait_for_status(RefundStatus.NEEDS_ATTENTION)
        assert "ABNORMAL" in body.timeline[-1].detail
        assert refund.backend.called("query_payout") == []

        # Paying elsewhere needs a person's reason: refused before anything reaches the workflow.
        with pytest.raises(ValueError):
            resolve(ResolveAction.PAY_TO_BALANCE)
        body = await resolve_now(
            refund,
            resolve(
                ResolveAction.ABNORMAL_REFUND,
                to=AbnormalRefundTarget.MERCHANT_BANK_CARD,
                note="buyer's card closed",
            ),
        )  # type: ignore[assignment]
        rescue = refund.backend.called("rescue_abnormal_payout")
        assert [r.to for r in rescue] == ["MERCHANT_BANK_CARD"]
        body = await refund.result()

        assert body.status is RefundStatus.REFUNDED
        assert gateway_refunds(refund.backend) == [(1, PaymentChannel.WECHAT)]
        stages = [e.stage for e in body.timeline]
        assert stages.index("needs_attention") < stages.index("abnormal_refund_requested")
        assert stages.index("attention_resolved") < stages.index("money_arrived")
        audit = [e for r in refund.backend.reports for e in r.audit]
        assert any(e.action == "refund.resolve.abnormal_refund" for e in audit)


async def test_gateway_notification_after_abnormal_is_believed_only_by_query(
    env: WorkflowEnvironment,
) -> None:
    async with running_refund(env, wechat_abnormal, name="abnormal_notified") as refund:
        body = await refund.wait_for_status(RefundStatus.NEEDS_ATTENTION)
        no = body.payouts[0].out_refund_no
        # The merchant sorted it out in WeChat's console; WeChat announces REFUND.SUCCESS.
        await refund.handle.signal(
            RefundWorkflow.on_gateway_notification,
            GatewayNotice(out_refund_no=no, state="succeeded"),
        )
        body = await refund.result()
        assert body.status is RefundStatus.REFUNDED
        assert len(refund.backend.called("query_payout")) == 1
        assert gateway_refunds(refund.backend) == [(1, PaymentChannel.WECHAT)]


async def test_resolve_is_refused_when_nothing_awaits_it(env: WorkflowEnvironment) -> None:
    scenario = gateway(PayoutState.UNKNOWN, then=PayoutState.UNKNOWN)
    async with running_refund(env, scenario, name="resolve_refused") as refund:
        await refund.wait_for(lambda b: bool(b.payouts))
        # Not in needs_attention yet: the workflow's validator refuses, history records nothing.
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await resolve_now(refund, resolve(ResolveAction.VERIFY))
        assert "not needs_attention" in str(refused.value.cause)

        await env.sleep(timedelta(minutes=70))
        await refund.wait_for_status(RefundStatus.NEEDS_ATTENTION)
        # An abnormal refund is only for ABNORMAL payouts; this one is merely unverified.
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await resolve_now(
                refund,
                resolve(ResolveAction.ABNORMAL_REFUND, to=AbnormalRefundTarget.MERCHANT_BANK_CARD),
            )
        assert "not abnormal" in str(refused.value.cause)
        assert refund.backend.called("rescue_abnormal_payout") == []


async def test_a_person_may_abandon_the_route_and_pay_to_balance(
    env: WorkflowEnvironment,
) -> None:
    scenario = gateway(PayoutState.UNKNOWN, then=PayoutState.UNKNOWN)
    async with running_refund(env, scenario, name="abandoned_to_balance") as refund:
        await refund.wait_for(lambda b: bool(b.payouts))
        await env.sleep(timedelta(minutes=70))
        await refund.wait_for_status(RefundStatus.NEEDS_ATTENTION)
        await resolve_now(
            refund,
            resolve(
                ResolveAction.PAY_TO_BALANCE,
                note="Alipay console shows no refund under this number; app key revoked",
            ),
        )
        body = await refund.result()

        assert body.status is RefundStatus.REFUNDED
        assert gateway_refunds(refund.backend) == [
            (1, PaymentChannel.ALIPAY),
            (2, PaymentChannel.BALANCE),
        ]
        (abandoned,) = refund.backend.called("abandon_payout")
        assert abandoned.operator == "sre-li" and "no refund" in abandoned.note
        assert [p.state for p in body.payouts] == [PayoutState.FAILED, PayoutState.SUCCEEDED]


async def test_processing_past_the_policy_limit_asks_a_person(env: WorkflowEnvironment) -> None:
    def slow(now: datetime) -> FakeBackend:
        backend = gateway(PayoutState.PROCESSING, then=PayoutState.PROCESSING)(now)
        backend.policy = DEFAULT_POLICY.model_copy(
            update={"payouts": PayoutPolicy(processing_limit_minutes=30)}
        )
        return backend

    async with running_refund(env, slow, name="processing_overdue") as refund:
        await refund.wait_for(lambda b: bool(b.payouts))
        await env.sleep(timedelta(minutes=45))
        body = await refund.wait_for_status(RefundStatus.NEEDS_ATTENTION)
        assert "still processing" in body.timeline[-1].detail
        assert gateway_refunds(refund.backend) == [(1, PaymentChannel.ALIPAY)]
        # Processing is trusted, so nothing but time was wrong: it settles later.
        refund.backend.settles_to = PayoutState.SUCCEEDED
        await resolve_now(refund, resolve(ResolveAction.VERIFY))
        body = await refund.result()
        assert body.status is RefundStatus.REFUNDED
