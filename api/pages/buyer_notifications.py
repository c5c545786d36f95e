"""The buyer's say over SMS and e-mail: `GET /r/{refund_id}/notifications?t=...` shows where
messages go (masked) and whether the buyer receives them; `PUT` with `{"sms": false}` or
`{"email": false}` opts out of a channel (`true` opts back in), for all the buyer's orders.
The progress page's buttons do the same (`api/pages/buyer.py`, a form with its CSRF token).

Authorised like the rest of the buyer's page: the signed link (`t`) is the buyer's access to
that refund, and so to its buyer's preferences. JSON, not a form: a cross-site page cannot
send it without CORS, so it needs no CSRF token."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import ReadSessionDep, SessionDep, SettingsDep
from api.problems import Problem
from domain import buyer_links as links
from domain.contacts import Channel, mask_address
from domain.model import Identifier, utcnow
from domain.refund import RefundBody
from store import contacts
from store import refunds as refund_rows

router = APIRouter(prefix="/r", include_in_schema=False)
Token = Annotated[str, Query(max_length=links.MAX_TOKEN)]


class ChannelChoice(BaseModel):
    sms: bool | None = None
    email: bool | None = None


def _authorised(settings: SettingsDep, refund_id: str, t: str) -> None:
    checked = links.check(settings.buyer_link_secret, refund_id, t, now=utcnow())
    if checked is links.LinkCheck.FORGED:
        raise Problem(403, "forbidden", "This link is not valid")
    if checked is links.LinkCheck.EXPIRED:
        raise Problem(410, "link-expired", "This link has expired")


async def _refund(session: Any, refund_id: str) -> RefundBody:
    body = await refund_rows.load_body(session, refund_id)
    if body is None:
        raise Problem(404, "not-found", "Unknown refund")
    return body


async def preferences(session: Any, body: RefundBody) -> dict[str, Any]:
    """Per channel: where the refund's buyer's messages go (masked), whether they are sent,
    whether opted out."""
    contact = await contacts.load_contact(session, body.order_id)
    out = await contacts.opted_out(session, body.buyer_id)
    shown: dict[str, Any] = {}
    for channel in Channel:
        address = contact.address(channel) if contact else None
        shown[channel.value] = {
            "address": mask_address(channel, address) if address else None,
            "receiving": bool(address) and channel not in out,
            "opted_out": channel in out,
        }
    return shown


@router.get("/{refund_id}/notifications")
async def show(
    refund_id: Identifier, t: Token, session: ReadSessionDep, settings: SettingsDep
) -> dict[str, Any]:
    _authorised(settings, refund_id, t)
    return await preferences(session, await _refund(session, refund_id))


@router.put("/{refund_id}/notifications")
async def choose(
    refund_id: Identifier,
    t: Token,
    choice: ChannelChoice,
    session: SessionDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    _authorised(settings, refund_id, t)
    async with session.begin():
        body = await _refund(session, refund_id)
        await choose_channels(session, body.buyer_id, choice)
    async with session.begin():
        return await preferences(session, body)


async def choose_channels(session: Any, buyer_id: str, choice: ChannelChoice) -> None:
    """Opt the buyer out of (or back into) the channels `choice` names, for all their orders."""
    for channel in Channel:
        receive = getattr(choice, channel.value)
        if receive is not None:
            await contacts.set_opt_out(session, buyer_id, channel, out=not receive, now=utcnow())
