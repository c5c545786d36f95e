"""A database of a test module's own, and rows to put in it: for the store and activity unit
tests, which write rows directly and must not leave them in the books the integration tests
check (trial balance, audit chain, money conservation).

SQLite by default, a fresh PostgreSQL database when CI exports DATABASE_URL, migrated like
production (`refundctl migrate`). Every id a factory makes is unique, so the tests of one
module share a database without seeing each other's rows."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.model import utcnow
from domain.order import CardKeyRef, ClientInfo, CommissionShare, Order, OrderItem, Payment, Usage
from domain.refund import RefundItemRequest, RefundRequest
from domain.types import OrderStatus, PaymentChannel, ProductType, RefundReason
from store import orders
from store import refunds as refund_rows
from store.db import SessionFactory, make_engine, make_read_session_factory, make_session_factory
from store.migrate import upgrade
from tests.harness import session_database


@dataclass
class Scratch:
    engine: AsyncEngine
    sessions: SessionFactory
    reads: SessionFactory


@contextlib.asynccontextmanager
async def scratch_database(tmp_path: Path) -> AsyncIterator[Scratch]:
    async with session_database(tmp_path) as url:
        # Alembic's env runs its own event loop: keep it off this one.
        await asyncio.to_thread(upgrade, url)
        engine = make_engine(url)
        try:
            yield Scratch(engine, make_session_factory(engine), make_read_session_factory(engine))
        finally:
            await engine.dispose()


@dataclass
class Statements:
    """SQL statements an engine executed while counting (transaction control left out)."""

    sql: list[str] = field(default_factory=list)

    @property
    def selects(self) -> int:
        return sum(1 for s in self.sql if s.lstrip().upper().startswith("SELECT"))


@contextlib.contextmanager
def counting_statements(engine: AsyncEngine) -> Iterator[Statements]:
    seen = Statements()

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.split(None, 1)[0].upper() not in {"BEGIN", "COMMIT", "ROLLBACK"}:
            seen.sql.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def an_order(
    *,
    buyer_id: str | None = None,
    amount: int = 5000,
    channel: PaymentChannel = PaymentChannel.ALIPAY,
    commission: int | None = 500,
    ago: timedelta = timedelta(hours=1),
    device_id: str | None = None,
    ip: str | None = None,
    sku: str | None = None,
) -> Order:
    """One paid card key, bought `ago`, with one upline commission; every id unique."""
    order_id = unique("O")
    paid_at = utcnow() - ago
    return Order(
        order_id=order_id,
        merchant_id=unique("M"),
        buyer_id=buyer_id or unique("U"),
        status=OrderStatus.PAID,
        amount=amount,
        created_at=paid_at - timedelta(seconds=5),
        paid_at=paid_at,
        payments=[
            Payment(
                payment_id="P-1",
                channel=channel,
                transaction_id=unique("T"),
                amount=amount,
                paid_at=paid_at,
            )
        ],
        items=[
            OrderItem(
                item_id="I-1",
                sku=sku or unique("sku"),
                title="Steam wallet",
                product_type=ProductType.CARD_KEY,
                quantity=1,
                unit_price=amount,
                card_keys=[
                    CardKeyRef(
                        card_key_id=unique("K"),
                        supplier="sup-a",
                        delivered_at=paid_at + timedelta(seconds=1),
                    )
                ],
                usage=Usage(),
            )
        ],
        client=ClientInfo(ip=ip, device_id=device_id) if (ip or device_id) else None,
        commissions=[CommissionShare(beneficiary_id=unique("D"), level=1, amount=commission)]
        if commission
        else [],
    )


async def stored_order(scratch: Scratch, order: Order | None = None) -> Order:
    order = order or an_order()
    async with scratch.sessions.begin() as session:
        await orders.record_order(session, order, now=utcnow())
    return order


async def stored_refund(
    scratch: Scratch,
    order: Order,
    *,
    reason: RefundReason = RefundReason.INVALID_KEY,
    at: datetime | None = None,
) -> str:
    """A refund of the whole order, stored as `POST /v1/refunds` stores it."""
    refund_id = unique("rf")
    request = RefundRequest(order_id=order.order_id, buyer_id=order.buyer_id, reason=reason)
    async with scratch.sessions.begin() as session:
        await refund_rows.insert_refund(
            session,
            refund_rows.NewRefund(
                refund_id=refund_id,
                request=request,
                order=order,
                items=[
                    RefundItemRequest(item_id=i.item_id, quantity=i.quantity) for i in order.items
                ],
                caller="test",
                idempotency_key=refund_id,
                request_hash="-",
                now=at or utcnow(),
            ),
        )
    return refund_id
