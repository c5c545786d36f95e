"""Callbacks from payment gateways. Not bearer-authenticated: the gateway's signature is the
authentication, and a forged or replayed notification changes nothing."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from temporalio.service import RPCError

from api.deps import ReadSessionDep, TemporalDep
from api.openapi import problem_responses
from domain.types import PayoutState
from peers.payouts import GatewayError
from store.models import PayoutRow
from workflows.messages import GatewayNotice

# Payouts whose workflow waits for the gateway (querying with back-off, or a person): a
# verified notification wakes it to ask the gateway at once.
WAITING = frozenset({PayoutState.PROCESSING, PayoutState.UNKNOWN, PayoutState.ABNORMAL})

router = APIRouter(prefix="/v1/gateways", tags=["gateways"])


class GatewayAnswer(BaseModel):
    """WeChat Pay's own answer shape: a non-2xx makes it retry."""

    code: str
    message: str


def _answer(description: str) -> dict[str, Any]:
    return {"model": GatewayAnswer, "description": description}


@router.post(
    "/wechat/notify",
    summary="WeChat Pay refund notification (REFUND.SUCCESS/ABNORMAL/CLOSED)",
    response_model=GatewayAnswer,
    responses={
        401: _answer("Signature or body not verified: refused, changes nothing"),
        404: _answer("Unknown out_refund_no"),
        **problem_responses(413),
    },
)
async def wechat_notify(
    request: Request, session: ReadSessionDep, temporal: TemporalDep
) -> JSONResponse:
    raw = await request.body()
    try:
        notice = request.app.state.wechat.parse_notification(request.headers, raw)
    except (GatewayError, ValueError, KeyError) as err:
        # WeChat retries a non-2xx; a forged notification is simply refused.
        return JSONResponse(
            {"code": "FAIL", "message": f"rejected: {type(err).__name__}"}, status_code=401
        )
    payout = await session.get(PayoutRow, notice.out_refund_no)
    if payout is None:
        return JSONResponse({"code": "FAIL", "message": "unknown out_refund_no"}, status_code=404)
    if payout.state not in WAITING:
        # Settled already (the refund call answered SUCCESS, or a query got there first), or
        # the refund call is still in flight and its own answer will settle it: nothing waits
        # for the news, and waking the workflow would only cost it a task.
        return JSONResponse({"code": "SUCCESS", "message": "OK"})
    try:
        await temporal.get_workflow_handle(f"refund-{payout.refund_id}").signal(
            "gateway_notification",
            GatewayNotice(
                out_refund_no=notice.out_refund_no,
                state=notice.state.value,
                gateway_refund_id=notice.refund_id,
            ),
        )
    except RPCError:
        pass  # the refund already finished: nothing waits for this news, and that is fine
    return JSONResponse({"code": "SUCCESS", "message": "OK"})
