"""Delivers the outbox: webhooks to the shop platform (signed, retried until a 2xx) and, with
a `BuyerMessenger`, the buyers' SMS and e-mails (retried with back-off, then given up on in a
state SREs can list: `GET /v1/notifications/buyer-messages?state=failed`).

A worker component, not an activity: no workflow waits for it. The worker process runs
its loop beside the Temporal worker (`workers.main`); several workers may run it at once,
since each round leases the rows it takes (`store.outbox.claim_due`)."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from domain.model import utcnow
from peers.delivery import DeliveryFailed
from peers.webhooks import sign_webhook
from store import outbox
from store.db import SessionFactory
from telemetry.metrics import BUYER_MESSAGES, WEBHOOK_LAG
from workers.buyer_messages import BuyerMessenger, Skipped

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """One leased outbox row, read out of its session."""

    row_id: int
    refund_id: str
    seq: int
    channel: str
    recipient: str
    status: str
    body: dict[str, Any]
    attempts: int
    created_at: datetime


class OutboxDispatcher:
    def __init__(
        self,
        sessions: SessionFactory,
        http: httpx.AsyncClient,
        *,
        secret: str,
        messenger: BuyerMessenger | None = None,
        poll_seconds: float = 0.25,
    ) -> None:
        self.sessions = sessions
        self.http = http
        self.secret = secret
        self.messenger = messenger
        self.poll_seconds = poll_seconds
        self.channels = (outbox.WEBHOOK, *(outbox.BUYER_CHANNELS if messenger else ()))

    async def run_forever(self) -> None:
        # One loop for the platform's webhooks, one for the buyers' messages: an SMS provider
        # or SMTP server that hangs until the HTTP timeout must not hold up status webhooks.
        loops = [self._loop((outbox.WEBHOOK,))]
        if self.messenger is not None:
            loops.append(self._loop(outbox.BUYER_CHANNELS))
        await asyncio.gather(*loops)

    async def _loop(self, channels: tuple[str, ...]) -> None:
        while True:
            try:
                sent = await self.deliver_due(channels)
            except Exception:  # the database may be away for a while: keep the loop alive
                log.exception("outbox dispatch round failed (%s)", ", ".join(channels))
                sent = 0
            if not sent:
                await asyncio.sleep(self.poll_seconds)

    async def deliver_due(self, channels: tuple[str, ...] | None = None) -> int:
        """Deliver what is due on `channels` (default: every channel this dispatcher serves);
        how many were tried."""
        async with self.sessions.begin() as session:
            due = await outbox.claim_due(session, now=utcnow(), channels=channels or self.channels)
            jobs = [
                Job(
                    r.id,
                    r.refund_id,
                    r.seq,
                    r.channel,
                    r.recipient,
                    r.status,
                    r.body,
                    r.attempts,
                    r.created_at,
                )
                for r in due
            ]
        for job in jobs:
            if job.channel == outbox.WEBHOOK:
                await self._webhook(job)
            else:
                await self._buyer_message(job)
        return len(jobs)

    async def _webhook(self, job: Job) -> None:
        raw = json.dumps(job.body, separators=(",", ":"), ensure_ascii=False).encode()
        error = await self._post(job.recipient, raw, job.status, job.refund_id)
        async with self.sessions.begin() as session:
            if error is None:
                delivered_at = utcnow()
                await outbox.mark_delivered(session, job.row_id, now=delivered_at)
                WEBHOOK_LAG.observe(max((delivered_at - job.created_at).total_seconds(), 0.0))
            else:
                log.warning(
                    "webhook for %s failed (%s); will retry",
                    job.refund_id,
                    error,
                    extra={"refund_id": job.refund_id},
                )
                await outbox.mark_failed(
                    session, job.row_id, attempts=job.attempts, error=error, now=utcnow()
                )

    async def _buyer_message(self, job: Job) -> None:
        assert self.messenger is not None
        error, give_up, result = None, False, "sent"
        try:
            await self.messenger.deliver(
                job.channel, job.body, refund_id=job.refund_id, seq=job.seq
            )
        except Skipped as skipped:
            error, give_up, result = f"skipped: {skipped}", True, "skipped"
        except DeliveryFailed as failed:
            out_of_tries = job.attempts + 1 >= self.messenger.max_attempts
            give_up = failed.permanent or out_of_tries
            error, result = failed.reason, "failed" if give_up else "retry"
        BUYER_MESSAGES.labels(job.channel, result).inc()
        if error is not None and result != "skipped":
            log.warning(
                "%s for %s (%s): %s; %s",
                job.channel,
                job.refund_id,
                job.body.get("stage"),
                error,
                "gave up" if give_up else "will retry",
                extra={"refund_id": job.refund_id},
            )
        async with self.sessions.begin() as session:
            if error is None:
                await outbox.mark_delivered(session, job.row_id, now=utcnow())
            else:
                await outbox.mark_failed(
                    session,
                    job.row_id,
                    attempts=job.attempts,
                    error=error,
                    now=utcnow(),
                    give_up=give_up,
                )

    async def _post(self, url: str, raw: bytes, status: str, refund_id: str) -> str | None:
        try:
            response = await self.http.post(
                url,
                content=raw,
                headers={
                    "Content-Type": "application/json",
                    "X-Refund-Signature": sign_webhook(self.secret, raw),
                    "X-Refund-Id": refund_id,
                    "X-Refund-Status": status,
                },
            )
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"
