"""Taking a buyer's refund click: checks, one durable record, one workflow.

The refund row, its item claims and the idempotency key are written in one
transaction; primary keys (not a SELECT) decide races, so two identical POSTs at the
same instant make one refund and two different refunds on one item make one and a
409. The workflow starts after the commit, with an id derived from the refund, so a
retry of a POST whose start failed starts the same workflow and never a second one."""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from api.problems import Problem, field_error
from domain.model import utcnow
from domain.order import Order
from domain.refund import RefundItemRequest, RefundRequest
from domain.types import OrderStatus, RefundStatus
from store import orders
from store import refunds as refund_rows
from store.models import RefundRow
from workflow_api import starter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Intake:
    refund_id: str
    status: RefundStatus
    created: bool


class _Repeat(Exception):
    """The request was taken before: leave the write transaction without writing."""


def new_refund_id() -> str:
    return "rf_" + secrets.token_hex(8)


def request_hash(request: RefundRequest) -> str:
    canonical = json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def take_refund(
    session: AsyncSession,
    temporal: Client,
    *,
    request: RefundRequest,
    caller: str,
    idempotency_key: str,
    task_queue: str,
) -> Intake:
    digest = request_hash(request)
    refund_id = new_refund_id()
    repeat: Intake | None = None
    try:
        # One write transaction (on SQLite, one turn at the write lock): a repeat of the same
        # request is found first, else the refund is stored.
        async with session.begin():
            repeat = await _repeat(session, caller, idempotency_key, digest)
            if repeat is not None:
                raise _Repeat
            order = await _orderable(session, request)
            items = refund_rows.requested_items(request, order)
            await check_not_taken(session, order, items)
            row = await refund_rows.insert_refund(
                session,
                refund_rows.NewRefund(
                    refund_id=refund_id,
                    request=request,
                    order=order,
                    items=items,
                    caller=caller,
                    idempotency_key=idempotency_key,
                    request_hash=digest,
                    now=utcnow(),
                ),
            )
    except _Repeat:
        assert repeat is not None
        await ensure_started(session, temporal, repeat.refund_id, task_queue=task_queue)
        return repeat
    except (IntegrityError, Problem) as lost:
        # A concurrent twin of this very POST may have won the race (same key): that is a
        # repeat, not a conflict. Otherwise another refund holds the items: say which.
        if isinstance(lost, Problem) and lost.status != 409:
            raise
        async with session.begin():
            repeat = await _repeat(session, caller, idempotency_key, digest)
            if repeat is None and isinstance(lost, IntegrityError):
                await check_not_taken(session, order, items)
        if repeat is None:
            raise
        await ensure_started(session, temporal, repeat.refund_id, task_queue=task_queue)
        return repeat
    # A new refund: start from what was just stored, without reading it back.
    await _start(
        starter.start(temporal, starter.refund_input(row, items), task_queue=task_queue), refund_id
    )
    return Intake(refund_id, RefundStatus.SUBMITTED, created=True)


async def ensure_started(
    session: AsyncSession, temporal: Client, refund_id: str, *, task_queue: str
) -> None:
    await _start(
        starter.ensure_started(session, temporal, refund_id, task_queue=task_queue), refund_id
    )


async def _start(starting: Coroutine[Any, Any, None], refund_id: str) -> None:
    """Temporal away: the refund is stored, a repeat of the POST (or the sweeper) resumes it."""
    try:
        await starting
    except starter.StartFailed as failed:
        raise Problem(
            503,
            "temporal-unavailable",
            "Could not start the refund workflow yet",
            "the refund is recorded; repeat the same request to resume",
            refund_id=refund_id,
        ) from failed


async def _repeat(session: AsyncSession, caller: str, key: str, digest: str) -> Intake | None:
    seen = await refund_rows.find_idempotent(session, caller, key)
    if seen is None:
        return None
    if seen.request_hash != digest:
        raise Problem(
            409,
            "idempotency-key-reused",
            "Idempotency-Key was used with another body",
            "send a new Idempotency-Key for a different request",
            existing_refund_id=seen.refund_id,
        )
    row = await session.get(RefundRow, seen.refund_id)
    assert row is not None
    return Intake(seen.refund_id, row.status, created=False)


async def _orderable(session: AsyncSession, request: RefundRequest) -> Order:
    """The order, if this buyer may ask for this refund on it at all."""
    order = await orders.load_order(session, request.order_id)
    if order is None:
        raise Problem(
            404,
            "not-found",
            "Unknown order",
            f"no order {request.order_id}",
            errors=[{"field": "order_id", "message": "unknown order"}],
        )
    if request.buyer_id != order.buyer_id:
        raise Problem(
            403,
            "not-your-order",
            "This buyer did not place this order",
            errors=[{"field": "buyer_id", "message": "not the order's buyer"}],
        )
    if order.status is OrderStatus.CANCELLED:
        raise Problem(409, "order-cancelled", "The order is cancelled", "nothing to refund")
    check_items(request, order)
    return order


def check_items(request: RefundRequest, order: Order) -> None:
    for n, wanted in enumerate(request.items or []):
        item = order.item(wanted.item_id)
        if item is None:
            raise field_error(
                f"items[{n}].item_id", f"order {order.order_id} has no item {wanted.item_id}"
            )
        if wanted.quantity > item.quantity:
            raise field_error(f"items[{n}].quantity", f"at most {item.quantity} for this item")


async def check_not_taken(
    session: AsyncSession, order: Order, items: list[RefundItemRequest]
) -> None:
    ids = [i.item_id for i in items]
    holder = await refund_rows.open_claim(session, order.order_id, ids)
    if holder is not None:
        raise Problem(
            409,
            "refund-open",
            "A refund for this order or item is already open",
            f"refund {holder} is in progress",
            existing_refund_id=holder,
        )
    taken = await refund_rows.refunded_quantities(session, order.order_id)
    for i in items:
        item = order.item(i.item_id)
        assert item is not None
        if taken.get(i.item_id, 0) + i.quantity > item.quantity:
            last = await refund_rows.last_refund_for_items(session, order.order_id, [i.item_id])
            raise Problem(
                409,
                "already-refunded",
                "Nothing left to refund on this item",
                f"item {i.item_id}: {taken.get(i.item_id, 0)} of {item.quantity} already refunded",
                existing_refund_id=last,
            )
