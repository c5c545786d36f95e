"""The buyer's progress page (`/r/{refund_id}?t=...`): mobile first, Chinese by default
(English by `Accept-Language` or `?lang=en`), live (it polls its own status), and the buyer's
actions — add evidence, cancel while allowed, appeal once, take a fresh card key instead of
the money where it is offered — through the same Updates the API
uses.

It shows only what is the buyer's: the status in words, the stages, when the money should
arrive, their items, their own evidence, what an agent asked or answered them. Never risk
signals, rules, reviewers' names or internal notes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from api.pages.buyer_notifications import ChannelChoice, choose_channels, preferences
from api.pages.render import PageError, local_time, page
from api.pages.words import pick_language, word
from api.updates import deliver
from domain import buyer_links as links
from domain.contacts import Channel
from domain.model import utcnow
from domain.refund import (
    AppealRequest,
    CancelRequest,
    Evidence,
    EvidenceRequest,
    RefundBody,
    RemedyRequest,
)
from domain.types import EvidenceKind, PaymentChannel, RefundStatus, Remedy
from store import orders
from store import refunds as refund_rows
from workflows.refund import RefundWorkflow

router = APIRouter(prefix="/r", include_in_schema=False)

Token = Annotated[str, Query(max_length=links.MAX_TOKEN)]
# Stages of the progress bar and where each status stands on it.
STAGES = ("submitted", "review", "refunding", "done")
STAGE_OF = {
    RefundStatus.SUBMITTED: 0,
    RefundStatus.CHECKING: 0,
    RefundStatus.PENDING_REVIEW: 1,
    RefundStatus.APPROVED: 2,
    RefundStatus.REFUNDING: 2,
    RefundStatus.NEEDS_ATTENTION: 2,
    RefundStatus.REFUNDED: 3,
    RefundStatus.REJECTED: 1,
    RefundStatus.CANCELLED: 0,
    RefundStatus.REDIRECTED_TO_SUPPORT: 1,
    RefundStatus.FAILED: 2,
    RefundStatus.REPLACED: 3,
}
CANCELLABLE = (
    RefundStatus.SUBMITTED,
    RefundStatus.CHECKING,
    RefundStatus.PENDING_REVIEW,
    RefundStatus.APPROVED,
)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")


@dataclass(frozen=True)
class Event:
    at: datetime
    words: str
    detail: str = ""


def _secret(request: Request) -> str:
    secret: str = request.app.state.settings.buyer_link_secret
    return secret


async def _refund(request: Request, refund_id: str, t: str, lang: str) -> RefundBody:
    checked = links.check(_secret(request), refund_id, t, now=utcnow())
    if checked is links.LinkCheck.FORGED:
        raise PageError(403, "err.link_forged", lang=lang)
    if checked is links.LinkCheck.EXPIRED:
        raise PageError(410, "err.link_expired", lang=lang)
    async with request.app.state.reads() as session:
        body = await refund_rows.load_body(session, refund_id)
    if body is None:
        raise PageError(404, "err.not_found", lang=lang)
    return body


def _lang(request: Request) -> str:
    return pick_language(request.headers.get("accept-language"), request.query_params.get("lang"))


def _headline(body: RefundBody) -> str:
    if body.status is RefundStatus.PENDING_REVIEW and body.review and body.review.awaiting_evidence:
        return "b.head.awaiting_evidence"
    return f"b.head.{body.status.value}"


def _channel(body: RefundBody, order: Any) -> PaymentChannel | None:
    if body.payouts:
        return body.payouts[-1].channel
    if order is not None and order.payments:
        return order.payments[0].channel
    return None


def _expectation(body: RefundBody, order: Any, lang: str) -> str:
    channel = _channel(body, order)
    channel_words = word(f"b.channel.{channel.value}", lang) if channel else ""
    if body.status is RefundStatus.REFUNDED:
        arrived = next((e.at for e in reversed(body.timeline) if e.stage == "money_arrived"), None)
        return word("b.expect.done", lang, at=local_time(arrived), channel=channel_words)
    if body.status is RefundStatus.REPLACED and body.replacement:
        return word("b.expect.replaced", lang, at=local_time(body.replacement.delivered_at))
    if body.status is RefundStatus.PENDING_REVIEW and body.review:
        return word("b.expect.review", lang, deadline=local_time(body.review.deadline))
    if body.status.is_terminal:
        return ""
    if body.destination.value == "balance" or channel is PaymentChannel.BALANCE:
        return word("b.expect.balance", lang)
    return word("b.expect.original", lang, channel=channel_words)


def _events(body: RefundBody, lang: str) -> list[Event]:
    """The timeline as the buyer may see it: known stages in their words; details only where
    they are meant for the buyer (an agent's question, a rejection's reason)."""
    events = []
    for entry in body.timeline:
        key = f"b.ev.{entry.stage}"
        words = word(key, lang)
        if words == key or (entry.stage == "card_key_checked" and entry.detail == "no card keys"):
            continue  # an internal stage, or nothing checked: not the buyer's business
        detail = ""
        if entry.stage in ("evidence_requested", "appealed"):
            detail = entry.detail
        elif entry.stage == "rejected":
            detail = _rejection_reason(body, entry.detail)
        events.append(Event(at=entry.at, words=words, detail=detail))
    return events


def _rejection_reason(body: RefundBody, said: str) -> str:
    """What the rejection said: a reviewer's reason is written for the buyer; the rules'
    explanation is shown in its Chinese wording."""
    decision = body.decision
    if decision is not None and said == decision.explanation:
        return decision.explanation_zh or said
    return said


async def _render(
    request: Request,
    body: RefundBody,
    t: str,
    lang: str,
    *,
    template: str = "buyer.html",
    done: str = "",
    refused: str = "",
    status: int = 200,
) -> Response:
    async with request.app.state.reads() as session:
        order = await orders.load_order(session, body.order_id)
        # Where the buyer's SMS and e-mail go (masked) and whether they are sent; the whole
        # page only (the live part polled every few seconds does not show it).
        notify = (
            {
                channel: shown
                for channel, shown in (await preferences(session, body)).items()
                if shown["address"]
            }
            if template == "buyer.html"
            else {}
        )
    titles = {i.item_id: i.title for i in order.items} if order else {}
    return page(
        template,
        lang=lang,
        status=status,
        r=body,
        token=t,
        titles=titles,
        headline=word(_headline(body), lang),
        stage=STAGE_OF.get(body.status, 0),
        stages=STAGES,
        expectation=_expectation(body, order, lang),
        events=_events(body, lang),
        csrf=links.form_token(_secret(request), t),
        can_cancel=body.status in CANCELLABLE,
        can_appeal=body.status is RefundStatus.REJECTED
        and not (body.review and body.review.appealed),
        can_add=not body.status.is_terminal,
        # A fresh key instead of money (补发), while the refund still waits for its payment.
        can_replace=body.replacement_offered and body.status in CANCELLABLE,
        replacement_chosen=body.remedy is Remedy.REPLACEMENT,
        asked=body.review.evidence_requested
        if body.review and body.review.awaiting_evidence
        else "",
        reason_words=word(f"reason.{body.reason.value}", lang),
        why=_rejection_reason(
            body, next((e.detail for e in reversed(body.timeline) if e.stage == "rejected"), "")
        )
        if body.status is RefundStatus.REJECTED
        else "",
        link_expires=local_time(links.expires_at(t), "%Y-%m-%d"),
        notify=notify,
        done=done,
        refused=refused,
    )


@router.get("/{refund_id}")
async def progress_page(request: Request, refund_id: str, t: Token = "") -> Response:
    lang = _lang(request)
    body = await _refund(request, refund_id, t, lang)
    return await _render(request, body, t, lang, done=request.query_params.get("done", ""))


@router.get("/{refund_id}/live")
async def progress_live(request: Request, refund_id: str, t: Token = "") -> Response:
    """The part of the page that changes, polled every few seconds."""
    lang = _lang(request)
    body = await _refund(request, refund_id, t, lang)
    return await _render(request, body, t, lang, template="_buyer_live.html")


@router.post("/{refund_id}/{action}")
async def buyer_action(
    request: Request,
    refund_id: str,
    action: str,
    t: Annotated[str, Form(max_length=links.MAX_TOKEN)] = "",
    csrf: Annotated[str, Form(max_length=128)] = "",
    text: Annotated[str, Form(max_length=2000)] = "",
    url: Annotated[str, Form(max_length=2048)] = "",
    lang: Annotated[str, Form(max_length=4)] = "",
    remedy: Annotated[str, Form(max_length=16)] = "",
    channel: Annotated[str, Form(max_length=8)] = "",
    receive: Annotated[str, Form(max_length=1)] = "",
) -> Response:
    lang = pick_language(request.headers.get("accept-language"), lang or None)
    body = await _refund(request, refund_id, t, lang)
    if not links.form_token_ok(_secret(request), t, csrf):
        raise PageError(403, "err.csrf", lang=lang)
    if action == "notifications":
        return await _notifications(request, body, t, lang, channel, receive)
    update: Any
    try:
        if action == "evidence":
            update = RefundWorkflow.evidence
            kind = EvidenceKind.TEXT
            if url.strip():
                image = url.strip().lower().split("?")[0].endswith(IMAGE_SUFFIXES)
                kind = EvidenceKind.SCREENSHOT if image else EvidenceKind.LINK
            req: Any = EvidenceRequest(
                evidence=[Evidence(kind=kind, url=url.strip() or None, text=text.strip() or None)]
            )
        elif action == "cancel":
            update, req = RefundWorkflow.cancel, CancelRequest(buyer_id=body.buyer_id)
        elif action == "appeal":
            update = RefundWorkflow.appeal
            req = AppealRequest(buyer_id=body.buyer_id, text=text.strip())
        elif action == "remedy":
            update = RefundWorkflow.choose_remedy
            req = RemedyRequest.model_validate({"buyer_id": body.buyer_id, "remedy": remedy})
        else:
            raise PageError(404, "err.not_found", lang=lang)
    except ValidationError as err:
        why = "; ".join(str(e.get("msg", "")) for e in err.errors()[:2])
        return await _render(request, body, t, lang, refused=why, status=422)
    outcome = await deliver(request.app.state.temporal, body.workflow_id, update, req)
    if not outcome.taken:
        body = await _refund(request, refund_id, t, lang)
        why = word(f"problem.{outcome.problem}", lang)
        return await _render(request, body, t, lang, refused=why, status=409)
    return _done(refund_id, t, lang, action)


def _done(refund_id: str, t: str, lang: str, action: str) -> Response:
    """Back to the page, saying what was done (a reload then repeats nothing)."""
    query = f"t={t}&done={action}" + (f"&lang={lang}" if lang == "en" else "")
    return RedirectResponse(f"/r/{refund_id}?{query}", status_code=303)


async def _notifications(
    request: Request, body: RefundBody, t: str, lang: str, channel: str, receive: str
) -> Response:
    """Stop or resume SMS or e-mail: the buyer's own preference, no workflow involved."""
    if channel not in {c.value for c in Channel} or receive not in ("0", "1"):
        return await _render(request, body, t, lang, refused=word("b.notify.bad", lang), status=422)
    choice = ChannelChoice.model_validate({channel: receive == "1"})
    async with request.app.state.sessions() as session, session.begin():
        await choose_channels(session, body.buyer_id, choice)
    return _done(body.refund_id, t, lang, "notifications")
