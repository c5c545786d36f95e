"""The console's queue with 10,000 refunds waiting (SQLite, or PostgreSQL in CI): each page,
filter, search, the counts and "take the next" stay fast, and pages are index ranges that
cover the queue exactly once, most urgent first."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from sqlalchemy import insert, text

from domain.model import utcnow
from domain.types import (
    Destination,
    OrderStatus,
    ProductType,
    RefundReason,
    RefundStatus,
    RiskLevel,
)
from store import queue
from store.models import OrderItemRow, OrderRow, RefundItemRow, RefundRow
from tests.scratch import Scratch, scratch_database

N = 10_000
PRODUCTS = [ProductType.CARD_KEY, ProductType.COURSE, ProductType.MEMBERSHIP]
# Generous for 2 shared cores and either database: the queue is read every few seconds by
# every reviewer, so a page must never cost a scan of the queue.
BUDGET_SECONDS = 0.5


@pytest.fixture(scope="module")
async def big_queue(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Scratch]:
    async with scratch_database(tmp_path_factory.mktemp("console-queue")) as db:
        now = utcnow()
        orders: list[dict[str, Any]] = []
        items: list[dict[str, Any]] = []
        refunds: list[dict[str, Any]] = []
        refund_items: list[dict[str, Any]] = []
        for n in range(N):
            oid, rid = f"QO-{n:05d}", f"rf_q{n:05d}"
            # Two topups only, among 10,000: a filter that finds almost nothing.
            product = ProductType.TOPUP if n in (1234, 8765) else PRODUCTS[n % 3]
            orders.append(
                {
                    "order_id": oid,
                    "merchant_id": f"M-{n % 7}",
                    "buyer_id": f"QU-{n % 977}",
                    "status": OrderStatus.PAID,
                    "currency": "CNY",
                    "amount": 1000 + n,
                    "created_at": now - timedelta(hours=2),
                    "paid_at": now - timedelta(hours=2),
                    "body_hash": "-",
                    "recorded_at": now,
                }
            )
            items.append(
                {
                    "order_id": oid,
                    "item_id": "I-1",
                    "position": 0,
                    "sku": "sku",
                    "title": "t",
                    "product_type": product,
                    "quantity": 1,
                    "unit_price": 1000 + n,
                }
            )
            refunds.append(
                {
                    "refund_id": rid,
                    "order_id": oid,
                    "buyer_id": f"QU-{n % 977}",
                    "merchant_id": f"M-{n % 7}",
                    "status": RefundStatus.PENDING_REVIEW,
                    "amount": 1000 + n,
                    "currency": "CNY",
                    "destination": Destination.ORIGINAL,
                    "reason": list(RefundReason)[n % 8],
                    "reason_text": "",
                    "risk_level": list(RiskLevel)[n % 3],
                    # Deadlines spread over a day; every tenth case held by a reviewer.
                    "review_deadline": now + timedelta(seconds=(n * 7919) % 86_400),
                    "claimed_by": f"r{(n // 10) % 5}" if n % 10 == 0 else None,
                    "claimed_until": now + timedelta(minutes=20) if n % 10 == 0 else None,
                    "awaiting_evidence": False,
                    "evidence": [],
                    "progress_seq": 2,
                    "workflow_id": f"refund-{rid}",
                    "workflow_started": True,
                    "created_at": now - timedelta(hours=1),
                    "updated_at": now,
                }
            )
            refund_items.append({"refund_id": rid, "item_id": "I-1", "quantity": 1, "amount": 1})
        async with db.sessions.begin() as session:
            for model, rows in (
                (OrderRow, orders),
                (OrderItemRow, items),
                (RefundRow, refunds),
                (RefundItemRow, refund_items),
            ):
                for start in range(0, len(rows), 1000):
                    await session.execute(insert(model), rows[start : start + 1000])
        # A bulk load leaves PostgreSQL without statistics until autovacuum runs (seconds
        # later in production); without them it plans the grouped counts as nested scans.
        async with db.engine.connect() as connection:
            await connection.execute(text("ANALYZE"))
            await connection.commit()
        yield db


async def timed(
    make_call: Callable[[], Awaitable[Any]], budget: float = BUDGET_SECONDS
) -> tuple[Any, float]:
    """The first answer and the fastest of up to three tries, stopping at one within `budget`.
    A read that scans the queue is slow every time; a read on a machine busy with other work
    only some of the time, and that is not what this measures (CI failed on one such spike)."""
    answers, times = [], []
    for _ in range(3):
        started = time.perf_counter()
        answers.append(await make_call())
        times.append(time.perf_counter() - started)
        if times[-1] < budget:
            break
    return answers[0], min(times)


async def test_pages_cover_the_queue_in_deadline_order(big_queue: Scratch) -> None:
    now = utcnow()
    seen: list[str] = []
    deadlines = []
    cursor = None
    slowest = 0.0
    async with big_queue.reads() as session:
        while True:
            (rows, cursor), took = await timed(
                partial(
                    queue.queue_page,
                    session,
                    queue.QueueFilter(),
                    now=now,
                    limit=200,
                    cursor=cursor,
                )
            )
            slowest = max(slowest, took)
            seen += [r.refund_id for r in rows]
            deadlines += [r.deadline for r in rows]
            if cursor is None:
                break
    assert len(seen) == len(set(seen)) == N
    assert deadlines == sorted(deadlines)
    assert slowest < BUDGET_SECONDS, slowest


async def test_filters_search_counts_and_next_stay_fast(big_queue: Scratch) -> None:
    now = utcnow()
    calls = {
        "rare product type": queue.QueueFilter(product_type=ProductType.TOPUP),
        "risk and reason": queue.QueueFilter(
            risk_level=RiskLevel.HIGH, reason=RefundReason.CHANGED_MIND
        ),
        "merchant, unclaimed": queue.QueueFilter(merchant_id="M-3", claim="unclaimed"),
        "mine": queue.QueueFilter(claim="mine", reviewer="r2"),
        "search by buyer": queue.QueueFilter(search="QU-5"),
        "search by order": queue.QueueFilter(search="QO-04321"),
    }
    async with big_queue.reads() as session:
        for name, f in calls.items():
            (rows, _), took = await timed(partial(queue.queue_page, session, f, now=now, limit=50))
            assert took < BUDGET_SECONDS, (name, took)
            assert rows, name
        (rows, _), _ = await timed(
            lambda: queue.queue_page(session, calls["rare product type"], now=now)
        )
        assert sorted(r.refund_id for r in rows) == ["rf_q01234", "rf_q08765"]
        assert [
            r.refund_id
            for r in (await queue.queue_page(session, calls["search by order"], now=now))[0]
        ] == ["rf_q04321"]
        mine = (await queue.queue_page(session, calls["mine"], now=now, limit=500))[0]
        assert mine and all(r.holder(now) == "r2" for r in mine)

        counts, took = await timed(
            lambda: queue.queue_counts(session, now=now), budget=4 * BUDGET_SECONDS
        )
        assert took < 4 * BUDGET_SECONDS, took  # a handful of grouped reads of the queue
        assert counts.total == N and counts.unclaimed == N - N // 10
        assert counts.product_type["topup"] == 2
        assert sum(counts.merchant_id.values()) == N

        taken, took = await timed(
            lambda: queue.next_unclaimed(session, queue.QueueFilter(), reviewer="r9", now=now)
        )
        assert took < BUDGET_SECONDS and taken is not None
        first = (
            await queue.queue_page(session, queue.QueueFilter(claim="unclaimed"), now=now, limit=1)
        )[0]
        assert taken == first[0].refund_id
