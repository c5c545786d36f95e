"""Incidents (admin): refund every order a bad supplier batch or an outage hurt, first and on
the shop's own initiative — declared here, dry-run, confirmed by a second person, run at a
controlled pace. The IncidentWorkflow (`workflows/incident.py`) does the work; what people
may do is judged by its Updates' validators (`domain.incident`), as for refunds."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel

from api.deps import Admin, ReadSessionDep, SessionDep, SettingsDep, TemporalDep
from api.openapi import problem_responses
from api.problems import Problem, field_error
from domain.incident import (
    IncidentDeclaration,
    SkipReason,
    effective_rate,
    limit_refusal,
    selection_refusal,
    workflow_id_for_incident,
)
from domain.incident_run import (
    IncidentReport,
    IncidentState,
    IncidentStatus,
    IncidentView,
)
from domain.model import Identifier, utcnow
from domain.policy import CurrentPolicy
from domain.types import RefundStatus
from store import audit, incidents
from store.incident_rows import IncidentRow
from workflow_api.incidents import start_incident
from workflow_api.starter import StartFailed
from workflows.incident_messages import IncidentInput

router = APIRouter(prefix="/v1/incidents", tags=["incidents"])


def _view(row: IncidentRow, *, started: int | None = None) -> IncidentView:
    view = IncidentView.model_validate(
        {
            **(row.view or {}),
            "incident_id": row.incident_id,
            "declaration": row.declaration,
            "declared_at": row.created_at,
            "workflow_id": workflow_id_for_incident(row.incident_id),
        }
    )
    if started is not None:
        view.progress.started = max(view.progress.started, started)
    return view


async def live_view(session: Any, row: IncidentRow) -> IncidentView:
    """The incident as its workflow last reported it, with its refunds as they stand now."""
    view = _view(row)
    if view.state not in (IncidentState.PLANNING, IncidentState.AWAITING_CONFIRMATION):
        view.progress.outcomes = await incidents.outcomes(session, row.incident_id)
        view.progress.started = max(
            view.progress.started, await incidents.started_count(session, row.incident_id)
        )
    return view


async def incident_row(session: Any, incident_id: str) -> IncidentRow:
    row = await incidents.get(session, incident_id)
    if row is None:
        raise Problem(404, "not-found", "Unknown incident", f"no incident {incident_id}")
    return row


@router.post(
    "",
    status_code=202,
    response_model=IncidentView,
    summary="Declare an incident: its dry run starts at once",
    description="The selection names card keys (ids, or a supplier `batch_id`) or orders of "
    "a merchant / SKU / product type paid in [`paid_from`, `paid_until`). A selection "
    "matching no order, or above the policy's `incidents` limits without "
    "`override_limits: true`, is refused (422) and nothing is stored. The incident then "
    "lists what it would refund (`GET /v1/incidents/{id}` and `/orders`) and waits for a "
    "second person's `confirm` before any money moves. The same declaration again while "
    "the incident is open answers it (200); another body for an open incident is a 409; a "
    "declaration of an incident that ended runs it again, refunding nothing twice.",
    responses={
        200: {"model": IncidentView, "description": "A repeat of the declaration"},
        **problem_responses(409, 503),
    },
)
async def declare(
    declaration: IncidentDeclaration,
    request: Request,
    session: SessionDep,
    reads: ReadSessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    caller: Admin,
    response: Response,
) -> IncidentView:
    current: CurrentPolicy = request.app.state.policy
    limits = current.get().incidents
    rate = declaration.rate_per_second
    if rate is not None and rate > limits.max_rate_per_second:
        raise field_error(
            "rate_per_second",
            f"at most {limits.max_rate_per_second} (the policy's incidents.max_rate_per_second)",
        )
    incident_id = declaration.incident_id
    existing = await incidents.get(reads, incident_id)
    repeat = existing is not None and not existing.state.is_terminal
    if existing is not None and repeat:
        if existing.declaration_hash != incidents.declaration_hash(declaration):
            raise Problem(
                409,
                "incident-open",
                "This incident is open with another declaration",
                f"incident {incident_id} is {existing.state.value}; cancel it first, or "
                "declare another incident id",
                status_now=existing.state.value,
            )
    else:
        matched = await incidents.count_matching(reads, declaration.selection)
        refusal = selection_refusal(matched.orders) or limit_refusal(
            orders=matched.orders,
            amounts=matched.amounts,
            limits=limits,
            override=declaration.override_limits,
        )
        if refusal is not None:
            raise Problem(
                422,
                "incident-refused",
                "The incident is refused",
                refusal,
                errors=[{"field": "selection", "message": refusal}],
                matched_orders=matched.orders,
            )
    now = utcnow()
    if not repeat:
        async with session.begin():
            await incidents.declare(
                session,
                declaration,
                status=IncidentStatus(
                    state=IncidentState.PLANNING,
                    rate_per_second=effective_rate(rate, limits),
                    message="dry run: finding the orders the incident hurt",
                    updated_at=now,
                ),
                now=now,
            )
            await audit.append(
                session,
                event_key=f"incident:{incident_id}:declared:{now.isoformat()}",
                actor=f"admin:{declaration.declared_by}",
                action="incident.declared",
                subject=f"incident:{incident_id}",
                payload={**declaration.model_dump(mode="json"), "api_key": caller.key_id},
                at=now,
            )
    try:
        await start_incident(
            temporal,
            IncidentInput(declaration=declaration, declared_at=now),
            task_queue=settings.task_queue,
        )
    except StartFailed as failed:
        raise Problem(
            503,
            "temporal-unavailable",
            "Could not start the incident yet",
            "the declaration is recorded; repeat the same request to resume",
            headers={"Retry-After": "5"},
        ) from failed
    response.status_code = 200 if repeat else 202
    await reads.rollback()  # a fresh snapshot: the declaration was committed since
    return await live_view(reads, await incident_row(reads, incident_id))


class IncidentList(BaseModel):
    incidents: list[IncidentView]


@router.get("", summary="Incidents, the latest declared first")
async def list_incidents(
    session: ReadSessionDep,
    _: Admin,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> IncidentList:
    return IncidentList(
        incidents=[_view(r) for r in await incidents.list_incidents(session, limit=limit)]
    )


@router.get(
    "/{incident_id}",
    summary="Where an incident stands: its dry run, progress and refunds",
    response_model=IncidentView,
    responses=problem_responses(404),
)
async def get_incident(incident_id: Identifier, session: ReadSessionDep, _: Admin) -> IncidentView:
    return await live_view(session, await incident_row(session, incident_id))


class IncidentOrder(BaseModel):
    position: int
    order_id: str
    buyer_id: str
    amount: int
    currency: str
    items: list[dict[str, Any]]
    skip_reason: SkipReason | None
    skipped_at_start: bool
    refund_id: str | None
    refund_status: RefundStatus | None


class IncidentOrders(BaseModel):
    orders: list[IncidentOrder]
    next_after: int | None


@router.get(
    "/{incident_id}/orders",
    summary="The dry run's list: each matched order, refunded or skipped and why",
    responses=problem_responses(404),
)
async def incident_orders(
    incident_id: Identifier,
    session: ReadSessionDep,
    _: Admin,
    skipped: Annotated[
        bool | None, Query(description="only the skipped orders (true) or the others (false)")
    ] = None,
    after: Annotated[int, Query(ge=0, le=10_000_000, description="a page's next_after")] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> IncidentOrders:
    await incident_row(session, incident_id)
    lines = await incidents.order_lines(
        session, incident_id, after_position=after, limit=limit, skipped=skipped
    )
    return IncidentOrders(
        orders=[IncidentOrder.model_validate(line, from_attributes=True) for line in lines],
        next_after=lines[-1].position if len(lines) == limit else None,
    )


@router.get(
    "/{incident_id}/report",
    summary="What the incident did: refunded, failed, skipped, money, commissions",
    response_model=IncidentReport,
    responses=problem_responses(404),
)
async def incident_report(
    incident_id: Identifier, session: ReadSessionDep, _: Admin
) -> IncidentReport:
    await incident_row(session, incident_id)
    return await incidents.report(session, incident_id)
