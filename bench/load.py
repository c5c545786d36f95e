"""The load `refundctl bench` puts on its stack, and how it times it.

Closed loops: `concurrency` executions in flight, a slot starting the next one when its
previous one returned. Phase 1 runs EmptyWorkflow straight through the Temporal client; phase 2
records paid card-key orders and refunds them through the HTTP API, polling each refund until
`refunded`. CPU seconds per process are read from /proc around each measured phase.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.stack import EMPTY_TASK_QUEUE, BenchError, BenchStack

if TYPE_CHECKING:
    import httpx
    from temporalio.client import Client

MERCHANT = "M-BENCH"
# A refund that has not reached `refunded` after this long counts as failed.
REFUND_DEADLINE_SECONDS = 120.0
EMPTY_DEADLINE_SECONDS = 60.0


# --- figures -----------------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation): a value that was actually observed."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, int(-(-pct * len(ordered) // 100)))  # ceil(pct/100 * n)
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Batch:
    """One measured batch: latencies in seconds and the wall time it took."""

    name: str
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0

    @property
    def wall(self) -> float:
        return max(self.finished - self.started, 1e-9)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall

    def summary(self) -> dict[str, Any]:
        ms = [v * 1000 for v in self.latencies]
        return {
            "count": len(ms),
            "errors": len(self.errors),
            "wall_seconds": round(self.wall, 3),
            "rate_per_second": round(self.rate, 3),
            "p50_ms": round(percentile(ms, 50), 1),
            "p95_ms": round(percentile(ms, 95), 1),
            "p99_ms": round(percentile(ms, 99), 1),
            "max_ms": round(max(ms), 1) if ms else float("nan"),
            "mean_ms": round(sum(ms) / len(ms), 1) if ms else float("nan"),
            "first_errors": self.errors[:5],
        }


async def run_closed_loop(
    n: int, concurrency: int, one: Callable[[int], Awaitable[float]], batch: Batch
) -> Batch:
    """Run `one(i)` for i in range(n) with `concurrency` in flight; each returns its latency."""
    counter = itertools.count()

    async def slot() -> None:
        while (i := next(counter)) < n:
            try:
                batch.latencies.append(await one(i))
            except Exception as exc:
                batch.errors.append(f"#{i}: {type(exc).__name__}: {exc}"[:300])

    batch.started = time.monotonic()
    await asyncio.gather(*(slot() for _ in range(max(1, min(concurrency, n)))))
    batch.finished = time.monotonic()
    return batch


# --- CPU accounting ------------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _cpu_seconds(pid: int | None) -> float | None:
    """user+system CPU seconds of a process and of its running children (`refundctl worker
    --processes N` runs its other workers as children), from Linux's /proc."""
    if pid is None:
        return None
    fields = _stat(pid)
    if fields is None:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    # After the ")" : state is field 3, so ppid (4) is at 1, utime/stime (14/15) at 11/12.
    total = int(fields[11]) + int(fields[12])
    if pid == os.getpid():
        return total / ticks  # the bench's own children are the stack, counted apart
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (child := _stat(int(entry.name))) and child[1] == str(pid):
            total += int(child[11]) + int(child[12])
    return total / ticks


class CpuMeter:
    """CPU seconds each process of the stack spends during a phase."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = {"bench (this process)": os.getpid(), **pids}
        self._start: dict[str, float | None] = {}
        self.used: dict[str, float] = {}

    def start(self) -> None:
        self._start = {name: _cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self) -> dict[str, float]:
        for name, pid in self.pids.items():
            now, before = _cpu_seconds(pid), self._start.get(name)
            if now is not None and before is not None:
                self.used[name] = now - before
        return self.used


# --- phase 1: the empty workflow -----------------------------------------------------------------


async def bench_empty(
    client: Client, n: int, concurrency: int, warmup: int, run_id: str
) -> tuple[Batch, str]:
    from bench.empty import EmptyWorkflow

    async def one(i: int, prefix: str) -> float:
        t0 = time.monotonic()
        async with asyncio.timeout(EMPTY_DEADLINE_SECONDS):
            result = await client.execute_workflow(
                EmptyWorkflow.run, i, id=f"{prefix}-{i}", task_queue=EMPTY_TASK_QUEUE
            )
        if result != i:
            raise BenchError(f"EmptyWorkflow returned {result!r}, not {i}")
        return time.monotonic() - t0

    if warmup:
        await run_closed_loop(
            warmup, concurrency, lambda i: one(i, f"empty-warm-{run_id}"), Batch("warmup")
        )
    batch = await run_closed_loop(
        n, concurrency, lambda i: one(i, f"empty-{run_id}"), Batch("empty workflow")
    )
    return batch, f"empty-{run_id}-0"


# --- phase 2: refunds through the API ------------------------------------------------------------


def bench_order(serial: int, run_id: str) -> dict[str, Any]:
    """A paid card-key order whose key is unredeemed: the rules approve it without a person.

    Every order has a buyer, device and client address of its own so the risk checks see
    unrelated buyers (as tests/system.py's `card_key_order` / `unique_ip` do); channels alternate
    between Alipay and WeChat Pay."""
    channel = "alipay" if serial % 2 == 0 else "wechat"
    tag = f"{run_id}-{serial}"
    at = (datetime.now(UTC) - timedelta(minutes=30)).isoformat()
    amount = 5000
    return {
        "order_id": f"O-bench-{tag}",
        "merchant_id": MERCHANT,
        "buyer_id": f"U-bench-{tag}",
        "status": "paid",
        "currency": "CNY",
        "amount": amount,
        "created_at": at,
        "paid_at": at,
        "payments": [
            {
                "payment_id": "P-1",
                "channel": channel,
                "transaction_id": f"T-bench-{tag}",
                "amount": amount,
                "paid_at": at,
            }
        ],
        "items": [
            {
                "item_id": "I-1",
                "sku": "steam-50",
                "title": "Steam wallet 50",
                "product_type": "card_key",
                "quantity": 1,
                "unit_price": amount,
                "card_keys": [
                    {"card_key_id": f"K-bench-{tag}", "supplier": "sup-a", "delivered_at": at}
                ],
                "usage": {"key_revealed": False, "progress_pct": 0, "downloaded": False},
            }
        ],
        "client": {
            "ip": f"2001:db8:{run_id[:4]}::{serial:x}",
            "device_id": f"dev-bench-{tag}",
        },
        "commissions": [{"beneficiary_id": f"U-ref-{tag}", "level": 1, "amount": amount // 10}],
    }


@dataclass
class RefundTrace:
    refund_id: str
    post_seconds: float  # POST -> 202
    latency: float  # POST sent -> GET saw `refunded`
    server_seconds: float | None  # timeline: submitted -> money_arrived
    polls: int


async def record_orders(
    http: httpx.AsyncClient, stack: BenchStack, orders: list[dict[str, Any]], concurrency: int
) -> Batch:
    headers = {"Authorization": f"Bearer {stack.api_key}"}

    async def one(i: int) -> float:
        t0 = time.monotonic()
        r = await http.post(f"{stack.api_url}/v1/orders", json=orders[i], headers=headers)
        if r.status_code != 201:
            raise BenchError(f"POST /v1/orders: {r.status_code} {r.text[:200]}")
        return time.monotonic() - t0

    batch = await run_closed_loop(len(orders), concurrency, one, Batch("record order"))
    if batch.errors:
        raise BenchError("recording orders failed: " + "; ".join(batch.errors[:3]))
    return batch


async def bench_refunds(
    http: httpx.AsyncClient,
    stack: BenchStack,
    orders: list[dict[str, Any]],
    concurrency: int,
    poll_interval: float,
    name: str,
) -> tuple[Batch, list[RefundTrace]]:
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    traces: list[RefundTrace] = []

    async def one(i: int) -> float:
        order = orders[i]
        body = {
            "order_id": order["order_id"],
            "buyer_id": order["buyer_id"],
            "reason": "invalid_key",
        }
        t0 = time.monotonic()
        r = await http.post(
            f"{stack.api_url}/v1/refunds",
            json=body,
            headers={**headers, "Idempotency-Key": f"idem-{order['order_id']}"},
        )
        posted = time.monotonic() - t0
        if r.status_code != 202:
            raise BenchError(f"POST /v1/refunds: {r.status_code} {r.text[:200]}")
        refund_id = str(r.json()["refund_id"])
        polls = 0
        while True:
            await asyncio.sleep(poll_interval)
            polls += 1
            g = await http.get(f"{stack.api_url}/v1/refunds/{refund_id}", headers=headers)
            if g.status_code != 200:
                raise BenchError(f"GET /v1/refunds/{refund_id}: {g.status_code} {g.text[:200]}")
            now = time.monotonic()
            refund = g.json()
            status = refund["status"]
            if status == "refunded":
                break
            if status in ("rejected", "failed", "cancelled", "redirected_to_support"):
                raise BenchError(f"{refund_id} ended {status}: {refund.get('decision')}")
            if status == "pending_review":
                raise BenchError(f"{refund_id} went to review: {refund.get('decision')}")
            if now - t0 > REFUND_DEADLINE_SECONDS:
                raise BenchError(f"{refund_id} still {status} after {REFUND_DEADLINE_SECONDS}s")
        latency = now - t0
        traces.append(RefundTrace(refund_id, posted, latency, _server_seconds(refund), polls))
        return latency

    batch = await run_closed_loop(len(orders), concurrency, one, Batch(name))
    return batch, traces


def _server_seconds(body: dict[str, Any]) -> float | None:
    """submitted -> money_arrived from the refund's own timeline (workflow clock)."""
    at = {e["stage"]: e["at"] for e in body.get("timeline", [])}
    if "submitted" not in at or "money_arrived" not in at:
        return None
    start = datetime.fromisoformat(at["submitted"])
    end = datetime.fromisoformat(at["money_arrived"])
    return (end - start).total_seconds()


async def measured_refunds(
    http: httpx.AsyncClient,
    stack: BenchStack,
    orders: list[dict[str, Any]],
    args: Any,
    name: str,
) -> tuple[Batch, list[RefundTrace], dict[str, float]]:
    """`bench_refunds` at the run's concurrency and poll interval, with the CPU each process
    of the stack spent meanwhile: the refunds phase, and the same again under `--backlog` or
    during `--incident`."""
    meter = CpuMeter(stack.pids)
    meter.start()
    batch, traces = await bench_refunds(
        http, stack, orders, args.concurrency, args.poll_interval, name
    )
    return batch, traces, meter.stop()
