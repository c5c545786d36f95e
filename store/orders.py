"""Orders as the platform recorded them, and their usage as it grows."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.contacts import BuyerContact
from domain.order import (
    CardKeyRef,
    ClientInfo,
    CommissionShare,
    Order,
    OrderItem,
    Payment,
    Usage,
    UsageReport,
)
from domain.types import OrderStatus
from store import contacts, ledger
from store.models import (
    CardKeyRow,
    CommissionRow,
    ItemUsageRow,
    OrderItemRow,
    OrderRow,
    PaymentRow,
)


class OrderConflict(Exception):
    """A known order_id was posted again with a different body."""


def body_hash(order: Order, contact: BuyerContact | None = None) -> str:
    """Of the body as posted: the contact counts only when there is one, so orders recorded
    before contacts existed keep their hash."""
    body = order.model_dump(mode="json")
    # A card key without a batch hashes as it did before keys had batches, so an order
    # recorded then and posted again unchanged is still the same order (200, not 409).
    for item in body["items"]:
        for key in item["card_keys"]:
            if key.get("batch_id") is None:
                key.pop("batch_id", None)
    if contact is not None:
        body["buyer_contact"] = contact.model_dump(mode="json")
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Recorded:
    order: Order
    created: bool


async def record_order(
    session: AsyncSession, order: Order, *, now: datetime, contact: BuyerContact | None = None
) -> Recorded:
    """Idempotent on order_id: the same body again is a no-op, another body a conflict."""
    digest = body_hash(order, contact)
    existing = await session.get(OrderRow, order.order_id)
    if existing is not None:
        if existing.body_hash != digest:
            raise OrderConflict(order.order_id)
        stored = await load_order(session, order.order_id)
        assert stored is not None
        return Recorded(stored, created=False)

    session.add(
        OrderRow(
            order_id=order.order_id,
            merchant_id=order.merchant_id,
            buyer_id=order.buyer_id,
            status=order.status,
            currency=order.currency,
            amount=order.amount,
            created_at=order.created_at,
            paid_at=order.paid_at,
            client_ip=order.client.ip if order.client else None,
            device_id=order.client.device_id if order.client else None,
            body_hash=digest,
            recorded_at=now,
            document=order.model_dump_json(),
        )
    )
    await session.flush()  # parents first: the items' foreign keys point at the order
    for pos, item in enumerate(order.items):
        session.add(
            OrderItemRow(
                order_id=order.order_id,
                item_id=item.item_id,
                position=pos,
                sku=item.sku,
                title=item.title,
                product_type=item.product_type,
                quantity=item.quantity,
                unit_price=item.unit_price,
            )
        )
    await session.flush()
    for item in order.items:
        u = item.usage
        session.add(
            ItemUsageRow(
                order_id=order.order_id,
                item_id=item.item_id,
                key_revealed=u.key_revealed,
                progress_pct=u.progress_pct,
                downloaded=u.downloaded,
                topup_status=u.topup_status,
                updated_at=now,
            )
        )
        for pos, key in enumerate(item.card_keys):
            session.add(
                CardKeyRow(
                    order_id=order.order_id,
                    item_id=item.item_id,
                    card_key_id=key.card_key_id,
                    position=pos,
                    supplier=key.supplier,
                    delivered_at=key.delivered_at,
                    batch_id=key.batch_id,
                )
            )
    for p in order.payments:
        session.add(
            PaymentRow(
                order_id=order.order_id,
                payment_id=p.payment_id,
                channel=p.channel,
                transaction_id=p.transaction_id,
                amount=p.amount,
                paid_at=p.paid_at,
            )
        )
    for c in order.commissions:
        session.add(
            CommissionRow(
                order_id=order.order_id,
                beneficiary_id=c.beneficiary_id,
                level=c.level,
                amount=c.amount,
            )
        )
    if contact is not None:
        contacts.record_contact(session, order.order_id, order.buyer_id, contact, now=now)
    await session.flush()
    if order.status is OrderStatus.PAID:
        await ledger.post_sale(session, order, now=now)
    return Recorded(order, created=True)


async def load_order(session: AsyncSession, order_id: str) -> Order | None:
    return (await load_orders(session, [order_id])).get(order_id)


async def load_orders(session: AsyncSession, order_ids: Collection[str]) -> dict[str, Order]:
    """The stored orders among `order_ids`, by id: six queries however many orders."""
    ids = sorted(set(order_ids))
    if not ids:
        return {}
    rows = (await session.scalars(select(OrderRow).where(OrderRow.order_id.in_(ids)))).all()
    if not rows:
        return {}
    found = await _from_documents(session, [r for r in rows if r.document])
    rows = [r for r in rows if not r.document]
    if not rows:
        return found
    ids = [r.order_id for r in rows]
    items = _by_order(
        await session.scalars(
            select(OrderItemRow)
            .where(OrderItemRow.order_id.in_(ids))
            .order_by(OrderItemRow.order_id, OrderItemRow.position)
        )
    )
    usage = {
        (u.order_id, u.item_id): u
        for u in await session.scalars(select(ItemUsageRow).where(ItemUsageRow.order_id.in_(ids)))
    }
    keys: dict[tuple[str, str], list[CardKeyRef]] = {}
    for k in await session.scalars(
        select(CardKeyRow)
        .where(CardKeyRow.order_id.in_(ids))
        .order_by(CardKeyRow.order_id, CardKeyRow.item_id, CardKeyRow.position)
    ):
        keys.setdefault((k.order_id, k.item_id), []).append(
            CardKeyRef(
                card_key_id=k.card_key_id,
                supplier=k.supplier,
                delivered_at=k.delivered_at,
                batch_id=k.batch_id,
            )
        )
    payments = _by_order(
        await session.scalars(
            select(PaymentRow)
            .where(PaymentRow.order_id.in_(ids))
            .order_by(PaymentRow.order_id, PaymentRow.paid_at)
        )
    )
    commissions = _by_order(
        await session.scalars(
            select(CommissionRow)
            .where(CommissionRow.order_id.in_(ids))
            .order_by(CommissionRow.order_id, CommissionRow.level, CommissionRow.beneficiary_id)
        )
    )
    return found | {
        row.order_id: Order(
            order_id=row.order_id,
            merchant_id=row.merchant_id,
            buyer_id=row.buyer_id,
            status=row.status,
            currency=row.currency,
            amount=row.amount,
            created_at=row.created_at,
            paid_at=row.paid_at,
            client=ClientInfo(ip=row.client_ip, device_id=row.device_id)
            if (row.client_ip or row.device_id)
            else None,
            payments=[
                Payment(
                    payment_id=p.payment_id,
                    channel=p.channel,
                    transaction_id=p.transaction_id,
                    amount=p.amount,
                    paid_at=p.paid_at,
                )
                for p in payments.get(row.order_id, [])
            ],
            items=[
                OrderItem(
                    item_id=i.item_id,
                    sku=i.sku,
                    title=i.title,
                    product_type=i.product_type,
                    quantity=i.quantity,
                    unit_price=i.unit_price,
                    card_keys=keys.get((row.order_id, i.item_id), []),
                    usage=_usage(usage.get((row.order_id, i.item_id))),
                )
                for i in items.get(row.order_id, [])
            ],
            commissions=[
                CommissionShare(beneficiary_id=c.beneficiary_id, level=c.level, amount=c.amount)
                for c in commissions.get(row.order_id, [])
            ],
        )
        for row in rows
    }


async def _from_documents(session: AsyncSession, rows: list[OrderRow]) -> dict[str, Order]:
    """Orders recorded with their document: it, plus today's status and usage."""
    if not rows:
        return {}
    usage = {
        (u.order_id, u.item_id): u
        for u in await session.scalars(
            select(ItemUsageRow).where(ItemUsageRow.order_id.in_([r.order_id for r in rows]))
        )
    }
    found = {}
    for row in rows:
        assert row.document is not None
        recorded = Order.model_validate_json(row.document)
        items = [
            i.model_copy(update={"usage": _usage(usage.get((row.order_id, i.item_id)))})
            for i in recorded.items
        ]
        found[row.order_id] = recorded.model_copy(
            update={
                "status": row.status,
                "items": items,
                # In the order the tables give them (the payout plan walks payments in it).
                "payments": sorted(recorded.payments, key=lambda p: p.paid_at),
                "commissions": sorted(
                    recorded.commissions, key=lambda c: (c.level, c.beneficiary_id)
                ),
            }
        )
    return found


_Row = TypeVar("_Row", OrderItemRow, PaymentRow, CommissionRow)


def _by_order(rows: Iterable[_Row]) -> dict[str, list[_Row]]:
    grouped: dict[str, list[_Row]] = {}
    for row in rows:
        grouped.setdefault(row.order_id, []).append(row)
    return grouped


def _usage(row: ItemUsageRow | None) -> Usage:
    if row is None:
        return Usage()
    return Usage(
        key_revealed=row.key_revealed,
        progress_pct=row.progress_pct,
        downloaded=row.downloaded,
        topup_status=row.topup_status,
    )


async def report_usage(
    session: AsyncSession, order_id: str, report: UsageReport, *, now: datetime
) -> Usage | None:
    """Apply one usage event; None when the order has no such item."""
    row = await session.get(ItemUsageRow, (order_id, report.item_id))
    if row is None:
        return None
    merged = report.apply(_usage(row))
    row.key_revealed = merged.key_revealed
    row.progress_pct = merged.progress_pct
    row.downloaded = merged.downloaded
    row.topup_status = merged.topup_status
    row.updated_at = now
    return merged


async def mark_cancelled(session: AsyncSession, order_id: str) -> None:
    row = await session.get(OrderRow, order_id)
    if row is not None and row.status is OrderStatus.UNPAID:
        row.status = OrderStatus.CANCELLED
