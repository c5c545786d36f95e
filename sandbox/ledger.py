"""The sandbox gateways' memory: payments they know and every refund they accepted.

Both gateways keep refunds the same way; only how they name one differs (Alipay: trade and
`out_request_no`; WeChat: `out_refund_no` per merchant), so the ledger is keyed by a string the
gateway builds. The `/sandbox/refunds` listing is what tests read to prove that a retried call
paid exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["ABNORMAL", "CLOSED", "PROCESSING", "SUCCESS", "Ledger", "PaymentRecord", "RefundRecord"]

SUCCESS = "SUCCESS"
PROCESSING = "PROCESSING"
CLOSED = "CLOSED"
ABNORMAL = "ABNORMAL"


@dataclass
class PaymentRecord:
    transaction_id: str  # the gateway's number for the payment
    amount: int
    channel: str | None = None
    out_trade_no: str | None = None  # the merchant's number for it


@dataclass
class RefundRecord:
    key: str
    transaction_id: str
    out_refund_no: str
    amount: int
    status: str
    gateway_refund_id: str
    total: int = 0  # the payment total the caller stated (WeChat); 0 when not stated
    reason: str = ""
    notify_url: str | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    success_time: datetime | None = None
    # A PROCESSING refund settles to `settles_to` at `settle_at` (monotonic) or on a query.
    settles_to: str | None = None
    settle_at: float | None = None
    queries: int = 0
    slow: bool = False  # accepted as PROCESSING by an armed fault
    requests: int = 1  # how many refund calls named this refund (repeats included)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    # Where the money went instead, once an ABNORMAL refund was rescued (WeChat's
    # apply-abnormal-refund): type, bank_type and the *decrypted* bank fields, masked.
    rescue: dict[str, str] | None = None

    def public(self) -> dict[str, Any]:
        return {
            "transaction_id": self.transaction_id,
            "out_refund_no": self.out_refund_no,
            "amount": self.amount,
            "status": self.status,
            "gateway_refund_id": self.gateway_refund_id,
            "reason": self.reason,
            "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
            "success_time": (
                self.success_time.isoformat().replace("+00:00", "Z") if self.success_time else None
            ),
            "requests": self.requests,
            "queries": self.queries,
            "notifications": list(self.notifications),
            "rescue": dict(self.rescue) if self.rescue else None,
        }


class Ledger:
    """In-memory state of one sandbox gateway, guarded by one lock."""

    def __init__(
        self,
        *,
        settle_after: float,
        settle_after_queries: int | None,
        on_settled: Callable[[RefundRecord], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        self.settle_after = settle_after
        self.settle_after_queries = settle_after_queries
        self.on_settled = on_settled
        self.lock = asyncio.Lock()
        self.payments: dict[str, PaymentRecord] = {}
        self.refunds: dict[str, RefundRecord] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @staticmethod
    def new_refund_id(prefix: str) -> str:
        return f"{prefix}{datetime.now(UTC):%Y%m%d%H%M%S}{secrets.randbelow(10**8):08d}"

    def refunded_total(self, transaction_id: str) -> int:
        """What the payment has given back or committed to give back (closed ones returned)."""
        return sum(
            r.amount
            for r in self.refunds.values()
            if r.transaction_id == transaction_id and r.status != CLOSED
        )

    def exceeds_total(self, transaction_id: str, amount: int) -> bool:
        payment = self.payments.get(transaction_id)
        if payment is None:  # unknown payments have no known total: the demo must work
            return False
        return self.refunded_total(transaction_id) + amount > payment.amount

    def add(self, record: RefundRecord) -> None:
        """Keep an accepted refund (caller holds the lock); schedule its settlement."""
        self.refunds[record.key] = record
        if record.status == SUCCESS:
            record.success_time = record.created_at
        if record.status == PROCESSING and record.settles_to:
            record.settle_at = time.monotonic() + self.settle_after
            self.spawn(self._settle_later(record))
        elif record.status != PROCESSING and self.on_settled is not None:
            self.spawn(self.on_settled(record))

    def note_query(self, record: RefundRecord) -> None:
        """A query may settle a processing refund (caller holds the lock)."""
        record.queries += 1
        if record.status != PROCESSING or record.settles_to is None:
            return
        due_by_time = record.settle_at is not None and time.monotonic() >= record.settle_at
        due_by_queries = (
            self.settle_after_queries is not None and record.queries >= self.settle_after_queries
        )
        if due_by_time or due_by_queries:
            self._settle(record)

    def reopen(self, record: RefundRecord, *, settles_to: str) -> None:
        """Put a refund back in progress, to settle as a new one would (caller holds the lock):
        what WeChat does to an ABNORMAL refund sent to a bank card instead."""
        record.status = PROCESSING
        record.settles_to = settles_to
        record.success_time = None
        record.settle_at = time.monotonic() + self.settle_after
        self.spawn(self._settle_later(record))

    def force(self, record: RefundRecord, status: str) -> None:
        """Set a refund's status by hand (the `/sandbox` control; caller holds the lock): the
        way to settle a refund a fault left in progress for ever, or to play the gateway's
        back office. A final status is announced as if the gateway had settled it."""
        record.status = status
        record.settles_to = None
        record.settle_at = None
        record.success_time = datetime.now(UTC) if status == SUCCESS else None
        if status != PROCESSING and self.on_settled is not None:
            self.spawn(self.on_settled(record))

    def find(self, out_refund_no: str, transaction_id: str | None = None) -> list[RefundRecord]:
        """Refunds named `out_refund_no` (of `transaction_id` when given)."""
        return [
            r
            for r in self.refunds.values()
            if r.out_refund_no == out_refund_no
            and (transaction_id is None or r.transaction_id == transaction_id)
        ]

    def _settle(self, record: RefundRecord) -> None:
        assert record.settles_to is not None
        record.status = record.settles_to
        record.settles_to = None
        if record.status == SUCCESS:
            record.success_time = datetime.now(UTC)
        if self.on_settled is not None:
            self.spawn(self.on_settled(record))

    async def _settle_later(self, record: RefundRecord) -> None:
        await asyncio.sleep(self.settle_after)
        async with self.lock:
            if record.status == PROCESSING and record.settles_to is not None:
                self._settle(record)

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def listing(self, transaction_id: str | None = None) -> list[dict[str, Any]]:
        return [
            r.public()
            for r in sorted(self.refunds.values(), key=lambda r: r.created_at)
            if transaction_id is None or r.transaction_id == transaction_id
        ]

    async def reset(self) -> None:
        await self.cancel_tasks()
        async with self.lock:
            self.payments.clear()
            self.refunds.clear()

    async def cancel_tasks(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
