"""`refundctl bench --backlog N`: the same automatic refunds, measured again with N refunds
waiting for a reviewer — the queue a busy shop has on a bad day.

The backlog goes in behind the API's back to keep set-up short: orders and refunds are
written straight to the database (store functions, one transaction per batch) and their
workflows started with the API's own starter; each then runs its case to `pending_review`
and waits there on its 24-hour timer. Afterwards the backlog's workflows are terminated with
one batch operation, also when the run is interrupted.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from bench.direct import database, write_in_batches
from bench.load import Batch
from bench.stack import BenchError, BenchStack

if TYPE_CHECKING:
    import httpx
    from sqlalchemy.ext.asyncio import AsyncSession
    from temporalio.client import Client

    from workflows.messages import RefundInput
STARTS_IN_FLIGHT = 50
SETTLE_SECONDS = 1800.0


def backlog_order(serial: int, run_id: str) -> dict[str, Any]:
    """A course two hours in and 20 % watched: the rules send its refund to a person."""
    tag = f"{run_id}-{serial}"
    at = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    return {
        "order_id": f"O-backlog-{tag}",
        "merchant_id": "M-BACKLOG",
        "buyer_id": f"U-backlog-{tag}",
        "status": "paid",
        "currency": "CNY",
        "amount": 19900,
        "created_at": at,
        "paid_at": at,
        "payments": [
            {
                "payment_id": "P-1",
                "channel": "wechat",
                "transaction_id": f"T-backlog-{tag}",
                "amount": 19900,
                "paid_at": at,
            }
        ],
        "items": [
            {
                "item_id": "I-1",
                "sku": "course-py",
                "title": "Python course",
                "product_type": "course",
                "quantity": 1,
                "unit_price": 19900,
                "card_keys": [],
                "usage": {"key_revealed": False, "progress_pct": 20, "downloaded": False},
            }
        ],
        "commissions": [],
    }


async def build_backlog(stack: BenchStack, client: Client, n: int, run_id: str) -> float:
    """Store `n` refunds awaiting review and start their workflows; returns once all of them
    are `pending_review` (seconds taken)."""
    from domain.model import utcnow
    from domain.order import Order
    from domain.refund import RefundRequest
    from domain.types import RefundReason, RefundStatus
    from store import orders
    from store import refunds as refund_rows
    from workflow_api.starter import refund_input, start

    started = time.monotonic()
    queue = stack.settings.task_queue
    gate = asyncio.Semaphore(STARTS_IN_FLIGHT)

    async def start_one(inp: RefundInput) -> None:
        async with gate:
            await start(client, inp, task_queue=queue)

    async def start_all(inputs: list[RefundInput]) -> None:
        await asyncio.gather(*(start_one(inp) for inp in inputs))

    async def write(session: AsyncSession, serial: int) -> RefundInput:
        order = Order.model_validate(backlog_order(serial, run_id))
        recorded = await orders.record_order(session, order, now=utcnow())
        request = RefundRequest(
            order_id=order.order_id, buyer_id=order.buyer_id, reason=RefundReason.CHANGED_MIND
        )
        items = refund_rows.requested_items(request, recorded.order)
        row = await refund_rows.insert_refund(
            session,
            refund_rows.NewRefund(
                refund_id=f"rf_{uuid.uuid4().hex[:16]}",
                request=request,
                order=recorded.order,
                items=items,
                caller="bench-backlog",
                idempotency_key=f"backlog-{run_id}-{serial}",
                request_hash="-",
                now=utcnow(),
            ),
        )
        return refund_input(row, items)

    async with database(stack) as sessions:
        await write_in_batches(sessions, n, write, label="backlog: started", after_batch=start_all)
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            async with sessions() as session:
                waiting = await refund_rows.count_in_status(
                    session, RefundStatus.PENDING_REVIEW, merchant_id="M-BACKLOG"
                )
            if waiting >= n:
                break
            if time.monotonic() > deadline:
                raise BenchError(f"backlog: only {waiting} of {n} reached pending_review")
            await asyncio.sleep(2.0)
    return time.monotonic() - started


async def terminate_backlog(client: Client, run_id: str) -> None:
    """One batch operation terminates every backlog workflow (they would wait 24 hours)."""
    from temporalio.api.batch.v1 import BatchOperationTermination
    from temporalio.api.workflowservice.v1 import StartBatchOperationRequest

    await client.workflow_service.start_batch_operation(
        StartBatchOperationRequest(
            namespace=client.namespace,
            job_id=f"bench-backlog-{run_id}",
            visibility_query='MerchantId = "M-BACKLOG" AND ExecutionStatus = "Running"',
            reason="refundctl bench --backlog: done",
            termination_operation=BatchOperationTermination(),
        )
    )


async def read_review_queue(http: httpx.AsyncClient, stack: BenchStack, reads: int) -> Batch:
    """`reads` pages of `GET /v1/reviews?state=pending` (50 a page), following `next_cursor`
    through the backlog and starting over at its end, one at a time."""
    batch = Batch("reviews")
    headers = {"Authorization": f"Bearer {stack.reviewer_key}"}
    cursor: str | None = None
    batch.started = time.monotonic()
    for _ in range(reads):
        params = {"state": "pending", "limit": "50", **({"cursor": cursor} if cursor else {})}
        t0 = time.monotonic()
        r = await http.get(f"{stack.api_url}/v1/reviews", params=params, headers=headers)
        batch.latencies.append(time.monotonic() - t0)
        if r.status_code != 200:
            batch.errors.append(f"GET /v1/reviews: {r.status_code} {r.text[:200]}")
            continue
        cursor = r.json()["next_cursor"]
    batch.finished = time.monotonic()
    return batch


def rss_megabytes(pid: int | None) -> float | None:
    """A process's resident memory (VmRSS), in MiB."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None
