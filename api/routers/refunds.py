"""Refunds: the buyer's click, what happened since, and what buyers and reviewers may do."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from starlette.background import BackgroundTask
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from api import intake, streams
from api.deps import (
    Platform,
    PlatformOrReviewer,
    ReadSessionDep,
    ReadSessionsDep,
    Reviewer,
    SessionDep,
    SettingsDep,
    StreamSlotsDep,
    TemporalDep,
    WatchDep,
)
from api.openapi import problem_responses
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
    refundable_now,
)
from domain.types import RefundStatus
from store import refunds as refund_rows

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
    responses={
        200: {"model": RefundAccepted, "description": "A repeat of an earlier request"},
        **problem_responses(403, 404, 409, 503),
    },
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


@router.get("/{refund_id}", summary="Where a refund stands", responses=problem_responses(404))
async def get_refund(
    refund_id: Identifier, session: ReadSessionDep, _: PlatformOrReviewer
) -> RefundBody:
    return await _body(session, refund_id)


# SSE ids are timeline positions; a refund's timeline is far shorter than this.
MAX_EVENT_ID = 1_000_000


@router.get(
    "/{refund_id}/events",
    summary="Timeline entries as text/event-stream until a terminal status",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "`id:` (the entry's position), `event: timeline`, `data:` (JSON) "
            "per entry; `event: end` at a terminal status; `:` comments keep it alive",
            "content": {"text/event-stream": {"itemSchema": streams.EVENT_SCHEMA}},
        },
        **problem_responses(404, 429),
    },
)
async def refund_events(
    refund_id: Identifier,
    sessions: ReadSessionsDep,
    watch: WatchDep,
    slots: StreamSlotsDep,
    settings: SettingsDep,
    caller: PlatformOrReviewer,
    last_event_id: Annotated[
        int | None,
        Header(
            alias="Last-Event-ID",
            ge=0,
            le=MAX_EVENT_ID,
            description="resume after this entry (sent back by SSE clients on reconnect)",
        ),
    ] = None,
) -> StreamingResponse:
    # A short session for the 404 check: the stream itself holds none while it waits.
    async with sessions() as session:
        await _body(session, refund_id)
    slot = slots.take(caller.key_id)
    stream = streams.refund_events(
        refund_id,
        reads=sessions,
        watch=watch,
        slot=slot,
        after=last_event_id or 0,
        lifetime=settings.stream_max_seconds,
        keep_alive=settings.stream_keepalive_seconds,
    )
    # The stream gives its slot back when it ends; the background task covers a client gone
    # before the stream ever started.
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache"},
        background=BackgroundTask(slot.release),
    )


def _handle(temporal: Client, body: RefundBody) -> WorkflowHandle[Any, Any]:
    return temporal.get_workflow_handle(body.workflow_id)


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
    responses=problem_responses(404, 409),
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
    responses=problem_responses(403, 404, 409),
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
    responses=problem_responses(403, 404, 409),
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
    responses=problem_responses(404, 409),
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
    responses=problem_responses(404, 409),
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
