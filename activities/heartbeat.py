"""Heartbeats for activities that wait on someone else (a gateway may take seconds).

Without them Temporal learns that a worker died only when the activity's start-to-close
timeout runs out; with a short heartbeat timeout it retries on a live worker within
seconds. Retrying a payout is safe: every call carries the refund's idempotency key."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from temporalio import activity

# The workflow schedules these activities with heartbeat_timeout = 3 x this.
INTERVAL_SECONDS = 1.0


@contextlib.asynccontextmanager
async def heartbeating(interval: float = INTERVAL_SECONDS) -> AsyncIterator[None]:
    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(interval)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
