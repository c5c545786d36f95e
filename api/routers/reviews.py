"""The reviewers' queue: refunds waiting for a person, most urgent first."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import ReadSessionDep, Reviewer
from api.problems import field_error
from domain.model import Identifier
from domain.order import Order
from domain.refund import RefundBody
from domain.types import RefundReason, RiskLevel
from store import orders
from store import refunds as refund_rows

router = APIRouter(prefix="/v1/reviews", tags=["reviews"])


class ReviewCase(BaseModel):
    """Everything a reviewer needs on one screen: the refund (decision so far, risk signals,
    evidence, timeline) and the order it is about."""

    refund: RefundBody
    order: Order | None


class ReviewQueue(BaseModel):
    reviews: list[ReviewCase]
    # The next page of `state=pending` (pass it back as `cursor`); null on the last page.
    next_cursor: str | None = None


@router.get(
    "",
    summary="Refunds awaiting review, nearest deadline first",
    description="`state=pending`: refunds waiting for a reviewer's approve/reject. "
    "`state=needs_attention`: refunds whose money a supervisor must locate (a gateway "
    "answered ABNORMAL, or no verified answer came in time), longest waiting first; "
    "`POST /v1/refunds/{id}/resolve` acts on them.",
)
async def pending_reviews(
    session: ReadSessionDep,
    _: Reviewer,
    state: Literal["pending", "needs_attention"] = "pending",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    merchant_id: Identifier | None = None,
    risk_level: RiskLevel | None = None,
    reason: RefundReason | None = None,
) -> ReviewQueue:
    next_cursor = None
    if state == "needs_attention":
        rows = await refund_rows.attention_cases(session, limit=limit)
    else:
        try:
            rows, next_cursor = await refund_rows.pending_reviews(
                session,
                limit=limit,
                cursor=cursor,
                merchant_id=merchant_id,
                risk_level=risk_level,
                reason=reason,
            )
        except (ValueError, TypeError):
            raise field_error("cursor", "not a cursor this service issued") from None
    # A constant number of queries however long the queue: the rows come with their parts,
    # their orders are read together.
    by_id = await orders.load_orders(session, [row.order_id for row in rows])
    return ReviewQueue(
        reviews=[
            ReviewCase(refund=refund_rows.body_of(row), order=by_id.get(row.order_id))
            for row in rows
        ],
        next_cursor=next_cursor,
    )
