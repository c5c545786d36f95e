"""Notifications outbox: rows written in the same transaction as the status change they
announce, delivered later by the dispatcher. Nothing is lost if a webhook, the SMS provider
or the mail server is down, or a worker dies between the change and the delivery.

Buyer messages (SMS, e-mail) hold what they say (`domain.buyer_messages.Facts`), never the
phone or address: the dispatcher looks the contact up when it sends, so an opt-out made
meanwhile is honoured and contacts live in one table only."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.buyer_messages import STAGE_OF_STATUS, Facts
from domain.contacts import Channel
from domain.refund import RefundBody
from domain.types import RefundStatus
from store import contacts
from store.models import NotificationRow
from store.upsert import insert_ignore

WEBHOOK = "webhook"
INBOX = "inbox"
SUPERVISOR = "supervisor"
SUPERVISORS = "supervisors"
UPLINE = "upline"
MESSAGE = "message"  # a reviewer's message to the buyer (more evidence, please)
SMS = Channel.SMS.value  # the buyer's phone, through the SMS provider
EMAIL = Channel.EMAIL.value  # the buyer's e-mail, through the SMTP server
BUYER_CHANNELS = (SMS, EMAIL)

UPLINE_WORDS = {
    "freeze": "frozen while a refund of the sale is open",
    "claw_back": "clawed back: the sale was refunded",
    "release": "released: the refund did not go ahead",
}
LEASE = timedelta(seconds=60)


async def enqueue_status(
    session: AsyncSession,
    body: RefundBody,
    *,
    seq: int,
    webhook_url: str,
    inbox: bool,
    alerts: list[str],
    now: datetime,
) -> None:
    payload = body.model_dump(mode="json")
    rows = []
    if webhook_url:
        rows.append(_row(body, seq, WEBHOOK, webhook_url, payload, now, delivered=False))
    if inbox:
        # The buyer's in-app inbox is the row itself: delivered once written.
        rows.append(_row(body, seq, INBOX, f"buyer:{body.buyer_id}", payload, now, delivered=True))
    for alert in alerts:
        alert_body = {"refund_id": body.refund_id, "message": alert, "status": body.status.value}
        rows.append(_row(body, seq, SUPERVISOR, SUPERVISORS, alert_body, now, delivered=True))
    await insert_ignore(session, NotificationRow, rows)


async def message_buyer(
    session: AsyncSession, body: RefundBody, *, seq: int, messages: list[str], now: datetime
) -> None:
    """A reviewer's words to the buyer, in their in-app inbox (delivered once written)."""
    rows = [
        _row(
            body,
            seq * 100 + i,  # several messages in one report stay distinct
            MESSAGE,
            f"buyer:{body.buyer_id}",
            {"refund_id": body.refund_id, "message": message, "status": body.status.value},
            now,
            delivered=True,
        )
        for i, message in enumerate(messages)
    ]
    await insert_ignore(session, NotificationRow, rows)


async def tell_buyer_elsewhere(
    session: AsyncSession,
    *,
    buyer_id: str,
    status: RefundStatus,
    facts: Facts,
    seq: int,
    now: datetime,
) -> None:
    """An SMS and/or e-mail for a stage the buyer cares about (`STAGE_OF_STATUS`), on each
    channel the order has a contact for and the buyer did not opt out of."""
    stage = STAGE_OF_STATUS.get(status)
    if stage is None:
        return
    reach = await contacts.reach(session, facts.order_id)
    if reach is None:
        return
    payload = {"stage": stage.value, **facts.to_json()}
    rows = [
        {
            "refund_id": facts.refund_id,
            "seq": seq,
            "channel": channel.value,
            "recipient": f"buyer:{buyer_id}",
            "status": status.value,
            "body": payload,
            "created_at": now,
            "attempts": 0,
            "next_attempt_at": now,
            "delivered_at": None,
        }
        for channel in reach.channels
    ]
    await insert_ignore(session, NotificationRow, rows)


def facts_of(body: RefundBody) -> Facts:
    return Facts(
        refund_id=body.refund_id,
        order_id=body.order_id,
        amount=body.amount,
        currency=body.currency,
        destination=body.destination,
        deadline=body.review.deadline if body.review else None,
    )


def _row(
    body: RefundBody,
    seq: int,
    channel: str,
    recipient: str,
    payload: Mapping[str, object],
    now: datetime,
    *,
    delivered: bool,
) -> dict[str, object]:
    return {
        "refund_id": body.refund_id,
        "seq": seq,
        "channel": channel,
        "recipient": recipient,
        "status": body.status.value,
        "body": payload,
        "created_at": now,
        "attempts": 0,
        "next_attempt_at": now,
        "delivered_at": now if delivered else None,
    }


async def notify_upline(
    session: AsyncSession,
    *,
    refund_id: str,
    order_id: str,
    beneficiary_id: str,
    action: str,
    step: int,
    amount: int,
    state: str,
    currency: str,
    now: datetime,
) -> None:
    """Tell a distributor what a refund did to their commission (their in-app inbox)."""
    words = UPLINE_WORDS[action]
    body = {
        "refund_id": refund_id,
        "order_id": order_id,
        "beneficiary_id": beneficiary_id,
        "action": action,
        "amount": amount,
        "currency": currency,
        "state": state,
        "message": f"commission of {amount} {currency} on order {order_id} {words}",
    }
    await insert_ignore(
        session,
        NotificationRow,
        [
            {
                "refund_id": refund_id,
                "seq": step,
                "channel": UPLINE,
                "recipient": f"distributor:{beneficiary_id}",
                "status": state,
                "body": body,
                "created_at": now,
                "attempts": 0,
                "next_attempt_at": now,
                "delivered_at": now,
            }
        ],
    )


async def claim_due(
    session: AsyncSession,
    *,
    now: datetime,
    channels: Collection[str] = (WEBHOOK,),
    limit: int = 50,
) -> list[NotificationRow]:
    """Take a lease on due deliveries so another dispatcher skips them."""
    stmt = (
        select(NotificationRow)
        .where(
            NotificationRow.channel.in_(channels),
            NotificationRow.delivered_at.is_(None),
            NotificationRow.failed_at.is_(None),
            or_(NotificationRow.next_attempt_at.is_(None), NotificationRow.next_attempt_at <= now),
        )
        .order_by(NotificationRow.id)
        .limit(limit)
    )
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    rows = list((await session.scalars(stmt)).all())
    for row in rows:
        row.next_attempt_at = now + LEASE
    return rows


async def mark_delivered(session: AsyncSession, row_id: int, *, now: datetime) -> None:
    await session.execute(
        update(NotificationRow)
        .where(NotificationRow.id == row_id)
        .values(delivered_at=now, attempts=NotificationRow.attempts + 1, last_error=None)
    )


async def mark_failed(
    session: AsyncSession,
    row_id: int,
    *,
    attempts: int,
    error: str,
    now: datetime,
    give_up: bool = False,
) -> None:
    """Try again later: back off 1 s, 2 s, 4 s ... up to 5 minutes (webhooks: for as long as
    it takes, "until a 2xx"); or, with `give_up`, stop for good (`failed_at`)."""
    delay = timedelta(seconds=min(2 ** min(attempts, 9), 300))
    await session.execute(
        update(NotificationRow)
        .where(NotificationRow.id == row_id)
        .values(
            attempts=attempts + 1,
            last_error=error[:500],
            next_attempt_at=None if give_up else now + delay,
            failed_at=now if give_up else None,
        )
    )
