"""In-app inboxes: what the service told buyers (every status change), distributors (their
commission frozen, clawed back or released) and supervisors (escalations, reconciliation
alerts). The platform shows them in its own UI."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import select

from api.deps import PlatformOrReviewer, ReadSessionDep
from api.openapi import problem_responses
from api.problems import Problem
from domain.types import Role
from store.models import NotificationRow
from store.outbox import SUPERVISORS

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
                NotificationRow.channel != "webhook",
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
