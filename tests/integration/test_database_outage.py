"""A database outage mid-refund: writes are impossible for longer than the local
activities' timeout, so attempts fail and are retried; when the database is back the
refund finishes, paid once, with the books balanced."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from store import ledger
from store.db import is_sqlite, make_engine, make_session_factory
from tests.system import System, card_key_order

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 18  # longer than the 15 s start-to-close of the database steps


@contextlib.asynccontextmanager
async def database_down(url: str) -> AsyncIterator[None]:
    """Hold the write lock (SQLite) or exclusive table locks (PostgreSQL) so that nobody
    else can write: to the service this is a database that does not answer writes."""
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            if is_sqlite(url):
                await conn.exec_driver_sql("COMMIT")  # leave the listener's BEGIN IMMEDIATE
                await conn.exec_driver_sql("BEGIN EXCLUSIVE")
            else:
                await conn.execute(
                    text(
                        "LOCK TABLE refunds, refund_timeline, payouts, ledger_entries, balances "
                        "IN EXCLUSIVE MODE"
                    )
                )
            try:
                yield
            finally:
                await conn.rollback()
    finally:
        await engine.dispose()


async def test_refund_survives_a_database_outage(system: System) -> None:
    order = await system.record(card_key_order(channel="wechat"))
    gateway = system.sandboxes.wechat
    # Park the payout in "processing" so the outage lands in the middle of the money path.
    await system.http.post(f"{gateway}/sandbox/faults", json={"mode": "processing", "count": 1})
    refund_id = await system.refund_id(order)
    await system.wait_status(refund_id, "refunding", "refunded")

    async with database_down(system.settings.database_url):
        await asyncio.sleep(OUTAGE_SECONDS)

    body = await system.wait_status(refund_id, "refunded", within=90)
    assert [p["state"] for p in body["payouts"]] == ["succeeded"]
    refunds = await system.gateway_refunds("wechat", order["payments"][0]["transaction_id"])
    assert len(refunds) == 1
    engine = make_engine(system.settings.database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT txn_id FROM ledger_entries WHERE refund_id = :r"), {"r": refund_id}
            )
            txns = sorted({r.txn_id for r in rows})
        assert txns.count(f"refund:{refund_id}:payout:1") == 1
        async with make_session_factory(engine)() as session:
            assert all(v == 0 for v in (await ledger.trial_balance(session)).values())
    finally:
        await engine.dispose()
