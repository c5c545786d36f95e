"""A refund paid for keys the supplier confirmed invalid, reported as the workflow reports
it (`RefundRecords.record_progress`), on a scratch database: what opens supplier claims."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from activities.records import RefundRecords
from domain.model import utcnow
from domain.order import CardKeyRef, Order, OrderItem
from domain.policy import load_policy
from domain.refund import RefundBody, TimelineEntry
from domain.types import KeyState, RefundStatus
from domain.wording import describe_keys
from store import refunds as refund_rows
from store.claim_rows import SupplierClaimRow
from tests.scratch import Scratch, an_order, stored_order, stored_refund, unique
from workflows.messages import ProgressReport


def order_of_keys(suppliers: list[str], *, unit_price: int = 5000) -> Order:
    """One card-key item with a key per supplier named, every key unique."""
    order = an_order(amount=unit_price * len(suppliers))
    item = order.items[0]
    delivered = item.card_keys[0].delivered_at
    keys = [
        CardKeyRef(card_key_id=unique("K"), supplier=s, delivered_at=delivered) for s in suppliers
    ]
    items = [
        OrderItem.model_validate(
            item.model_dump() | {"quantity": len(keys), "unit_price": unit_price}
        ).model_copy(update={"card_keys": keys})
    ]
    payments = [order.payments[0].model_copy(update={"amount": unit_price * len(keys)})]
    return order.model_copy(update={"items": items, "payments": payments})


async def report_refunded(
    scratch: Scratch, order: Order, refund_id: str, states: dict[str, KeyState]
) -> RefundBody:
    """Report the refund `refunded` after the supplier said `states` at the check."""
    async with scratch.reads() as session:
        body = await refund_rows.load_body(session, refund_id)
    assert body is not None
    now = utcnow()
    body = body.model_copy(
        update={
            "status": RefundStatus.REFUNDED,
            "timeline": [
                *body.timeline,
                TimelineEntry(stage="card_key_checked", at=now, detail=describe_keys(states)),
                TimelineEntry(stage="money_arrived", at=now + timedelta(seconds=1)),
            ],
        }
    )
    records = RefundRecords(scratch.sessions, policy=load_policy)
    await records.record_progress(ProgressReport(seq=5, body=body, first_entry=2))
    return body


async def refunded_invalid(
    scratch: Scratch, states: list[KeyState], *, suppliers: list[str] | None = None
) -> tuple[Order, str]:
    """A stored order with a key per state, refunded in full; returns it and the refund."""
    order = await stored_order(scratch, order_of_keys(suppliers or ["sup-a"] * len(states)))
    refund_id = await stored_refund(scratch, order)
    keys = order.items[0].card_keys
    await report_refunded(
        scratch, order, refund_id, {k.card_key_id: s for k, s in zip(keys, states, strict=True)}
    )
    return order, refund_id


async def claims_of(scratch: Scratch, refund_id: str) -> list[SupplierClaimRow]:
    async with scratch.reads() as session:
        rows = await session.scalars(
            select(SupplierClaimRow)
            .where(SupplierClaimRow.refund_id == refund_id)
            .order_by(SupplierClaimRow.supplier)
        )
        return list(rows)
