"""What people do to an incident — confirm (a second person), pause, resume, cancel — as
Updates of its IncidentWorkflow, judged by their validators (`domain.incident_run`), as a
refund's approve and reject are: a refusal is a 409 with the reason and the state now."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

from api.deps import Admin, ReadSessionDep, SessionDep, TemporalDep
from api.openapi import problem_responses
from api.problems import Problem
from api.routers.incidents import incident_row
from domain.incident import workflow_id_for_incident
from domain.incident_run import (
    ConfirmIncident,
    IncidentView,
    PauseIncident,
    ResumeIncident,
    StopIncident,
)
from domain.model import Identifier, utcnow
from store import audit
from workflows.incident import IncidentWorkflow

router = APIRouter(prefix="/v1/incidents", tags=["incidents"])


# --- people's actions: Updates, judged by the workflow's validators -------------------------


async def _act(
    temporal: Client,
    session: Any,
    reads: Any,
    incident_id: str,
    update: UpdateMethodMultiParam[[IncidentWorkflow, Any], IncidentView],
    req: ConfirmIncident | PauseIncident | ResumeIncident | StopIncident,
    *,
    name: str,
    caller: str,
) -> IncidentView:
    row = await incident_row(reads, incident_id)
    handle = temporal.get_workflow_handle_for(
        IncidentWorkflow.run, workflow_id_for_incident(incident_id)
    )
    try:
        view: IncidentView = await handle.execute_update(update, req)
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        details = cause.details[0] if isinstance(cause, ApplicationError) and cause.details else {}
        reason = cause.message if isinstance(cause, ApplicationError) else str(cause)
        field = details.get("field") if isinstance(details, dict) else None
        raise Problem(
            409,
            str(details.get("problem") or "wrong-state")
            if isinstance(details, dict)
            else "wrong-state",
            "The incident does not accept this now",
            reason,
            errors=[{"field": field, "message": reason}] if field else None,
            status_now=row.state.value,
        ) from err
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            raise Problem(
                409,
                "incident-closed",
                "The incident no longer accepts this",
                f"incident {incident_id} is {row.state.value}",
                status_now=row.state.value,
            ) from err
        raise Problem(
            503,
            "temporal-unavailable",
            "Try again shortly",
            err.message,
            headers={"Retry-After": "5"},
        ) from err
    now = utcnow()
    async with session.begin():
        await audit.append(
            session,
            event_key=f"incident:{incident_id}:{name}:{now.isoformat()}",
            actor=f"admin:{req.by}",
            action=f"incident.{name}",
            subject=f"incident:{incident_id}",
            payload={**req.model_dump(mode="json"), "api_key": caller},
            at=now,
        )
    return view


ACTION_RESPONSES = problem_responses(404, 409, 503)


@router.post(
    "/{incident_id}/confirm",
    summary="A second person confirms the dry run: refunds start",
    description="Refused (409) before the dry run is done, once confirmed, and for the "
    "person who declared the incident.",
    responses=ACTION_RESPONSES,
)
async def confirm(
    incident_id: Identifier,
    req: ConfirmIncident,
    session: SessionDep,
    reads: ReadSessionDep,
    temporal: TemporalDep,
    caller: Admin,
) -> IncidentView:
    return await _act(
        temporal,
        session,
        reads,
        incident_id,
        IncidentWorkflow.confirm,
        req,
        name="confirm",
        caller=caller.key_id,
    )


@router.post(
    "/{incident_id}/pause",
    summary="Stop starting refunds until resumed (those started go on)",
    responses=ACTION_RESPONSES,
)
async def pause(
    incident_id: Identifier,
    req: PauseIncident,
    session: SessionDep,
    reads: ReadSessionDep,
    temporal: TemporalDep,
    caller: Admin,
) -> IncidentView:
    return await _act(
        temporal,
        session,
        reads,
        incident_id,
        IncidentWorkflow.pause,
        req,
        name="pause",
        caller=caller.key_id,
    )


@router.post(
    "/{incident_id}/resume",
    summary="Start refunds again (optionally at another rate)",
    responses=ACTION_RESPONSES,
)
async def resume(
    incident_id: Identifier,
    req: ResumeIncident,
    session: SessionDep,
    reads: ReadSessionDep,
    temporal: TemporalDep,
    caller: Admin,
) -> IncidentView:
    return await _act(
        temporal,
        session,
        reads,
        incident_id,
        IncidentWorkflow.resume,
        req,
        name="resume",
        caller=caller.key_id,
    )


@router.post(
    "/{incident_id}/cancel",
    summary="Start no more refunds; those already started finish (never one paying)",
    responses=ACTION_RESPONSES,
)
async def cancel(
    incident_id: Identifier,
    req: StopIncident,
    session: SessionDep,
    reads: ReadSessionDep,
    temporal: TemporalDep,
    caller: Admin,
) -> IncidentView:
    return await _act(
        temporal,
        session,
        reads,
        incident_id,
        IncidentWorkflow.cancel,
        req,
        name="cancel",
        caller=caller.key_id,
    )
