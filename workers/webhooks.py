"""Delivers the outbox's webhooks to the shop platform, signed, retrying until a 2xx.

A worker component, not an activity: no workflow waits for it. The worker process runs
its loop beside the Temporal worker (`workers.main`); several workers may run it at once,
since each round leases the rows it takes (`store.outbox.claim_due`)."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx

from domain.model import utcnow
from peers.webhooks import sign_webhook
from store import outbox
from store.db import SessionFactory
from telemetry.metrics import WEBHOOK_LAG

log = logging.getLogger(__name__)


class WebhookDispatcher:
    def __init__(
        self,
        sessions: SessionFactory,
        http: httpx.AsyncClient,
        *,
        secret: str,
        poll_seconds: float = 0.25,
    ) -> None:
        self.sessions = sessions
        self.http = http
        self.secret = secret
        self.poll_seconds = poll_seconds

    async def run_forever(self) -> None:
        while True:
            try:
                sent = await self.deliver_due()
            except Exception:  # the database may be away for a while: keep the loop alive
                log.exception("webhook dispatch round failed")
                sent = 0
            if not sent:
                await asyncio.sleep(self.poll_seconds)

    async def deliver_due(self) -> int:
        async with self.sessions.begin() as session:
            due = await outbox.claim_due(session, now=utcnow())
            jobs = [
                (r.id, r.recipient, r.body, r.attempts, r.status, r.refund_id, r.created_at)
                for r in due
            ]
        for row_id, url, body, attempts, status, refund_id, created_at in jobs:
            raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
            error = await self._post(url, raw, status, refund_id)
            async with self.sessions.begin() as session:
                if error is None:
                    delivered_at = utcnow()
                    await outbox.mark_delivered(session, row_id, now=delivered_at)
                    WEBHOOK_LAG.observe(max((delivered_at - created_at).total_seconds(), 0.0))
                else:
                    log.warning(
                        "webhook for %s failed (%s); will retry",
                        refund_id,
                        error,
                        extra={"refund_id": refund_id},
                    )
                    await outbox.mark_failed(
                        session, row_id, attempts=attempts, error=error, now=utcnow()
                    )
        return len(jobs)

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
