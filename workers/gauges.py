"""The worker's gauges from the database: open refunds by status, the review backlog and
its oldest deadline, reviews past their deadline, stuck refunds by kind, undelivered
webhooks, claims against suppliers by state, the settlement balance holds keep, and the
ledger's imbalance (which must be 0). Read every METRICS_DB_SECONDS (the ledger every
METRICS_LEDGER_SECONDS) through the read-only sessions, so they never wait for a writer.
Several workers read the same figures: aggregate them with max."""

from __future__ import annotations

import asyncio
import logging
import time

from domain.model import utcnow
from store import figures, holds, ledger, supplier_claims
from store.db import SessionFactory
from store.figures import StageLimits
from telemetry.metrics import (
    BALANCE_HELD,
    FIGURES_READ_AT,
    LEDGER_IMBALANCE,
    OPEN_REFUNDS,
    REVIEW_BACKLOG,
    REVIEW_OLDEST_DEADLINE,
    REVIEWS_PAST_DEADLINE,
    STUCK,
    SUPPLIER_CLAIMS,
    WEBHOOK_OLDEST_UNDELIVERED,
    WEBHOOKS_UNDELIVERED,
)

log = logging.getLogger(__name__)


async def read_figures(reads: SessionFactory, limits: StageLimits) -> None:
    now = utcnow()
    async with reads() as session:
        open_now = await figures.open_refunds(session)
        review = await figures.reviews(session, now=now)
        stuck = await figures.stuck_counts(session, now=now, limits=limits)
        hooks = await figures.webhooks(session)
        claims = await supplier_claims.count_by_state(session)
        held = await holds.total_held(session)
    for status, count in open_now.items():
        OPEN_REFUNDS.labels(status.value).set(count)
    REVIEW_BACKLOG.set(review.backlog)
    REVIEW_OLDEST_DEADLINE.set(review.oldest_deadline.timestamp() if review.oldest_deadline else 0)
    REVIEWS_PAST_DEADLINE.set(review.past_deadline)
    for kind, count in stuck.items():
        STUCK.labels(kind).set(count)
    WEBHOOKS_UNDELIVERED.set(hooks.undelivered)
    age = (now - hooks.oldest_created_at).total_seconds() if hooks.oldest_created_at else 0.0
    WEBHOOK_OLDEST_UNDELIVERED.set(max(age, 0.0))
    for state, count in claims.items():
        SUPPLIER_CLAIMS.labels(state.value).set(count)
    for currency, amount in (held or {"CNY": 0}).items():
        BALANCE_HELD.labels(currency).set(amount)
    FIGURES_READ_AT.labels("refunds").set(time.time())


async def read_ledger(reads: SessionFactory) -> None:
    async with reads() as session:
        totals = await ledger.trial_balance(session)
    for currency, total in (totals or {"CNY": 0}).items():
        LEDGER_IMBALANCE.labels(currency).set(total)
    FIGURES_READ_AT.labels("ledger").set(time.time())


async def keep_gauges(
    reads: SessionFactory,
    limits: StageLimits,
    *,
    every_seconds: float,
    ledger_every_seconds: float,
) -> None:
    """Forever; a failed round (the database away) is logged and tried again next time."""
    next_ledger = 0.0
    while True:
        try:
            await read_figures(reads, limits)
            if time.monotonic() >= next_ledger:
                await read_ledger(reads)
                next_ledger = time.monotonic() + ledger_every_seconds
        except Exception:
            log.exception("reading the database figures for /metrics failed")
        await asyncio.sleep(every_seconds)
