"""Refunds: the buyer's click, what happened since, and what buyers and reviewers may do."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from api import intake
from api.deps import (
    Admin,
    Platform,
    PlatformOrReviewer,
    ReadSessionDep,
    ReadSessionsDep,
    Reviewer,
    SessionDep,
    SettingsDep,
    TemporalDep,
)
from api.problems import Problem, field_error
from domain.model import Identifier
from domain.refund import (
    AppealRequest,
    ApproveRequest,
    CancelRequest,
    EvidenceRequest,
    RefundAccepted,
    RefundBody,
    RefundLinks,
    RefundRequest,
    RejectRequest,
    ResolveRequest,
    refundable_now,
)
from domain.types import RefundStatus
from store import refunds as refund_rows
from store.db import SessionFactory
from workflows.refund import RefundWorkflow

router = APIRouter(prefix="/v1/refunds", tags=["refunds"])

CANCELLABLE = {
    RefundStatus.SUBMITTED,
    RefundStatus.CHECKING,
    RefundStatus.PENDING_REVIEW,
    RefundStatus.APPROVED,
}


def accepted(refund_id: str, status: RefundStatus) -> RefundAccepted:
    return RefundAccepted(
        refund_id=refund_id,
        status=status,
        links=RefundLinks.model_validate({"self": f"/v1/refunds/{refund_id}"}),
    )


@router.post(
    "",
    status_code=202,
    response_model=RefundAccepted,
    response_model_by_alias=True,
    summary='The buyer clicked "apply for refund"',
)
async def create_refund(
    request: RefundRequest,
    session: SessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    caller: Platform,
    response: Response,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> RefundAccepted:
    if idempotency_key is None or not 1 <= len(idempotency_key) <= 255:
        raise field_error("Idempotency-Key", "required header, 1-255 characters", status=400)
    taken = await intake.take_refund(
        session,
        temporal,
        request=request,
        caller=caller.key_id,
        idempotency_key=idempotency_key,
        task_queue=settings.task_queue,
    )
    if not taken.created:
        response.status_code = 200
    return accepted(taken.refund_id, taken.status)


class RefundPage(BaseModel):
    refunds: list[RefundBody]
    next_cursor: str | None


@router.get("", summary="List refunds, newest first")
async def list_refunds(
    session: ReadSessionDep,
    _: PlatformOrReviewer,
    order_id: Identifier | None = None,
    buyer_id: Identifier | None = None,
    status: RefundStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> RefundPage:
    try:
        rows, next_cursor = await refund_rows.list_refunds(
            session, order_id=order_id, buyer_id=buyer_id, status=status, limit=limit, cursor=cursor
        )
    except (ValueError, TypeError):
        raise field_error("cursor", "not a cursor this service issued") from None
    bodies = [await refund_rows.load_body(session, r.refund_id) for r in rows]
    return RefundPage(refunds=[b for b in bodies if b is not None], next_cursor=next_cursor)


async def _body(session: Any, refund_id: str) -> RefundBody:
    body = await refund_rows.load_body(session, refund_id)
    if body is None:
        raise Problem(404, "not-found", "Unknown refund", f"no refund {refund_id}")
    return body


@router.get("/{refund_id}", summary="Where a refund stands")
async def get_refund(
    refund_id: Identifier, session: ReadSessionDep, _: PlatformOrReviewer
) -> RefundBody:
    return await _body(session, refund_id)


@router.get(
    "/{refund_id}/events",
    summary="Timeline entries as text/event-stream until a terminal status",
    response_class=StreamingResponse,
)
async def refund_events(
    refund_id: Identifier, session: ReadSessionDep, sessions: ReadSessionsDep, _: PlatformOrReviewer
) -> StreamingResponse:
    await _body(session, refund_id)
    return StreamingResponse(_stream(sessions, refund_id), media_type="text/event-stream")


async def _stream(sessions: SessionFactory, refund_id: str) -> AsyncIterator[bytes]:
    sent = 0
    while True:
        async with sessions() as session:
            body = await refund_rows.load_body(session, refund_id)
        if body is None:
            return
        for entry in body.timeline[sent:]:
            data = json.dumps(
                {**entry.model_dump(mode="json"), "status": body.status.value}, ensure_ascii=False
            )
            yield f"id: {sent + 1}\nevent: timeline\ndata: {data}\n\n".encode()
            sent += 1
        if body.status.is_terminal:
            yield f"event: end\ndata: {json.dumps({'status': body.status.value})}\n\n".encode()
            return
        await asyncio.sleep(0.5)


def _handle(temporal: Client, body: RefundBody) -> WorkflowHandle[RefundWorkflow, RefundBody]:
    return temporal.get_workflow_handle_for(RefundWorkflow.run, body.workflow_id)


async def _signal(temporal: Client, body: RefundBody, name: str, arg: BaseModel) -> None:
    try:
        await _handle(temporal, body).signal(name, arg)
    except RPCError as err:
        raise Problem(
            409,
            "refund-closed",
            "The refund no longer accepts this",
            f"workflow {body.workflow_id}: {err.message}",
            status_now=body.status.value,
        ) from err


def _not_now(body: RefundBody, what: str) -> Problem:
    return Problem(
        409,
        "wrong-status",
        f"Cannot {what} a refund that is {body.status.value}",
        f"refund {body.refund_id} is {body.status.value}",
        status_now=body.status.value,
    )


@router.post(
    "/{refund_id}/evidence",
    status_code=202,
    response_model_by_alias=True,
    summary="Add evidence while the refund is open",
)
async def add_evidence(
    refund_id: Identifier,
    req: EvidenceRequest,
    session: ReadSessionDep,
    temporal: TemporalDep,
    _: Platform,
) -> RefundAccepted:
    body = await _body(session, refund_id)
    if body.status.is_terminal:
        raise _not_now(body, "add evidence to")
    await _signal(temporal, body, "evidence", req)
    return accepted(refund_id, body.status)


@router.post(
    "/{refund_id}/cancel",
    status_code=202,
    response_model_by_alias=True,
    summary="The buyer withdraws the refund (until money starts to move)",
)
async def cancel(
    refund_id: Identifier,
    req: CancelRequest,
    session: ReadSessionDep,
    temporal: TemporalDep,
    _: Platform,
) -> RefundAccepted:
    body = await _body(session, refund_id)
    _buyers_own(body, req.buyer_id)
    live = await _live_status(temporal, body)
    if live not in CANCELLABLE:
        raise _not_now(body.model_copy(update={"status": live}), "cancel")
    await _signal(temporal, body, "cancel", req)
    return accepted(refund_id, live)


@router.post(
    "/{refund_id}/appeal",
    status_code=202,
    response_model_by_alias=True,
    summary="Appeal a rejection, once",
)
async def appeal(
    refund_id: Identifier,
    req: AppealRequest,
    session: ReadSessionDep,
    temporal: TemporalDep,
    _: Platform,
) -> RefundAccepted:
    body = await _body(session, refund_id)
    _buyers_own(body, req.buyer_id)
    if body.status is not RefundStatus.REJECTED:
        raise _not_now(body, "appeal")
    if body.review is not None and body.review.appealed:
        raise Problem(
            409,
            "already-appealed",
            "A rejection can be appealed once",
            status_now=body.status.value,
        )
    await _signal(temporal, body, "appeal", req)
    return accepted(refund_id, body.status)


@router.post(
    "/{refund_id}/approve",
    status_code=202,
    response_model_by_alias=True,
    tags=["reviews"],
    summary="A reviewer approves (optionally a smaller amount)",
)
async def approve(
    refund_id: Identifier,
    req: ApproveRequest,
    session: ReadSessionDep,
    temporal: TemporalDep,
    _: Reviewer,
) -> RefundAccepted:
    body = await _body(session, refund_id)
    await _in_review(temporal, body, "approve")
    refundable = refundable_now(body)
    if req.amount is not None and req.amount > refundable:
        raise field_error("amount", f"at most {refundable} is refundable")
    await _signal(temporal, body, "approve", req)
    return accepted(refund_id, body.status)


@router.post(
    "/{refund_id}/reject",
    status_code=202,
    response_model_by_alias=True,
    tags=["reviews"],
    summary="A reviewer rejects",
)
async def reject(
    refund_id: Identifier,
    req: RejectRequest,
    session: ReadSessionDep,
    temporal: TemporalDep,
    _: Reviewer,
) -> RefundAccepted:
    body = await _body(session, refund_id)
    await _in_review(temporal, body, "reject")
    await _signal(temporal, body, "reject", req)
    return accepted(refund_id, body.status)


@router.post(
    "/{refund_id}/resolve",
    tags=["reviews"],
    summary="A supervisor resolves a refund that needs attention",
    description="For refunds in `needs_attention` (a gateway answered ABNORMAL, or its "
    "answers could not be verified in time): `verify` asks the gateway again with a signed "
    "query; `abnormal_refund` sends an ABNORMAL WeChat Pay refund to the buyer's bank card "
    "(`to: USER_BANK_CARD` with `bank_type`, `bank_account`, `real_name`, encrypted for the "
    "gateway before anything stores them) or the merchant's (`MERCHANT_BANK_CARD`); "
    "`pay_to_balance` records the person's word (`note`) that the original route moved no "
    "money and pays to the platform balance. Answers the refund once the action was carried "
    "out; 409 when the refund is not awaiting this.",
)
async def resolve(
    refund_id: Identifier,
    req: ResolveRequest,
    request: Request,
    session: ReadSessionDep,
    temporal: TemporalDep,
    _: Admin,
) -> RefundBody:
    body = await _body(session, refund_id)
    if req.bank_account or req.real_name:
        req = _encrypted_for_gateway(request, req)
    try:
        # (The SDK types an async update as returning its coroutine: hence the ignore.)
        return await _handle(temporal, body).execute_update(
            RefundWorkflow.resolve,  # type: ignore[arg-type]
            req,
        )
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        detail = cause.message if isinstance(cause, ApplicationError) else str(err)
        raise Problem(
            409,
            "not-accepted",
            "The refund does not accept this now",
            detail,
            status_now=body.status.value,
        ) from err
    except RPCError as err:
        raise Problem(
            409,
            "refund-closed",
            "The refund no longer accepts this",
            f"workflow {body.workflow_id}: {err.message}",
            status_now=body.status.value,
        ) from err


def _encrypted_for_gateway(request: Request, req: ResolveRequest) -> ResolveRequest:
    """Bank details leave this process only encrypted for the gateway (RSA-OAEP under its
    key), so neither the workflow history nor any log holds them in clear text."""
    wechat = request.app.state.wechat
    account, serial = wechat.encrypt_sensitive(req.bank_account or "")
    name, _ = wechat.encrypt_sensitive(req.real_name or "")
    return req.model_copy(
        update={"bank_account": account, "real_name": name, "encrypted_with": serial}
    )


def _buyers_own(body: RefundBody, buyer_id: str) -> None:
    if buyer_id != body.buyer_id:
        raise Problem(
            403,
            "not-your-refund",
            "This buyer did not ask for this refund",
            errors=[{"field": "buyer_id", "message": "not the refund's buyer"}],
        )


async def _in_review(temporal: Client, body: RefundBody, what: str) -> None:
    """Approve and reject answer a person's question only while one is asked."""
    if await _live_status(temporal, body) is not RefundStatus.PENDING_REVIEW:
        raise _not_now(body, what)


async def _live_status(temporal: Client, body: RefundBody) -> RefundStatus:
    """The workflow's own view, which may be ahead of the database by one report."""
    if body.status.is_terminal:
        return body.status
    try:
        live: RefundBody = await _handle(temporal, body).query("status", result_type=RefundBody)
    except RPCError:
        return body.status
    return live.status
