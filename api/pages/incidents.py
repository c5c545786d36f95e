"""Incidents in the console (`/console/incidents`), for supervisors and admins: the list, the
"declare an incident" form, and one incident's page — its dry run, progress and final report,
and the buttons confirm / pause / resume / cancel.

Nothing here decides anything: declaring calls the API's own `declare`, the actions call the
API's own handlers (the IncidentWorkflow's Updates and their validators), reading calls the
API's own readers. The page only turns their answers — a refusal included — into words, and
the person acting is the one signed in, not a typed name."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ValidationError

from api.deps import Caller
from api.pages.auth import ConsoleUser, User, check_csrf
from api.pages.incident_form import DeclareForm, parse, refused_by_api
from api.pages.render import PageError, page
from api.problems import Problem
from api.routers import incident_actions
from api.routers import incidents as api
from domain.incident import SkipReason
from domain.incident_run import (
    ConfirmIncident,
    IncidentState,
    PauseIncident,
    ResumeIncident,
    StopIncident,
)
from domain.types import Destination, ProductType, Role

router = APIRouter(prefix="/console/incidents", include_in_schema=False)

PAGE_SIZE = 50
INCIDENT_ID = re.compile(r"^[A-Za-z0-9._:@\-]{1,128}$")
# States whose page keeps itself current (the workflow moves on without anyone acting).
MOVING = frozenset(
    {
        IncidentState.PLANNING,
        IncidentState.RUNNING,
        IncidentState.FINISHING,
        IncidentState.CANCELLING,
    }
)


def _supervisor(user: ConsoleUser) -> Caller:
    """Incidents are declared and run by supervisors and admins; the API sees the console
    person as an admin caller named after them (its audit records who it was)."""
    if not user.supervises:
        raise PageError(403, "err.forbidden", lang=user.lang, back="/console/queue")
    return Caller(key_id=f"console:{user.reviewer}", role=Role.ADMIN)


def _checked_id(incident_id: str, user: ConsoleUser) -> str:
    if not INCIDENT_ID.match(incident_id):
        raise PageError(404, "err.not_found", lang=user.lang, back="/console/incidents")
    return incident_id


@router.get("")
async def incident_list(request: Request, user: User) -> Response:
    caller = _supervisor(user)
    async with request.app.state.reads() as reads:
        listed = await api.list_incidents(reads, caller, limit=200)
    return page(
        "incidents.html",
        lang=user.lang,
        user=user,
        incidents=listed.incidents,
        flash=request.query_params.get("flash", ""),
        here="/console/incidents",
        nav="incidents",
    )


def _form_page(
    request: Request, user: ConsoleUser, form: DeclareForm, status: int = 200
) -> Response:
    limits = request.app.state.policy.get().incidents
    return page(
        "incident_new.html",
        lang=user.lang,
        status=status,
        user=user,
        form=form,
        limits=limits,
        product_types=[p.value for p in ProductType],
        destinations=[d.value for d in Destination],
        here="/console/incidents/new",
        nav="incidents",
    )


@router.get("/new")
async def declare_form(request: Request, user: User) -> Response:
    _supervisor(user)
    return _form_page(request, user, DeclareForm())


@router.post("")
async def declare(request: Request, user: User) -> Response:
    caller = _supervisor(user)
    sent = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    check_csrf(user, sent.pop("csrf", None))
    declaration, form = parse(sent, declared_by=user.reviewer)
    if declaration is None:
        return _form_page(request, user, form, status=422)
    response = Response()
    try:
        async with request.app.state.sessions() as session, request.app.state.reads() as reads:
            await api.declare(
                declaration,
                request,
                session,
                reads,
                request.app.state.temporal,
                request.app.state.settings,
                caller,
                response,
            )
    except Problem as problem:
        return _form_page(request, user, refused_by_api(form, problem), status=problem.status)
    flash = "redeclared" if response.status_code == 200 else "declared"
    return RedirectResponse(
        f"/console/incidents/{declaration.incident_id}?flash={flash}", status_code=303
    )


async def _render(
    request: Request,
    user: ConsoleUser,
    caller: Caller,
    incident_id: str,
    *,
    show: str = "all",
    after: int = 0,
    flash: str = "",
    refusal: Problem | None = None,
    status: int = 200,
) -> Response:
    skipped = {"refund": False, "skipped": True}.get(show)
    async with request.app.state.reads() as reads:
        try:
            view = await api.get_incident(incident_id, reads, caller)
        except Problem as missing:
            raise PageError(
                404, "err.no_incident", incident_id, lang=user.lang, back="/console/incidents"
            ) from missing
        lines = await api.incident_orders(
            incident_id, reads, caller, skipped=skipped, after=after, limit=PAGE_SIZE
        )
        report = (
            await api.incident_report(incident_id, reads, caller)
            if view.state not in (IncidentState.PLANNING, IncidentState.AWAITING_CONFIRMATION)
            else None  # nothing has moved before the confirmation: the dry run says it all
        )
    return page(
        "incident.html",
        lang=user.lang,
        status=status,
        user=user,
        v=view,
        d=view.declaration,
        report=report,
        lines=lines,
        show=show if skipped is not None else "all",
        after=after,
        moving=view.state in MOVING,
        mine=view.declaration.declared_by.casefold() == user.reviewer.casefold(),
        skip_reasons=[r.value for r in SkipReason],
        flash=flash,
        refusal=refusal,
        here=f"/console/incidents/{incident_id}",
        nav="incidents",
    )


@router.get("/{incident_id}")
async def incident_page(
    request: Request,
    incident_id: str,
    user: User,
    show: Annotated[str, Query(max_length=16)] = "all",
    after: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Response:
    caller = _supervisor(user)
    incident_id = _checked_id(incident_id, user)
    return await _render(
        request,
        user,
        caller,
        incident_id,
        show=show,
        after=after,
        flash=request.query_params.get("flash", ""),
    )


@router.get("/{incident_id}/live")
async def incident_live(
    request: Request, incident_id: str, user: User, state: str = ""
) -> Response:
    """What the page polls while the incident moves on its own: the progress in place, or a
    whole reload once the state changed (other buttons apply then)."""
    caller = _supervisor(user)
    incident_id = _checked_id(incident_id, user)
    async with request.app.state.reads() as reads:
        view = await api.get_incident(incident_id, reads, caller)
    if view.state.value != state:
        # The page as it now stands, without a flash about the action that led here.
        return Response(
            status_code=204, headers={"HX-Redirect": f"/console/incidents/{incident_id}"}
        )
    return page("_incident_progress.html", lang=user.lang, v=view, user=user)


Action = Callable[..., Awaitable[Any]]
ACTIONS: dict[str, tuple[Action, Callable[[str, str, float | None], BaseModel], str]] = {
    "confirm": (
        incident_actions.confirm,
        lambda by, note, _: ConfirmIncident(by=by, note=note),
        "confirmed",
    ),
    "pause": (
        incident_actions.pause,
        lambda by, note, _: PauseIncident(by=by, note=note),
        "paused",
    ),
    "resume": (
        incident_actions.resume,
        lambda by, _, rate: ResumeIncident(by=by, rate_per_second=rate),
        "resumed",
    ),
    "cancel": (
        incident_actions.cancel,
        lambda by, note, _: StopIncident(by=by, note=note),
        "cancelled",
    ),
}


@router.post("/{incident_id}/{action}")
async def act(
    request: Request,
    incident_id: str,
    action: str,
    user: User,
    csrf: Annotated[str, Form(max_length=128)] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
    rate_per_second: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    caller = _supervisor(user)
    check_csrf(user, csrf)
    incident_id = _checked_id(incident_id, user)
    if action not in ACTIONS:
        raise PageError(404, "err.not_found", action, lang=user.lang, back="/console/incidents")
    handler, build, done = ACTIONS[action]
    try:
        rate = float(rate_per_second) if rate_per_second.strip() else None
        req = build(user.reviewer, note.strip(), rate)
    except (ValueError, ValidationError):
        refusal = Problem(422, "invalid-rate", "", "rate_per_second: a number above 0")
        return await _render(request, user, caller, incident_id, refusal=refusal, status=422)
    response = Response()
    try:
        async with request.app.state.sessions() as session, request.app.state.reads() as reads:
            on_incident = incident_actions.IncidentAction(
                incident_id, session, reads, request.app.state.temporal, caller, response
            )
            await handler(req, on_incident)
    except Problem as refused:
        # Shown beside the incident as it stands now, not as an error page.
        return await _render(
            request, user, caller, incident_id, refusal=refused, status=refused.status
        )
    if response.status_code == 202:
        done = "pending"
    return RedirectResponse(f"/console/incidents/{incident_id}?flash={done}", status_code=303)
