"""Orders the platform has taken, and their usage as it happens."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Response
from sqlalchemy.exc import IntegrityError

from api.deps import Platform, PlatformOrReviewer, ReadSessionDep, SessionDep, SettingsDep
from api.openapi import problem_responses
from api.plausible import refuse_future_times
from api.problems import Problem
from domain.contacts import BuyerContact
from domain.model import Identifier, utcnow
from domain.order import Order, OrderIntake, UsageReport
from store import contacts, orders
from store import refunds as refund_rows

router = APIRouter(prefix="/v1/orders", tags=["orders"])


def _conflict(order_id: str) -> Problem:
    return Problem(
        409,
        "order-conflict",
        "Order already recorded with a different body",
        f"order {order_id} exists; an order is immutable once recorded (report usage separately)",
        order_id=order_id,
    )


@router.post(
    "",
    status_code=201,
    summary="Record an order the platform has taken",
    responses={
        200: {
            "description": "The same order was recorded before (orders are idempotent)",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        **problem_responses(409),
    },
)
async def record_order(
    intake: OrderIntake,
    session: SessionDep,
    settings: SettingsDep,
    _: Platform,
    response: Response,
) -> dict[str, Any]:
    now = utcnow()
    order, contact = intake.order(), intake.buyer_contact
    refuse_future_times(order, now=now, skew=timedelta(seconds=settings.max_clock_skew_seconds))
    try:
        async with session.begin():
            recorded = await orders.record_order(session, order, now=now, contact=contact)
    except orders.OrderConflict:
        raise _conflict(order.order_id) from None
    except IntegrityError:
        # Two first POSTs of one order at the same instant: the loser reads the winner's.
        async with session.begin():
            existing = await orders.load_order(session, order.order_id)
            stored_contact = await contacts.load_contact(session, order.order_id)
        if existing is None or orders.body_hash(existing, stored_contact) != orders.body_hash(
            order, contact
        ):
            raise _conflict(order.order_id) from None
        recorded = orders.Recorded(existing, created=False)
    if not recorded.created:
        response.status_code = 200
    return _shown(recorded.order, contact)


def _shown(order: Order, contact: BuyerContact | None) -> dict[str, Any]:
    """The order as answers show it: a contact only masked (`138****5678`)."""
    shown = order.model_dump(mode="json")
    if contact is not None:
        shown["buyer_contact"] = contact.masked().model_dump(mode="json")
    return shown


@router.post(
    "/{order_id}/usage",
    summary="Report a usage event (key revealed, progress, download, top-up)",
    responses=problem_responses(404),
)
async def report_usage(
    order_id: Identifier, report: UsageReport, session: SessionDep, _: Platform
) -> dict[str, Any]:
    async with session.begin():
        if await orders.load_order(session, order_id) is None:
            raise Problem(404, "not-found", "Unknown order", f"no order {order_id}")
        usage = await orders.report_usage(session, order_id, report, now=utcnow())
        if usage is None:
            raise Problem(
                422,
                "validation",
                "Request is not valid",
                f"item_id: order {order_id} has no item {report.item_id}",
                errors=[{"field": "item_id", "message": "no such item in this order"}],
            )
    return {"order_id": order_id, "item_id": report.item_id, "usage": usage.model_dump(mode="json")}


@router.get("/{order_id}", summary="The order with its refunds", responses=problem_responses(404))
async def get_order(
    order_id: Identifier, session: ReadSessionDep, _: PlatformOrReviewer
) -> dict[str, Any]:
    order = await orders.load_order(session, order_id)
    if order is None:
        raise Problem(404, "not-found", "Unknown order", f"no order {order_id}")
    rows, _cursor = await refund_rows.list_refunds(session, order_id=order_id, limit=200)
    contact = await contacts.load_contact(session, order_id)
    return {
        **_shown(order, contact),
        "refunds": [refund_rows.body_of(r).model_dump(mode="json") for r in rows],
    }
