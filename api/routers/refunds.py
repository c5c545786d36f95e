"""Refunds: the buyer's click, what happened since, and what buyers and reviewers may do."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.background import BackgroundTask
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateStage,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

from api import intake, streams
from api.deps import (
    Admin,
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
from api.problems import Problem, field_error, temporal_unavailable
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
    RemedyRequest,
    ResolveRequest,
)
from domain.types import RefundStatus
from store import refunds as refund_rows
from workflows.refund import RefundWorkflow

router = APIRouter(prefix="/v1/refunds", tags=["refunds"])

# How long a request waits for the workflow to carry out a person's action (a resolution
# may call a gateway) before it answers 202 "accepted, under way".
UPDATE_WAIT_SECONDS = 15.0


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
    incident_id: Annotated[
        Identifier | None, Query(description="only the refunds this incident started")
    ] = None,
) -> RefundPage:
    try:
        rows, next_cursor = await refund_rows.list_refunds(
            session,
            order_id=order_id,
            buyer_id=buyer_id,
            status=status,
            limit=limit,
            cursor=cursor,
            incident_id=incident_id,
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


@router.get(
    "/{refund_id}",
    summary="Where a refund stands",
    response_model=RefundBody,
    responses=problem_responses(404),
)
async def get_refund(
    refund_id: Identifier, session: ReadSessionDep, _: PlatformOrReviewer
) -> Response:
    # The body as the workflow last reported it, served as stored: one primary-key read and
    # no model round trip (status polls are most of the API's load). Before the first
    # report, the refund as intake stored it.
    document = await refund_rows.reported_document(session, refund_id)
    if document is None:
        document = (await _body(session, refund_id)).model_dump_json()
    return Response(document, media_type="application/json")


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


def _handle(temporal: Client, body: RefundBody) -> WorkflowHandle[RefundWorkflow, RefundBody]:
    return temporal.get_workflow_handle_for(RefundWorkflow.run, body.workflow_id)


async def _buyers_action(
    session: AsyncSession,
    temporal: Client,
    refund_id: str,
    update: UpdateMethodMultiParam[[RefundWorkflow, Any], Any],
    req: CancelRequest | AppealRequest | RemedyRequest,
) -> RefundAccepted:
    """What only the refund's own buyer may do (the platform acts for them), as an Update."""
    body = await _body(session, refund_id)
    _buyers_own(body, req.buyer_id)
    return _accepted(body, await _update(temporal, body, update, req))


async def _update(
    temporal: Client,
    body: RefundBody,
    update: UpdateMethodMultiParam[[RefundWorkflow, Any], Any],
    req: BaseModel,
    *,
    wait: float = UPDATE_WAIT_SECONDS,
) -> RefundBody | None:
    """Deliver a person's request as an Update: the workflow's validator is the only judge
    of what the refund accepts now, and its refusal becomes the answer. Returns the refund
    once the workflow has carried the request out, or None when that takes longer than
    `wait` seconds (accepted, still under way)."""
    try:
        pending = await _handle(temporal, body).start_update(
            update, req, wait_for_stage=WorkflowUpdateStage.ACCEPTED
        )
        result: RefundBody = await asyncio.wait_for(pending.result(), wait)
    except TimeoutError:
        return None
    except WorkflowUpdateFailedError as err:
        raise _refused(body, err.cause) from err
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:  # the workflow finished: nothing waits
            raise Problem(
                409,
                "refund-closed",
                "The refund no longer accepts this",
                f"refund {body.refund_id} is {body.status.value}",
                status_now=body.status.value,
            ) from err
        raise temporal_unavailable(err.message) from err
    return result


def _accepted(before: RefundBody, after: RefundBody | None) -> RefundAccepted:
    return accepted(before.refund_id, (after or before).status)


def _refused(body: RefundBody, cause: BaseException | None) -> Problem:
    """The workflow's refusal (`domain.acceptance.Refusal`, carried in the failure's
    details) as problem+json: the buyer's identity 403, a bad amount 422, else 409."""
    details = cause.details[0] if isinstance(cause, ApplicationError) and cause.details else {}
    reason = cause.message if isinstance(cause, ApplicationError) else str(cause)
    problem = str(details.get("problem") or "wrong-status")
    field = details.get("field")
    errors = [{"field": field, "message": reason}] if field else None
    if problem == "not-your-refund":
        return Problem(403, problem, "This buyer did not ask for this refund", errors=errors)
    if problem == "invalid-amount":
        return Problem(422, problem, "Invalid amount", reason, errors=errors)
    return Problem(
        409, problem, "The refund does not accept this now", reason, status_now=body.status.value
    )


@router.post(
    "/{refund_id}/evidence",
    status_code=202,
    response_model_by_alias=True,
    summary="Add evidence while the refund is open",
    responses=problem_responses(404, 409, 503),
)
async def add_evidence(
    refund_id: Identifier,
    req: EvidenceRequest,
    session: ReadSessionDep,
    temporal: TemporalDep,
    _: Platform,
) -> RefundAccepted:
    body = await _body(session, refund_id)
    return _accepted(body, await _update(temporal, body, RefundWorkflow.evidence, req))


@router.post(
    "/{refund_id}/cancel",
    status_code=202,
    response_model_by_alias=True,
    summary="The buyer withdraws the refund (until money starts to move)",
    responses=problem_responses(403, 404, 409, 503),
)
async def cancel(
    refund_id: Identifier,
    req: CancelRequest,
    session: ReadSessionDep,
    temporal: TemporalDep,
    _: Platform,
) -> RefundAccepted:
    return await _buyers_action(session, temporal, refund_id, RefundWorkflow.cancel, req)


@router.post(
    "/{refund_id}/appeal",
    status_code=202,
    response_model_by_alias=True,
    summary="Appeal a rejection, once",
    responses=problem_responses(403, 404, 409, 503),
)
async def appeal(
    refund_id: Identifier,
    req: AppealRequest,
    session: ReadSessionDep,
    temporal: TemporalDep,
    _: Platform,
) -> RefundAccepted:
    return await _buyers_action(session, temporal, refund_id, RefundWorkflow.appeal, req)


@router.post(
    "/{refund_id}/remedy",
    status_code=202,
    response_model_by_alias=True,
    summary="The buyer chooses money or a fresh card key (补发) while the refund waits",
    description='`{"buyer_id": ..., "remedy": "refund" | "replacement"}`: for an '
    "invalid key whose product offers a replacement (`replacement_offered`); it takes effect "
    "when the refund would pay (at once, or once a person approves). After the old key was "
    "voided or money started to move: 409.",
    responses=problem_responses(403, 404, 409, 503),
)
async def choose_remedy(
    refund_id: Identifier,
    req: RemedyRequest,
    session: ReadSessionDep,
    temporal: TemporalDep,
    _: Platform,
) -> RefundAccepted:
    return await _buyers_action(session, temporal, refund_id, RefundWorkflow.choose_remedy, req)


@router.post(
    "/{refund_id}/approve",
    status_code=202,
    response_model_by_alias=True,
    tags=["reviews"],
    summary="A reviewer approves (optionally a smaller amount)",
    responses=problem_responses(404, 409, 503),
)
async def approve(
    refund_id: Identifier,
    req: ApproveRequest,
    session: ReadSessionDep,
    temporal: TemporalDep,
    _: Reviewer,
) -> RefundAccepted:
    body = await _body(session, refund_id)
    return _accepted(body, await _update(temporal, body, RefundWorkflow.approve, req))


@router.post(
    "/{refund_id}/reject",
    status_code=202,
    response_model_by_alias=True,
    tags=["reviews"],
    summary="A reviewer rejects",
    responses=problem_responses(404, 409, 503),
)
async def reject(
    refund_id: Identifier,
    req: RejectRequest,
    session: ReadSessionDep,
    temporal: TemporalDep,
    _: Reviewer,
) -> RefundAccepted:
    body = await _body(session, refund_id)
    return _accepted(body, await _update(temporal, body, RefundWorkflow.reject, req))


@router.post(
    "/{refund_id}/resolve",
    tags=["reviews"],
    responses={
        202: {"model": RefundBody, "description": "Accepted; still being carried out"},
        **problem_responses(404, 409, 503),
    },
    summary="A supervisor resolves a refund that needs attention",
    description="For refunds in `needs_attention` (a gateway answered ABNORMAL, or its "
    "answers could not be verified in time): `verify` asks the gateway again with a signed "
    "query; `abnormal_refund` sends an ABNORMAL WeChat Pay refund to the buyer's bank card "
    "(`to: USER_BANK_CARD` with `bank_type`, `bank_account`, `real_name`, encrypted for the "
    "gateway before anything stores them) or the merchant's (`MERCHANT_BANK_CARD`); "
    "`pay_to_balance` records the person's word (`note`) that the original route moved no "
    "money and pays to the platform balance. Answers the refund once the action was carried "
    "out (202 with the refund as it stood when that takes longer than a few seconds); 409 "
    "when the refund is not awaiting this.",
)
async def resolve(
    refund_id: Identifier,
    req: ResolveRequest,
    request: Request,
    session: ReadSessionDep,
    temporal: TemporalDep,
    response: Response,
    _: Admin,
) -> RefundBody:
    body = await _body(session, refund_id)
    if req.bank_account or req.real_name:
        req = _encrypted_for_gateway(request, req)
    done = await _update(temporal, body, RefundWorkflow.resolve, req)
    if done is None:  # accepted; the gateway is slow to answer: follow the refund's page
        response.status_code = 202
        return body
    return done


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
