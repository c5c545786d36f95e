"""Test data and small helpers for RefundWorkflow tests on the time-skipping server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain.order import CardKeyRef, CommissionShare, Order, OrderItem, Payment, Usage
from domain.refund import RefundBody, RefundItemRequest, workflow_id_for
from domain.types import (
    OrderStatus,
    PaymentChannel,
    ProductType,
    RefundReason,
    RefundStatus,
    Remedy,
)
from tests.workflows.fakes import FakeBackend
from workflows.messages import RefundInput
from workflows.refund import RefundWorkflow
from workflows.search import start_search_attributes

HISTORIES = Path(__file__).resolve().parent.parent / "histories"
REGENERATE = os.environ.get("REGENERATE_HISTORIES") == "1"
CONVERTER = pydantic_data_converter

KEY_ID = "K-1"

# The scenarios whose histories are kept for the replay test: one per path a refund takes.
RECORDED = frozenset(
    {
        "auto_approve",
        "review_expired_auto_approve",
        "review_expired_wait",
        "reject_appeal_approve",
        "reject_no_appeal",
        "cancel_in_review",
        "processing_notified",
        "processing_polled",
        "closed_fallback",
        "redeemed_at_lock",
        "evidence_in_review",
        "unverified_then_verified",
        "unverified_needs_attention",
        "abnormal_rescued",
        # The reviewer console's actions (tests/workflows/test_review_console.py).
        "claim_lapses_then_approve",
        "claim_reassign_release",
        "four_eyes_approve",
        "evidence_requested",
        "recheck_keys",
        # A fresh key instead of money (tests/workflows/test_replacement.py).
        "replaced",
        "replacement_out_of_stock",
        # A lock the supplier refuses for good (patch `local-supplier-failures`).
        "lock_refused",
    }
)


def card_key_order(
    now: datetime,
    *,
    order_id: str = "O-1001",
    amount: int = 5000,
    key_revealed: bool = False,
    channel: PaymentChannel = PaymentChannel.ALIPAY,
    commissions: bool = True,
) -> Order:
    """One card key bought an hour ago (inside the 7-day window), paid in one payment, with
    one upline commission of 10 %."""
    paid_at = now - timedelta(hours=1)
    return Order(
        order_id=order_id,
        merchant_id="M-7",
        buyer_id="U-42",
        status=OrderStatus.PAID,
        amount=amount,
        created_at=paid_at - timedelta(seconds=5),
        paid_at=paid_at,
        payments=[
            Payment(
                payment_id="P-1",
                channel=channel,
                transaction_id="2026112022001",
                amount=amount,
                paid_at=paid_at,
            )
        ],
        items=[
            OrderItem(
                item_id="I-1",
                sku="steam-50",
                title="Steam wallet",
                product_type=ProductType.CARD_KEY,
                quantity=1,
                unit_price=amount,
                card_keys=[
                    CardKeyRef(
                        card_key_id=KEY_ID,
                        supplier="sup-a",
                        delivered_at=paid_at + timedelta(seconds=1),
                    )
                ],
                usage=Usage(key_revealed=key_revealed),
            )
        ],
        commissions=(
            [CommissionShare(beneficiary_id="U-7", level=1, amount=amount // 10)]
            if commissions
            else []
        ),
    )


def refund_input(
    order: Order,
    now: datetime,
    *,
    refund_id: str,
    reason: RefundReason = RefundReason.CHANGED_MIND,
    remedy: Remedy | None = None,
) -> RefundInput:
    return RefundInput(
        refund_id=refund_id,
        order_id=order.order_id,
        buyer_id=order.buyer_id,
        merchant_id=order.merchant_id,
        reason=reason,
        items=[RefundItemRequest(item_id=i.item_id, quantity=i.quantity) for i in order.items],
        amount=order.amount,
        currency=order.currency,
        created_at=now,
        remedy=remedy,
    )


@dataclass
class Refund:
    """A running refund: its workflow handle, the fake world it talks to, and the env."""

    env: WorkflowEnvironment
    handle: WorkflowHandle[RefundWorkflow, RefundBody]
    backend: FakeBackend
    started_at: datetime

    async def status(self) -> RefundBody:
        return await self.handle.query(RefundWorkflow.status)

    async def wait_for(
        self, predicate: Callable[[RefundBody], bool], *, timeout: float = 10.0
    ) -> RefundBody:
        """Poll the `status` query (real time, no skipping) until `predicate` holds."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + timeout
        while True:
            body = await self.status()
            if predicate(body):
                return body
            if loop.time() > give_up:
                raise AssertionError(f"condition not reached; status {body.status}: {body}")
            await asyncio.sleep(0.02)

    async def wait_for_status(self, status: RefundStatus, *, timeout: float = 10.0) -> RefundBody:
        return await self.wait_for(lambda b: b.status is status, timeout=timeout)

    async def result(self, *, timeout: float = 30.0) -> RefundBody:
        """The workflow's result; waiting on it lets the server skip time. Bounded in real
        time, so a workflow that never finishes fails its test instead of hanging the suite."""
        return await asyncio.wait_for(self.handle.result(), timeout)

    async def lifetime(self) -> timedelta:
        """How long the closed workflow ran, by the server's (skipping) clock. Not the test
        clock after `result()`: the server may skip on once the workflow has closed."""
        description = await self.handle.describe()
        assert description.close_time is not None, "the workflow is still running"
        return description.close_time - description.start_time


@contextlib.asynccontextmanager
async def running_refund(
    env: WorkflowEnvironment,
    make_backend: Callable[[datetime], FakeBackend],
    *,
    name: str,
    reason: RefundReason = RefundReason.CHANGED_MIND,
    remedy: Remedy | None = None,
) -> AsyncIterator[Refund]:
    """Start a worker with the fakes on its own task queue and one RefundWorkflow on it.

    `name` names the scenario: it is part of the refund id and, for the scenarios in
    `RECORDED` when REGENERATE_HISTORIES=1, the file under tests/histories the finished
    workflow's history is saved to."""
    now = await env.get_current_time()
    backend = make_backend(now)
    task_queue = f"refunds-{name}-{uuid.uuid4().hex[:8]}"
    refund_id = f"R-{name}-{uuid.uuid4().hex[:8]}"
    inp = refund_input(backend.order, now, refund_id=refund_id, reason=reason, remedy=remedy)
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[RefundWorkflow],
        activities=backend.activities(),
    ):
        handle = await env.client.start_workflow(
            RefundWorkflow.run,
            inp,
            id=workflow_id_for(refund_id),
            task_queue=task_queue,
            search_attributes=start_search_attributes(inp),
        )
        try:
            yield Refund(env=env, handle=handle, backend=backend, started_at=now)
            if REGENERATE and name in RECORDED:
                await asyncio.wait_for(handle.result(), 30)
                await write_history(handle, name)
        finally:
            # A workflow left running would keep timers on the shared server, firing into a
            # task queue nobody polls any more while later tests skip time.
            description = await handle.describe()
            if description.status is WorkflowExecutionStatus.RUNNING:
                await handle.terminate(reason="test finished")


async def write_history(handle: WorkflowHandle[RefundWorkflow, RefundBody], name: str) -> None:
    history = await handle.fetch_history()
    HISTORIES.mkdir(exist_ok=True)
    (HISTORIES / f"{name}.json").write_text(history.to_json() + "\n", encoding="utf-8")
