"""The pre-check (智能预检, seed 003): before a buyer asks for a refund, what would likely
happen and what to try first. It takes what `POST /v1/refunds` takes and creates nothing but
a count (the reports' deflection figures): the decision is the rules engine's, replayed by
`ops.explain` exactly as the refund's workflow would decide it."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request

from api import intake
from api.deps import Platform, ReadSessionDep, SessionDep
from api.openapi import problem_responses
from api.problems import Problem
from domain.model import utcnow
from domain.precheck import PrecheckAnswer, outcome_of, self_help_for
from domain.refund import RefundRequest
from domain.types import OrderStatus
from ops.explain import ExplainRequest, explain
from store import orders
from store import refunds as refund_rows
from store.prechecks import record_precheck

router = APIRouter(prefix="/v1/refunds", tags=["refunds"])


@router.post(
    "/precheck",
    response_model=PrecheckAnswer,
    summary="Before the buyer asks: the likely outcome, and what to try first",
    description="Takes what `POST /v1/refunds` takes and creates nothing: it replays the "
    "decision the refund would get (the rules, the risk, the supplier's word on the keys; "
    "the same function as `POST /v1/admin/explain`) and answers the likely `outcome` — "
    "`automatic`, `review` (a person decides), `no` or `support` (help first) — with the "
    "rule, its explanation in English and Chinese, the amount, and the policy's self-help "
    "steps for the product types asked about. An order that is not this buyer's is a 404, "
    "as an unknown one; what `POST /v1/refunds` would refuse (a refund already open, nothing "
    "left to refund, an unknown item) it refuses the same way. Each pre-check is counted "
    "(reports: `prechecks`, followed by a refund or not).",
    responses=problem_responses(404, 409),
)
async def precheck_refund(
    body: RefundRequest,
    request: Request,
    session: SessionDep,
    reads: ReadSessionDep,
    caller: Platform,
) -> PrecheckAnswer:
    order = await orders.load_order(reads, body.order_id)
    if order is None or order.buyer_id != body.buyer_id:
        # Someone else's order is unknown to this buyer: no hint that it exists.
        raise Problem(
            404,
            "not-found",
            "Unknown order",
            f"no order {body.order_id} of buyer {body.buyer_id}",
            errors=[{"field": "order_id", "message": "unknown order"}],
        )
    if order.status is OrderStatus.CANCELLED:
        raise Problem(409, "order-cancelled", "The order is cancelled", "nothing to refund")
    intake.check_items(body, order)
    await intake.check_not_taken(reads, order, refund_rows.requested_items(body, order))
    policy = request.app.state.policy.get()
    replayed = await explain(
        reads,
        request.app.state.supplier,
        policy,
        ExplainRequest(
            order_id=body.order_id,
            reason=body.reason,
            reason_text=body.reason_text,
            items=body.items,
        ),
    )
    decision = replayed.decision
    answer = PrecheckAnswer(
        precheck_id="pc_" + secrets.token_hex(8),
        order_id=order.order_id,
        outcome=outcome_of(decision),
        rule=decision.rule,
        explanation=decision.explanation,
        explanation_zh=decision.explanation_zh,
        amount=decision.amount,
        currency=order.currency,
        destination=decision.destination,
        self_help=self_help_for(order, body.items, policy),
        policy_version=replayed.policy_version,
        replacement=replayed.replacement,
    )
    async with session.begin():
        await record_precheck(
            session,
            precheck_id=answer.precheck_id,
            caller=caller.key_id,
            order_id=order.order_id,
            buyer_id=body.buyer_id,
            reason=body.reason,
            outcome=answer.outcome.value,
            rule=answer.rule,
            amount=answer.amount,
            currency=answer.currency,
            now=utcnow(),
        )
    return answer
