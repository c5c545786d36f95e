"""What people do to an incident — confirm (a second person), pause, resume, cancel — as
Updates of its IncidentWorkflow, judged by their validators (`domain.incident_run`), as a
refund's approve and reject are: a refusal is a 409 with the reason and the state now."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from temporalio.client import (
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

from api.deps import Admin, ReadSessionDep, SessionDep, TemporalDep
from api.openapi import problem_responses
from api.problems import Problem, temporal_unavailable
from api.routers.incidents import incident_row, live_view
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

# How long an action waits for the workflow to carry it out before answering 202.
UPDATE_WAIT_SECONDS = 10.0


# --- people's actions: Updates, judged by the workflow's validators -------------------------


class IncidentAction:
    """What every action on an incident takes — the incident, both sessions, Temporal, the
    caller and the response — resolved once by FastAPI, so each route is its Update and its
    typed body (kept in the OpenAPI schema)."""

    def __init__(
        self,
        incident_id: Identifier,
        session: SessionDep,
        reads: ReadSessionDep,
        temporal: TemporalDep,
        caller: Admin,
        response: Response,
    ) -> None:
        self.incident_id = incident_id
        self.session, self.reads, self.temporal = session, reads, temporal
        self.caller = caller.key_id
        self.response = response

    async def run(
        self,
        update: UpdateMethodMultiParam[[IncidentWorkflow, Any], IncidentView],
        req: ConfirmIncident | PauseIncident | ResumeIncident | StopIncident,
        *,
        name: str,
    ) -> IncidentView:
        temporal, session, reads = self.temporal, self.session, self.reads
        incident_id, caller, response = self.incident_id, self.caller, self.response
        row = await incident_row(reads, incident_id)
        handle = temporal.get_workflow_handle_for(
            IncidentWorkflow.run, workflow_id_for_incident(incident_id)
        )
        view: IncidentView | None = None
        accepted = False
        try:
            # Accepted means the validator said yes and history holds the request (a refusal
            # comes out of `result()`); the answer follows once the workflow carried it out.
            pending = await handle.start_update(
                update, req, wait_for_stage=WorkflowUpdateStage.ACCEPTED
            )
            accepted = True
            view = await asyncio.wait_for(pending.result(), UPDATE_WAIT_SECONDS)
        except TimeoutError:
            pass  # accepted, still being carried out
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            details = (
                cause.details[0] if isinstance(cause, ApplicationError) and cause.details else {}
            )
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
        except WorkflowUpdateRPCTimeoutOrCancelledError as err:
            if accepted:
                view = None  # taken; its answer is late
            else:
                raise Problem(
                    503,
                    "incident-not-answering",
                    "The incident did not answer in time",
                    "no worker answered in time; the request may still be carried out: read "
                    "the incident (GET) before repeating it",
                    headers={"Retry-After": "5"},
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
            raise temporal_unavailable(err.message) from err
        if view is None:  # accepted, still being carried out: what the database shows now
            response.status_code = 202
            await reads.rollback()
            view = await live_view(reads, await incident_row(reads, incident_id))
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


Action = Annotated[IncidentAction, Depends()]


ACTION_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"description": "Accepted, still being carried out: the incident as stored now"},
    **problem_responses(404, 409, 503),
}


@router.post(
    "/{incident_id}/confirm",
    summary="A second person confirms the dry run: refunds start",
    description="Refused (409) before the dry run is done, once confirmed, and for the "
    "person who declared the incident.",
    responses=ACTION_RESPONSES,
)
async def confirm(req: ConfirmIncident, action: Action) -> IncidentView:
    return await action.run(IncidentWorkflow.confirm, req, name="confirm")


@router.post(
    "/{incident_id}/pause",
    summary="Stop starting refunds until resumed (those started go on)",
    responses=ACTION_RESPONSES,
)
async def pause(req: PauseIncident, action: Action) -> IncidentView:
    return await action.run(IncidentWorkflow.pause, req, name="pause")


@router.post(
    "/{incident_id}/resume",
    summary="Start refunds again (optionally at another rate)",
    responses=ACTION_RESPONSES,
)
async def resume(req: ResumeIncident, action: Action) -> IncidentView:
    return await action.run(IncidentWorkflow.resume, req, name="resume")


@router.post(
    "/{incident_id}/cancel",
    summary="Start no more refunds; those already started finish (never one paying)",
    responses=ACTION_RESPONSES,
)
async def cancel(req: StopIncident, action: Action) -> IncidentView:
    return await action.run(IncidentWorkflow.cancel, req, name="cancel")
