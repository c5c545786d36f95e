"""Replacements as the refunds see them: recorded with the report of the refund that ended
`replaced`, and laid over the order when a later refund opens its case — the item then holds
the fresh key in place of the one it replaced, and the rules know it is a replacement."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.order import CardKeyRef, Order
from domain.refund import RefundBody
from store.replacement_rows import CardKeyReplacementRow
from store.upsert import insert_ignore

__all__ = ["record_replacement", "with_replacements"]


async def record_replacement(session: AsyncSession, body: RefundBody, *, now: datetime) -> None:
    """Which key replaced which, once per refund (a retried report adds nothing)."""
    done = body.replacement
    if done is None:
        return
    await insert_ignore(
        session,
        CardKeyReplacementRow,
        [
            {
                "refund_id": body.refund_id,
                "order_id": body.order_id,
                "item_id": done.item_id,
                "replaced_card_key_id": done.replaced_card_key_id,
                "card_key_id": done.card_key_id,
                "supplier": done.supplier,
                "reservation_id": done.reservation_id,
                "delivered_at": done.delivered_at,
                "recorded_at": now,
            }
        ],
    )


async def with_replacements(session: AsyncSession, order: Order) -> tuple[Order, list[str]]:
    """The order with every replaced key swapped for its replacement (in the order they were
    delivered, so a replacement of a replacement lands last), and the replacements' ids."""
    rows = (
        await session.scalars(
            select(CardKeyReplacementRow)
            .where(CardKeyReplacementRow.order_id == order.order_id)
            .order_by(CardKeyReplacementRow.delivered_at)
        )
    ).all()
    if not rows:
        return order, []
    items = []
    for item in order.items:
        keys = list(item.card_keys)
        for row in rows:
            if row.item_id != item.item_id:
                continue
            keys = [
                CardKeyRef(
                    card_key_id=row.card_key_id,
                    supplier=row.supplier,
                    delivered_at=row.delivered_at,
                )
                if k.card_key_id == row.replaced_card_key_id
                else k
                for k in keys
            ]
        items.append(item.model_copy(update={"card_keys": keys}))
    return order.model_copy(update={"items": items}), [r.card_key_id for r in rows]
