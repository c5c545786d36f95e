"""In-app inboxes: what the service told buyers (every status change), distributors (their
commission frozen, clawed back or released) and supervisors (escalations, reconciliation
alerts). The platform shows them in its own UI."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import select

from api.deps import PlatformOrReviewer, ReadSessionDep, Reviewer
from api.openapi import problem_responses
from api.problems import Problem
from domain.types import Role
from store.models import NotificationRow
from store.outbox import BUYER_CHANNELS, SUPERVISORS, WEBHOOK

router = APIRouter(prefix="/v1/notifications", tags=["notifications"])

# Notification ids are 32-bit integers on PostgreSQL (SQLite's are wider): a larger cursor
# cannot even be compared with them, so it is a 422, not a 500 (issue 8).
MAX_NOTIFICATION_ID = 2**31 - 1

Recipient = Annotated[
    str, Query(pattern=r"^(buyer:|distributor:)[A-Za-z0-9._:@\-]{1,128}$|^supervisors$")
]


class Notice(BaseModel):
    id: int
    refund_id: str
    channel: str
    recipient: str
    status: str
    body: dict[str, Any]
    created_at: datetime


class Inbox(BaseModel):
    notifications: list[Notice]
    next_after_id: int | None


@router.get(
    "",
    summary="A buyer's, distributor's or the supervisors' notifications, oldest first",
    responses=problem_responses(403),
)
async def inbox(
    recipient: Recipient,
    session: ReadSessionDep,
    caller: PlatformOrReviewer,
    after_id: Annotated[int, Query(ge=0, le=MAX_NOTIFICATION_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Inbox:
    if recipient == SUPERVISORS and caller.role is Role.PLATFORM:
        raise Problem(403, "forbidden", "Supervisor alerts are for reviewers and admins")
    rows = (
        await session.scalars(
            select(NotificationRow)
            .where(
                NotificationRow.recipient == recipient,
                # Webhooks, SMS and e-mail went elsewhere: the inbox is what the platform shows.
                NotificationRow.channel.notin_((WEBHOOK, *BUYER_CHANNELS)),
                NotificationRow.id > after_id,
            )
            .order_by(NotificationRow.id)
            .limit(limit)
        )
    ).all()
    notices = [
        Notice(
            id=r.id,
            refund_id=r.refund_id,
            channel=r.channel,
            recipient=r.recipient,
            status=r.status,
            body=r.body,
            created_at=r.created_at,
        )
        for r in rows
    ]
    return Inbox(
        notifications=notices, next_after_id=notices[-1].id if len(notices) == limit else None
    )


class BuyerMessage(BaseModel):
    """An SMS or e-mail to a buyer as the outbox holds it: no phone or address (an error
    names them masked)."""

    id: int
    refund_id: str
    channel: str
    recipient: str
    stage: str
    state: str  # pending | delivered | failed | skipped
    attempts: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    failed_at: datetime | None


class BuyerMessages(BaseModel):
    messages: list[BuyerMessage]


MessageState = Literal["pending", "delivered", "failed", "all"]


def _state(r: NotificationRow) -> str:
    if r.delivered_at is not None:
        return "delivered"
    if r.failed_at is not None:
        return "skipped" if (r.last_error or "").startswith("skipped") else "failed"
    return "pending"


@router.get(
    "/buyer-messages",
    summary="Buyer SMS and e-mail: failed, still retrying, or delivered (for SREs)",
    responses=problem_responses(403),
)
async def buyer_messages(
    session: ReadSessionDep,
    _: Reviewer,
    state: MessageState = "failed",
    refund_id: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> BuyerMessages:
    """`failed` includes messages skipped because the buyer opted out meanwhile."""
    stmt = select(NotificationRow).where(NotificationRow.channel.in_(BUYER_CHANNELS))
    if refund_id is not None:
        stmt = stmt.where(NotificationRow.refund_id == refund_id)
    if state == "failed":
        stmt = stmt.where(NotificationRow.failed_at.is_not(None))
    elif state == "delivered":
        stmt = stmt.where(NotificationRow.delivered_at.is_not(None))
    elif state == "pending":
        stmt = stmt.where(
            NotificationRow.delivered_at.is_(None), NotificationRow.failed_at.is_(None)
        )
    rows = (await session.scalars(stmt.order_by(NotificationRow.id.desc()).limit(limit))).all()
    return BuyerMessages(
        messages=[
            BuyerMessage(
                id=r.id,
                refund_id=r.refund_id,
                channel=r.channel,
                recipient=r.recipient,
                stage=str(r.body.get("stage", "")),
                state=_state(r),
                attempts=r.attempts,
                last_error=r.last_error,
                created_at=r.created_at,
                next_attempt_at=r.next_attempt_at,
                delivered_at=r.delivered_at,
                failed_at=r.failed_at,
            )
            for r in rows
        ]
    )
