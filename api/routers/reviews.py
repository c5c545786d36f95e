"""The reviewers' queue: refunds waiting for a person, most urgent first."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import ReadSessionDep, Reviewer
from domain.order import Order
from domain.refund import RefundBody
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
) -> ReviewQueue:
    if state == "needs_attention":
        rows = await refund_rows.attention_cases(session, limit=limit)
    else:
        rows = await refund_rows.pending_reviews(session, limit=limit)
    cases = []
    for row in rows:
        body = await refund_rows.load_body(session, row.refund_id)
        if body is not None:
            cases.append(
                ReviewCase(refund=body, order=await orders.load_order(session, row.order_id))
            )
    return ReviewQueue(reviews=cases)
