"""The reviewer console's queue and the supervisors' view (`/console`).

The queue is most urgent first, filtered and searched in SQL, a keyset page at a time
(`store.queue`), refreshed in place every few seconds (htmx polling of the rows). "Next"
claims the most urgent case nobody holds, through the workflow's `claim` Update: if another
reviewer took it in the same instant, the validator refuses and the next one is tried."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from api.pages.auth import SUPERVISING, User, check_csrf
from api.pages.render import LOCAL, PageError, page
from api.updates import deliver
from domain.model import utcnow
from domain.refund import ClaimRequest, workflow_id_for
from domain.types import ProductType, RefundReason, RiskLevel
from store import console as accounts
from store import queue
from workflows.refund import RefundWorkflow

router = APIRouter(prefix="/console", include_in_schema=False)

PAGE_SIZE = 50
Text = Annotated[str, Query(max_length=128)]


def _enum(kind: Any, value: str) -> Any:
    try:
        return kind(value) if value else None
    except ValueError:
        return None


def queue_filter(
    user_reviewer: str,
    *,
    merchant: str = "",
    product_type: str = "",
    risk: str = "",
    reason: str = "",
    q: str = "",
    claim: str = "all",
) -> queue.QueueFilter:
    """The filter from the query string; a value that is not one of the words is ignored
    (a hand-edited URL shows the whole queue, never an error)."""
    return queue.QueueFilter(
        merchant_id=merchant.strip() or None,
        product_type=_enum(ProductType, product_type),
        risk_level=_enum(RiskLevel, risk),
        reason=_enum(RefundReason, reason),
        search=q.strip() or None,
        claim=claim if claim in ("mine", "unclaimed") else "all",  # type: ignore[arg-type]
        reviewer=user_reviewer,
    )


def _query(f: queue.QueueFilter, **change: str) -> str:
    """The query string of a filter, with some values changed (for the chips' links)."""
    values = {
        "merchant": f.merchant_id or "",
        "product_type": f.product_type.value if f.product_type else "",
        "risk": f.risk_level.value if f.risk_level else "",
        "reason": f.reason.value if f.reason else "",
        "q": f.search or "",
        "claim": f.claim if f.claim != "all" else "",
    }
    values.update(change)
    from urllib.parse import urlencode

    return urlencode({k: v for k, v in values.items() if v})


@router.get("")
async def console_home() -> Response:
    return RedirectResponse("/console/queue", status_code=303)


@router.get("/queue")
async def queue_page(
    request: Request,
    user: User,
    merchant: Text = "",
    product_type: Text = "",
    risk: Text = "",
    reason: Text = "",
    q: Text = "",
    claim: Text = "all",
    cursor: Annotated[str, Query(max_length=512)] = "",
) -> Response:
    f = queue_filter(
        user.reviewer,
        merchant=merchant,
        product_type=product_type,
        risk=risk,
        reason=reason,
        q=q,
        claim=claim,
    )
    now = utcnow()
    async with request.app.state.reads() as session:
        try:
            rows, next_cursor = await queue.queue_page(
                session, f, now=now, limit=PAGE_SIZE, cursor=cursor or None
            )
        except (ValueError, TypeError):  # not a cursor we made: start at the top
            rows, next_cursor = await queue.queue_page(session, f, now=now, limit=PAGE_SIZE)
            cursor = ""
        counts = await queue.queue_counts(session, now=now)
    context: dict[str, Any] = {
        "user": user,
        "rows": rows,
        "counts": counts,
        "f": f,
        "query": _query,
        "now": now,
        "cursor": cursor,
        "next_cursor": next_cursor,
        "flash": request.query_params.get("flash", ""),
        "here": str(request.url.path) + ("?" + request.url.query if request.url.query else ""),
        "nav": "queue",
    }
    template = "_queue_body.html" if "hx-request" in request.headers else "queue.html"
    return page(template, lang=user.lang, **context)


@router.post("/next")
async def take_next(
    request: Request,
    user: User,
    csrf: Annotated[str, Form(max_length=128)] = "",
    merchant: Annotated[str, Form(max_length=128)] = "",
    product_type: Annotated[str, Form(max_length=32)] = "",
    risk: Annotated[str, Form(max_length=32)] = "",
    reason: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    """Claim the most urgent case nobody holds; a lost race moves on to the next one."""
    check_csrf(user, csrf)
    f = queue_filter(
        user.reviewer, merchant=merchant, product_type=product_type, risk=risk, reason=reason
    )
    tried: set[str] = set()
    for _ in range(5):
        async with request.app.state.reads() as session:
            refund_id = await queue.next_unclaimed(session, f, reviewer=user.reviewer, now=utcnow())
        if refund_id is None or refund_id in tried:
            break
        tried.add(refund_id)
        outcome = await deliver(
            request.app.state.temporal,
            workflow_id_for(refund_id),
            RefundWorkflow.claim,
            ClaimRequest(reviewer=user.reviewer),
        )
        if outcome.taken:
            return RedirectResponse(f"/console/cases/{refund_id}?flash=claimed", status_code=303)
    return RedirectResponse("/console/queue?flash=none_left", status_code=303)


# ------------------------------------------------------------------ supervisors


def _day_start(now: datetime) -> datetime:
    local = now.astimezone(LOCAL)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


@router.get("/supervisor")
async def supervisor(request: Request, user: User) -> Response:
    if user.role not in SUPERVISING:
        raise PageError(403, "err.forbidden", lang=user.lang, back="/console/queue")
    now = utcnow()
    since = _day_start(now)
    async with request.app.state.reads() as session:
        load = await queue.claims_by_reviewer(session, now=now)
        decisions = await queue.decisions_since(session, since)
        escalations = await queue.overdue(session, now=now)
        counts = await queue.queue_counts(session, now=now)
        people = await accounts.list_accounts(session)
    approved = Counter(d.reviewer for d in decisions if d.action == "refund.approved")
    rejected = Counter(d.reviewer for d in decisions if d.action == "refund.rejected")
    on_time = sum(1 for d in decisions if d.deadline is None or d.at <= d.deadline)
    reviewers = sorted(
        {*load, *approved, *rejected, *(p.username for p in people if not p.disabled)}
    )
    return page(
        "supervisor.html",
        lang=user.lang,
        user=user,
        now=now,
        reviewers=reviewers,
        load=load,
        approved=approved,
        rejected=rejected,
        decided=len(decisions),
        on_time=on_time,
        sla_pct=round(100 * on_time / len(decisions)) if decisions else None,
        escalations=escalations,
        counts=counts,
        since=since,
        here="/console/supervisor",
        nav="supervisor",
    )
