"""The worker's webhook dispatcher (a worker component, not an activity) against a fake
platform: signed deliveries from the outbox, retried with back-off until a 2xx."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from domain.model import utcnow
from domain.refund import RefundBody
from peers.webhooks import verify_webhook
from store import outbox
from store import refunds as refund_rows
from store.models import NotificationRow
from tests.scratch import Scratch, stored_order, stored_refund
from workers.outbox import OutboxDispatcher

SECRET = "whsec-test"
URL = "http://platform.test/webhooks/refunds"


async def queued_status(scratch: Scratch) -> RefundBody:
    """A refund whose status change waits in the outbox for its webhook."""
    order = await stored_order(scratch)
    refund_id = await stored_refund(scratch, order)
    async with scratch.sessions.begin() as session:
        body = await refund_rows.load_body(session, refund_id)
        assert body is not None
        await outbox.enqueue_status(
            session, body, seq=1, webhook_url=URL, inbox=False, alerts=[], now=utcnow()
        )
    return body


async def webhook_row(scratch: Scratch, refund_id: str) -> NotificationRow:
    async with scratch.reads() as session:
        row = await session.scalar(
            select(NotificationRow).where(
                NotificationRow.refund_id == refund_id, NotificationRow.channel == "webhook"
            )
        )
    assert row is not None
    return row


async def test_a_status_change_is_delivered_signed_once(scratch: Scratch) -> None:
    body = await queued_status(scratch)
    received: list[httpx.Request] = []

    def platform(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(204)

    async with httpx.AsyncClient(transport=httpx.MockTransport(platform)) as http:
        dispatcher = OutboxDispatcher(scratch.sessions, http, secret=SECRET)
        await dispatcher.deliver_due()
        await dispatcher.deliver_due()  # delivered: nothing is sent twice

    mine = [r for r in received if r.headers["X-Refund-Id"] == body.refund_id]
    assert len(mine) == 1
    assert verify_webhook(SECRET, mine[0].content, mine[0].headers["X-Refund-Signature"])
    assert mine[0].headers["X-Refund-Status"] == "submitted"
    assert RefundBody.model_validate_json(mine[0].content) == body
    assert (await webhook_row(scratch, body.refund_id)).delivered_at is not None


async def test_a_failed_delivery_waits_and_is_retried(scratch: Scratch) -> None:
    body = await queued_status(scratch)

    def down(_: httpx.Request) -> httpx.Response:
        return httpx.Response(502)

    async with httpx.AsyncClient(transport=httpx.MockTransport(down)) as http:
        await OutboxDispatcher(scratch.sessions, http, secret=SECRET).deliver_due()

    row = await webhook_row(scratch, body.refund_id)
    assert row.delivered_at is None
    assert row.attempts == 1 and row.last_error == "HTTP 502"
    assert row.next_attempt_at is not None and row.next_attempt_at > utcnow()
