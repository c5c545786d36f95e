"""What the store's reads cost and what its columns hold, on a database of this module's own.

The listings serve many refunds at once, so they must cost a constant number of queries
(not a handful per refund): counted here with an event listener, through the real routers,
for one refund and for twenty."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import StatementError

from api.app import create_app
from config.settings import Settings
from domain.model import utcnow
from domain.types import CommissionAction, PaymentChannel, PayoutState, RefundStatus
from store import commissions
from store import refunds as refund_rows
from store.models import PayoutRow, RefundRow
from tests.scratch import (
    Scratch,
    an_order,
    counting_statements,
    scratch_database,
    stored_order,
    stored_refund,
    unique,
)

REVIEWER = {"Authorization": "Bearer rk-count"}


@pytest.fixture(scope="module")
async def scratch(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Scratch]:
    async with scratch_database(tmp_path_factory.mktemp("store-queries")) as db:
        yield db


@pytest.fixture(scope="module")
async def api(scratch: Scratch) -> AsyncIterator[httpx.AsyncClient]:
    """The real app and routers over this module's database. The lifespan is not run: these
    reads need no Temporal client, so the state they use is set here."""
    settings = Settings(environment="test", database_url="sqlite://", api_keys="rk-count:reviewer")
    app = create_app(settings)
    app.state.settings = settings
    app.state.api_keys = settings.roles_by_key()
    app.state.sessions = scratch.sessions
    app.state.reads = scratch.reads
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


async def refund_with_parts(scratch: Scratch, *, buyer_id: str, in_review: bool) -> str:
    """A refund with every part a body shows: items, timeline, commissions and a payout."""
    order = await stored_order(scratch, an_order(buyer_id=buyer_id))
    refund_id = await stored_refund(scratch, order)
    now = utcnow()
    async with scratch.sessions.begin() as session:
        await commissions.move_commissions(
            session,
            refund_id=refund_id,
            order_id=order.order_id,
            merchant_id=order.merchant_id,
            currency="CNY",
            action=CommissionAction.FREEZE,
            refund_amount=order.amount,
            order_amount=order.amount,
            now=now,
        )
        session.add(
            PayoutRow(
                out_refund_no=f"{refund_id}-p1",
                refund_id=refund_id,
                attempt=1,
                payment_id="P-1",
                transaction_id=order.payments[0].transaction_id,
                channel=PaymentChannel.ALIPAY,
                amount=order.amount,
                payment_total=order.amount,
                currency="CNY",
                buyer_id=buyer_id,
                merchant_id=order.merchant_id,
                state=PayoutState.FAILED,
                created_at=now,
                updated_at=now,
            )
        )
        if in_review:
            row = await session.get(RefundRow, refund_id)
            assert row is not None
            row.status = RefundStatus.PENDING_REVIEW
            row.review_deadline = now + timedelta(hours=24)
    return refund_id


async def test_review_queue_costs_the_same_for_one_and_twenty_refunds(
    scratch: Scratch, api: httpx.AsyncClient
) -> None:
    await refund_with_parts(scratch, buyer_id=unique("U"), in_review=True)
    with counting_statements(scratch.engine) as one:
        first = await api.get("/v1/reviews", params={"state": "pending"}, headers=REVIEWER)
    assert first.status_code == 200, first.text
    assert len(first.json()["reviews"]) == 1

    for _ in range(19):
        await refund_with_parts(scratch, buyer_id=unique("U"), in_review=True)
    with counting_statements(scratch.engine) as twenty:
        queue = await api.get("/v1/reviews", params={"state": "pending"}, headers=REVIEWER)
    assert queue.status_code == 200, queue.text
    cases = queue.json()["reviews"]
    assert len(cases) == 20
    # Everything a reviewer sees came along: the order and every part of the refund.
    for case in cases:
        assert case["order"]["order_id"] == case["refund"]["order_id"]
        refund = case["refund"]
        assert refund["items"] and refund["timeline"] and refund["payouts"]
        assert refund["commissions"][0]["state"] == "frozen"
    # The refunds, their four parts, the orders and their five parts.
    assert len(twenty.sql) == len(one.sql) == 7, twenty.sql


async def test_refund_listing_costs_the_same_for_one_and_twenty_refunds(
    scratch: Scratch, api: httpx.AsyncClient
) -> None:
    buyer = unique("U")
    await refund_with_parts(scratch, buyer_id=buyer, in_review=False)
    with counting_statements(scratch.engine) as one:
        first = await api.get("/v1/refunds", params={"buyer_id": buyer}, headers=REVIEWER)
    assert first.status_code == 200, first.text
    assert len(first.json()["refunds"]) == 1

    for _ in range(19):
        await refund_with_parts(scratch, buyer_id=buyer, in_review=False)
    with counting_statements(scratch.engine) as twenty:
        page = await api.get("/v1/refunds", params={"buyer_id": buyer}, headers=REVIEWER)
    assert page.status_code == 200, page.text
    refunds = page.json()["refunds"]
    assert len(refunds) == 20
    assert all(r["items"] and r["timeline"] and r["payouts"] for r in refunds)
    # The refunds and their four parts.
    assert len(twenty.sql) == len(one.sql) == 5, twenty.sql


async def test_a_body_read_alone_still_has_its_parts(scratch: Scratch) -> None:
    """`load_body` of a refund the session already holds without its parts reads them."""
    refund_id = await refund_with_parts(scratch, buyer_id=unique("U"), in_review=False)
    async with scratch.reads() as session:
        assert await session.get(RefundRow, refund_id) is not None
        body = await refund_rows.load_body(session, refund_id)
    assert body is not None
    assert body.items and body.timeline and body.payouts and body.commissions


async def test_enum_columns_hold_the_same_words_as_before(scratch: Scratch) -> None:
    order = await stored_order(scratch)
    refund_id = await stored_refund(scratch, order)
    async with scratch.reads() as session:
        raw = (
            await session.execute(
                text("SELECT status, destination, reason FROM refunds WHERE refund_id = :id"),
                {"id": refund_id},
            )
        ).one()
        row = await session.get(RefundRow, refund_id)
    assert tuple(raw) == ("submitted", "original", "invalid_key")
    assert row is not None and row.status is RefundStatus.SUBMITTED


async def test_a_word_that_is_not_one_never_reaches_the_database(scratch: Scratch) -> None:
    order = await stored_order(scratch)
    refund_id = await stored_refund(scratch, order)
    with pytest.raises(StatementError):
        async with scratch.sessions.begin() as session:
            row = await session.get(RefundRow, refund_id)
            assert row is not None
            row.status = "paid_twice"  # type: ignore[assignment]
    async with scratch.reads() as session:
        row = await session.get(RefundRow, refund_id)
    assert row is not None and row.status is RefundStatus.SUBMITTED
