"""The refunds a chaos run fires and follows, through the HTTP API as a platform would.

Orders rotate between Alipay, WeChat Pay and the platform balance; every order has a buyer,
device and client address of its own so the risk rules see unrelated buyers and approve the
refund without a person. Some WeChat refunds are made to settle as "processing": a fault is
armed at the sandbox (`POST /sandbox/faults`) just before the refund is requested.

The API may be dead at any moment (the run kills it once): every call is retried until it
answers, and the refund request carries an Idempotency-Key, so a retry never makes a second
refund.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

__all__ = ["CHANNELS", "Refund", "Workload", "chaos_order"]

CHANNELS = ("alipay", "wechat", "balance")
AMOUNT = 5000
MERCHANT = "M-CHAOS"
# Nobody will move these without a person: following them further cannot change the outcome.
WAITS_FOR_A_PERSON = frozenset({"pending_review", "needs_attention"})
TERMINAL = frozenset(
    {"refunded", "rejected", "failed", "cancelled", "redirected_to_support", "replaced"}
)
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


def chaos_order(serial: int, run_id: str, channel: str) -> dict[str, Any]:
    """A paid card-key order with an unredeemed key: the rules refund it automatically."""
    tag = f"{run_id}-{serial}"
    at = (datetime.now(UTC) - timedelta(minutes=30)).isoformat()
    return {
        "order_id": f"O-chaos-{tag}",
        "merchant_id": MERCHANT,
        "buyer_id": f"U-chaos-{tag}",
        "status": "paid",
        "currency": "CNY",
        "amount": AMOUNT,
        "created_at": at,
        "paid_at": at,
        "payments": [
            {
                "payment_id": "P-1",
                "channel": channel,
                "transaction_id": f"T-chaos-{tag}",
                "amount": AMOUNT,
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
                "unit_price": AMOUNT,
                "card_keys": [
                    {"card_key_id": f"K-chaos-{tag}", "supplier": "sup-a", "delivered_at": at}
                ],
                "usage": {"key_revealed": False, "progress_pct": 0, "downloaded": False},
            }
        ],
        "client": {"ip": f"2001:db8:{run_id[:4]}::{serial:x}", "device_id": f"dev-chaos-{tag}"},
        "commissions": [{"beneficiary_id": f"U-ref-{tag}", "level": 1, "amount": AMOUNT // 10}],
    }


@dataclass
class Refund:
    """One order of the run and what became of its refund."""

    serial: int
    order: dict[str, Any]
    channel: str
    processing: bool = False  # a "processing" fault was armed just before its request
    posted_at: float | None = None  # time.time() the refund was first requested
    refund_id: str | None = None
    status: str | None = None
    finished_at: float | None = None  # the refund's last timeline entry (server clock)
    body: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def transaction_id(self) -> str:
        return str(self.order["payments"][0]["transaction_id"])

    @property
    def done(self) -> bool:
        return self.status in TERMINAL or self.status in WAITS_FOR_A_PERSON

    @property
    def in_flight(self) -> bool:
        return self.posted_at is not None and not self.done


def _finished_at(body: dict[str, Any]) -> float | None:
    stamps = [datetime.fromisoformat(e["at"]).timestamp() for e in body.get("timeline", [])]
    return max(stamps) if stamps else None


class Workload:
    """Fires `len(refunds)` refunds, `concurrency` at a time, and follows each to its end."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        api_url: str,
        api_key: str,
        wechat_url: str,
        refunds: list[Refund],
        concurrency: int,
        poll_interval: float,
        follow_seconds: float,
    ) -> None:
        self.http = http
        self.api_url = api_url
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.wechat_url = wechat_url
        self.refunds = refunds
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self.follow_seconds = follow_seconds
        self.fired = 0
        self.api_retries = 0
        # Asked before firing refund i; the chaos run's killer holds the load back with it.
        self.may_fire: Callable[[int], Awaitable[None]] | None = None

    def in_flight(self) -> list[Refund]:
        return [r for r in self.refunds if r.in_flight]

    # --- HTTP that outlives an API restart ----------------------------------------------

    async def call(
        self, method: str, url: str, *, within: float = 180.0, **kwargs: Any
    ) -> httpx.Response:
        """The answer to one request, asked again while the server is down or overloaded."""
        deadline = time.monotonic() + within
        while True:
            try:
                response = await self.http.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}"
            else:
                if response.status_code not in RETRYABLE_STATUS:
                    return response
                problem = f"HTTP {response.status_code}"
            self.api_retries += 1
            if time.monotonic() > deadline:
                raise RuntimeError(f"{method} {url}: still failing after {within:.0f}s ({problem})")
            await asyncio.sleep(0.25)

    # --- the run --------------------------------------------------------------------------

    async def record_orders(self) -> None:
        async def one(refund: Refund) -> None:
            r = await self.call(
                "POST", f"{self.api_url}/v1/orders", json=refund.order, headers=self.headers
            )
            if r.status_code != 201:
                raise RuntimeError(f"POST /v1/orders: {r.status_code} {r.text[:200]}")

        await _in_parallel(self.refunds, self.concurrency, one)

    async def run(self) -> None:
        await _in_parallel(self.refunds, self.concurrency, self._fire_and_follow)

    async def _fire_and_follow(self, refund: Refund) -> None:
        if self.may_fire is not None:
            await self.may_fire(refund.serial)
        try:
            if refund.processing:
                r = await self.call(
                    "POST",
                    f"{self.wechat_url}/sandbox/faults",
                    json={"mode": "processing", "count": 1},
                )
                r.raise_for_status()
            refund.posted_at = time.time()
            self.fired += 1
            r = await self.call(
                "POST",
                f"{self.api_url}/v1/refunds",
                json={
                    "order_id": refund.order["order_id"],
                    "buyer_id": refund.order["buyer_id"],
                    "reason": "invalid_key",
                },
                headers={**self.headers, "Idempotency-Key": f"chaos-{refund.order['order_id']}"},
            )
            if r.status_code not in (200, 202):
                raise RuntimeError(f"POST /v1/refunds: {r.status_code} {r.text[:200]}")
            refund.refund_id = str(r.json()["refund_id"])
            await self.follow(refund, until=time.monotonic() + self.follow_seconds)
        except Exception as exc:  # one refund's trouble is a finding, not the end of the run
            refund.error = f"{type(exc).__name__}: {exc}"[:300]

    async def follow(self, refund: Refund, *, until: float) -> None:
        """Poll the refund until it ends, waits for a person, or `until` passes."""
        if refund.refund_id is None:
            return
        while not refund.done and time.monotonic() < until:
            await asyncio.sleep(self.poll_interval)
            await self.look(refund)

    async def look(self, refund: Refund) -> None:
        r = await self.call(
            "GET", f"{self.api_url}/v1/refunds/{refund.refund_id}", headers=self.headers
        )
        if r.status_code != 200:
            raise RuntimeError(f"GET /v1/refunds/{refund.refund_id}: {r.status_code}")
        refund.body = r.json()
        refund.status = str(refund.body["status"])
        if refund.done:
            refund.finished_at = _finished_at(refund.body)

    async def settle(self, within: float) -> None:
        """Follow every refund not yet ended for at most `within` seconds more."""
        until = time.monotonic() + within
        pending = [r for r in self.refunds if r.refund_id is not None and not r.done]

        async def one(refund: Refund) -> None:
            try:
                await self.follow(refund, until=until)
            except Exception as exc:
                refund.error = f"{type(exc).__name__}: {exc}"[:300]

        await _in_parallel(pending, self.concurrency, one)


async def _in_parallel(items: list[Any], concurrency: int, one: Any) -> None:
    """`one(item)` for every item, `concurrency` at a time, in order of the list."""
    counter = itertools.count()

    async def slot() -> None:
        while (i := next(counter)) < len(items):
            await one(items[i])

    await asyncio.gather(*(slot() for _ in range(max(1, min(concurrency, len(items))))))


def plan(n: int, run_id: str, rng: random.Random, processing_share: float) -> list[Refund]:
    """The run's orders: channels in turn, a share of the WeChat ones settling as processing."""
    refunds = []
    for serial in range(n):
        channel = CHANNELS[serial % len(CHANNELS)]
        processing = channel == "wechat" and rng.random() < processing_share
        refunds.append(
            Refund(serial, chaos_order(serial, run_id, channel), channel, processing=processing)
        )
    return refunds
