"""The audit chain and the ledger's running balances, on a database of their own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import delete, update

from domain.model import utcnow
from store import audit, ledger
from store.models import AuditRow
from tests.scratch import Scratch, scratch_database


@pytest.fixture(scope="module")
async def scratch(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Scratch]:
    async with scratch_database(tmp_path_factory.mktemp("audit-ledger")) as db:
        yield db


async def append(scratch: Scratch, key: str) -> bool:
    async with scratch.sessions.begin() as session:
        return await audit.append(
            session,
            event_key=key,
            actor="test",
            action="test.event",
            subject="test",
            payload={"key": key},
            at=utcnow(),
        )


async def test_an_event_is_appended_once_and_the_chain_holds(scratch: Scratch) -> None:
    assert await append(scratch, "e1") and await append(scratch, "e2")
    assert not await append(scratch, "e1")  # a retry appends nothing
    async with scratch.reads() as session:
        assert (await audit.verify(session)).ok


async def test_a_skipped_sequence_number_is_not_a_break_but_a_removed_entry_is(
    scratch: Scratch,
) -> None:
    for key in ("g1", "g2", "g3"):
        await append(scratch, key)
    async with scratch.sessions.begin() as session:
        # What a rolled-back append leaves on PostgreSQL: a number never used.
        await session.execute(update(AuditRow).where(AuditRow.event_key == "g3").values(seq=10_000))
    async with scratch.reads() as session:
        assert (await audit.verify(session)).ok
    async with scratch.sessions.begin() as session:
        await session.execute(delete(AuditRow).where(AuditRow.event_key == "g2"))
    async with scratch.reads() as session:
        checked = await audit.verify(session)
    assert not checked.ok and checked.first_bad_seq == 10_000
    assert "missing or was altered" in checked.problem


async def test_balances_move_by_each_entry_in_one_statement(scratch: Scratch) -> None:
    now = utcnow()
    async with scratch.sessions.begin() as session:
        assert await ledger.post(session, "t1", {"a": -300, "b": 300}, currency="CNY", now=now)
        assert await ledger.post(session, "t2", {"a": -200, "b": 200}, currency="CNY", now=now)
        assert not await ledger.post(session, "t1", {"a": -300, "b": 300}, currency="CNY", now=now)
    async with scratch.reads() as session:
        assert await ledger.balance(session, "a") == -500
        assert await ledger.balance(session, "b") == 500
