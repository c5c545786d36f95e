"""The worker's webhook dispatcher (a worker component, not an activity) against a fake
platform: signed deliveries from the outbox, retried with back-off until a 2xx."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast

import httpx
from sqlalchemy import select

from domain.model import utcnow
from domain.refund import RefundBody
from peers.webhooks import verify_webhook
from store import outbox
from store import refunds as refund_rows
from store.models import NotificationRow
from store.upsert import insert_ignore
from tests.scratch import Scratch, stored_order, stored_refund
from workers.buyer_messages import BuyerMessenger
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


class _HangingMessenger:
    """A buyer-message sender whose provider never answers (until the test ends)."""

    max_attempts = 3

    def __init__(self) -> None:
        self.called = asyncio.Event()

    async def deliver(self, *_: Any, **__: Any) -> None:
        self.called.set()
        await asyncio.Event().wait()


async def test_a_hanging_buyer_message_does_not_hold_up_webhooks(scratch: Scratch) -> None:
    order = await stored_order(scratch)
    refund_id = await stored_refund(scratch, order)
    async with scratch.sessions.begin() as session:
        body = await refund_rows.load_body(session, refund_id)
        assert body is not None
        # The buyer's SMS is queued first: one loop over every channel would reach it, hang,
        # and never get to the webhook queued after it.
        await insert_ignore(
            session,
            NotificationRow,
            [
                {
                    "refund_id": refund_id,
                    "seq": 1,
                    "channel": outbox.SMS,
                    "recipient": f"buyer:{body.buyer_id}",
                    "status": "submitted",
                    "body": {"stage": "submitted", "refund_id": refund_id},
                    "created_at": utcnow(),
                    "attempts": 0,
                    "next_attempt_at": utcnow(),
                    "delivered_at": None,
                }
            ],
        )
    async with scratch.sessions.begin() as session:
        await outbox.enqueue_status(
            session, body, seq=1, webhook_url=URL, inbox=False, alerts=[], now=utcnow()
        )
    messenger = _HangingMessenger()

    def platform(_: httpx.Request) -> httpx.Response:
        return httpx.Response(204)

    async with httpx.AsyncClient(transport=httpx.MockTransport(platform)) as http:
        dispatcher = OutboxDispatcher(
            scratch.sessions,
            http,
            secret=SECRET,
            messenger=cast(BuyerMessenger, messenger),
            poll_seconds=0.05,
        )
        running = asyncio.create_task(dispatcher.run_forever())
        try:
            await asyncio.wait_for(messenger.called.wait(), timeout=10)
            for _ in range(200):
                if (await webhook_row(scratch, body.refund_id)).delivered_at is not None:
                    break
                await asyncio.sleep(0.05)
            # Delivered while the SMS for the same refund still hangs.
            assert (await webhook_row(scratch, body.refund_id)).delivered_at is not None
            assert not running.done()
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
