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
    # A constant number of queries however long the queue: the rows come with their parts,
    # their orders are read together.
    by_id = await orders.load_orders(session, [row.order_id for row in rows])
    return ReviewQueue(
        reviews=[
            ReviewCase(refund=refund_rows.body_of(row), order=by_id.get(row.order_id))
            for row in rows
        ]
    )
