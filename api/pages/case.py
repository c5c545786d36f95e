"""One case in the reviewer console (`/console/cases/{refund_id}`): everything a reviewer
needs on one screen, and the actions — claim, release, approve (full or partial), reject,
ask the buyer for evidence, re-check the card keys at the supplier, reassign (supervisors).

Each action is one Update on the refund's workflow (`api.updates.deliver`): the page shows
what the workflow answered — taken, or refused with its reason (another reviewer holds the
case, four eyes, the refund finished meanwhile) next to the case as it now stands."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ValidationError

from api.pages.auth import User, check_csrf
from api.pages.render import PageError, page
from api.pages.words import word
from api.updates import Outcome, deliver
from domain.acceptance import claim_holder
from domain.model import utcnow
from domain.refund import (
    ApproveRequest,
    ClaimRequest,
    EvidenceAsk,
    ReassignRequest,
    RecheckRequest,
    RefundBody,
    RejectRequest,
    ReleaseRequest,
    refundable_now,
)
from domain.types import KeyState
from domain.wording import KEY_CHECK_STAGES, read_keys
from store import console as accounts
from store import orders, queue
from store import refunds as refund_rows
from workflows.refund import RefundWorkflow

router = APIRouter(prefix="/console/cases", include_in_schema=False)

# Reasons reviewers give most often: picked, then added to (both shown to the buyer).
REJECT_TEMPLATES = {
    "zh": [
        "卡密已被使用，无法退款",
        "已超过退款时限",
        "课程/会员已使用超过可退比例",
        "凭证不足，无法确认问题",
        "商品与描述一致，不属于退款范围",
    ],
    "en": [
        "The card key was already redeemed",
        "The refund window has passed",
        "The course or membership was used beyond the refundable share",
        "The evidence does not show the problem",
        "The goods match their description",
    ],
}
REFUND_ID = re.compile(r"^[A-Za-z0-9._:@\-]{1,128}$")


def key_states(body: RefundBody) -> dict[str, tuple[KeyState | None, datetime]]:
    """Each card key's latest state from the timeline: what the supplier said at the check
    and every re-check (`domain.wording.describe_keys`' words), locked once voided."""
    states: dict[str, tuple[KeyState | None, datetime]] = {}
    for entry in body.timeline:
        if entry.stage in KEY_CHECK_STAGES:
            for key, state in read_keys(entry.detail).items():
                states[key] = (state, entry.at)
        elif entry.stage == "card_key_locked":
            for key in filter(None, entry.detail.split(", ")):
                states[key] = (KeyState.LOCKED, entry.at)
    return states


async def _case(request: Request, refund_id: str, lang: str) -> tuple[RefundBody, Any, Any]:
    if not REFUND_ID.match(refund_id):
        raise PageError(404, "err.not_found", lang=lang, back="/console/queue")
    async with request.app.state.reads() as session:
        body = await refund_rows.load_body(session, refund_id)
        if body is None:
            raise PageError(404, "err.not_found", refund_id, lang=lang, back="/console/queue")
        order = await orders.load_order(session, body.order_id)
        history = await queue.buyer_history(session, body.buyer_id)
    return body, order, history


async def _render(
    request: Request,
    user: Any,
    body: RefundBody,
    order: Any,
    history: Any,
    *,
    flash: str = "",
    refusal: Outcome | None = None,
    status: int = 200,
) -> Response:
    settings = request.app.state.settings
    policy = request.app.state.policy.get()
    now = utcnow()
    temporal_url = (
        f"{settings.temporal_ui_url.rstrip('/')}/namespaces/{settings.temporal_namespace}"
        f"/workflows/{body.workflow_id}"
    )
    age_days = None
    if history.first_order_at is not None:
        age_days = (now - history.first_order_at).days
    return page(
        "case.html",
        lang=user.lang,
        status=status,
        user=user,
        r=body,
        order=order,
        history=history,
        age_days=age_days,
        now=now,
        holder=claim_holder(body, now),
        refundable=refundable_now(body),
        four_eyes=policy.review.four_eyes_above_amount,
        keys=key_states(body),
        templates=REJECT_TEMPLATES[user.lang],
        temporal_url=temporal_url,
        flash=flash,
        refusal=refusal,
        reviewers=await _reviewers(request) if user.supervises else [],
        here=f"/console/cases/{body.refund_id}",
        nav="queue",
    )


async def _reviewers(request: Request) -> list[str]:
    """Whom a supervisor may give a case to: the console's active accounts."""
    async with request.app.state.reads() as session:
        people = await accounts.list_accounts(session)
    return [p.username for p in people if not p.disabled and p.role != "admin"]


@router.get("/{refund_id}")
async def case_page(request: Request, refund_id: str, user: User) -> Response:
    body, order, history = await _case(request, refund_id, user.lang)
    return await _render(
        request, user, body, order, history, flash=request.query_params.get("flash", "")
    )


@router.get("/{refund_id}/state")
async def case_state(request: Request, refund_id: str, user: User) -> Response:
    """What the page polls: has the case changed since it was drawn?"""
    async with request.app.state.reads() as session:
        body = await refund_rows.load_body(session, refund_id)
    if body is None:
        return JSONResponse({"status": None}, status_code=404)
    return JSONResponse(
        {
            "status": body.status.value,
            "status_words": word(f"status.{body.status.value}", user.lang),
            "terminal": body.status.is_terminal,
            "updated_at": body.updated_at.astimezone(UTC).isoformat(),
            "entries": len(body.timeline),
        },
        headers={"Cache-Control": "no-store"},
    )


def _fen(yuan: str) -> int | None:
    try:
        value = Decimal(yuan.strip().replace(",", "").lstrip("¥"))
    except (InvalidOperation, ValueError):
        return None
    fen = value * 100
    if fen != fen.to_integral_value() or fen <= 0 or fen > 10**11:
        return None
    return int(fen)


@router.post("/{refund_id}/{action}")
async def act(
    request: Request,
    refund_id: str,
    action: str,
    user: User,
    csrf: Annotated[str, Form(max_length=128)] = "",
    amount: Annotated[str, Form(max_length=32)] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
    template: Annotated[str, Form(max_length=200)] = "",
    text: Annotated[str, Form(max_length=2000)] = "",
    to: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    check_csrf(user, csrf)
    body, order, history = await _case(request, refund_id, user.lang)
    me = user.reviewer
    update: Any
    req: BaseModel
    try:
        if action == "claim":
            update, req, done = RefundWorkflow.claim, ClaimRequest(reviewer=me), "claimed"
        elif action == "release":
            update, req, done = RefundWorkflow.release, ReleaseRequest(reviewer=me), "released"
        elif action == "approve":
            fen = _fen(amount) if amount.strip() else refundable_now(body)
            if fen is None:
                return await _render(
                    request, user, body, order, history, flash="bad_amount", status=422
                )
            partial = fen if fen != refundable_now(body) else None
            update, done = RefundWorkflow.approve, "approved"
            req = ApproveRequest(reviewer=me, note=note.strip(), amount=partial)
        elif action == "reject":
            reason = "；".join(p for p in (template.strip(), text.strip()) if p)
            if not reason:
                return await _render(
                    request, user, body, order, history, flash="need_text", status=422
                )
            update, done = RefundWorkflow.reject, "rejected"
            req = RejectRequest(reviewer=me, reason=reason)
        elif action == "ask":
            if not text.strip():
                return await _render(
                    request, user, body, order, history, flash="need_text", status=422
                )
            update, done = RefundWorkflow.request_evidence, "asked"
            req = EvidenceAsk(reviewer=me, message=text.strip())
        elif action == "recheck":
            update, req, done = (
                RefundWorkflow.recheck_keys,
                RecheckRequest(reviewer=me),
                "rechecked",
            )
        elif action == "reassign" and user.supervises:
            update, done = RefundWorkflow.reassign, "reassigned"
            req = ReassignRequest(supervisor=me, to=to.strip())
        else:
            raise PageError(404, "err.not_found", action, lang=user.lang, back="/console/queue")
    except ValidationError:
        return await _render(request, user, body, order, history, flash="need_text", status=422)

    outcome = await deliver(request.app.state.temporal, body.workflow_id, update, req)
    if not outcome.taken:
        # Show the refusal beside the case as it stands now (it may have moved on).
        body, order, history = await _case(request, refund_id, user.lang)
        code = 503 if outcome.problem == "unavailable" else 409
        return await _render(request, user, body, order, history, refusal=outcome, status=code)
    if outcome.body is None:
        done = "pending"
    elif done == "approved" and outcome.body.review and outcome.body.review.first_approval:
        if outcome.body.review.first_approval.reviewer == me:
            done = "first_approval"  # four eyes: mine was the first of two
    back = "/console/queue?flash=" if action == "release" else f"/console/cases/{refund_id}?flash="
    return RedirectResponse(back + done, status_code=303)
