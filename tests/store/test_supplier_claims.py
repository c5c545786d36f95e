"""Claims against suppliers in the store: opened with the refund's `refunded` report (once,
however often it is reported), settled once even when the supplier credits twice, written
off once, and the ledger balanced throughout."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from domain.model import utcnow
from domain.supplier_claims import ClaimState
from domain.types import KeyState
from store import ledger
from store import supplier_claims as claims
from tests.scratch import Scratch, scratch_database, stored_order, stored_refund
from tests.store.claims_support import claims_of, order_of_keys, refunded_invalid, report_refunded


@pytest.fixture(scope="module")
async def scratch(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Scratch]:
    async with scratch_database(tmp_path_factory.mktemp("supplier-claims")) as db:
        yield db


async def balances(scratch: Scratch, *accounts: str) -> list[int]:
    async with scratch.reads() as session:
        return [await ledger.balance(session, a) for a in accounts]


async def trial_balance(scratch: Scratch) -> dict[str, int]:
    async with scratch.reads() as session:
        return await ledger.trial_balance(session)


async def claim(scratch: Scratch, refund_id: str) -> claims.Claim:
    (row,) = await claims_of(scratch, refund_id)
    return claims.Claim.of(row)


async def test_a_refund_paid_for_invalid_keys_opens_one_claim_per_supplier_posted_once(
    scratch: Scratch,
) -> None:
    order = await stored_order(scratch, order_of_keys(["sup-a", "sup-b", "sup-a"]))
    refund_id = await stored_refund(scratch, order)
    k1, k2, k3 = (k.card_key_id for k in order.items[0].card_keys)
    states = {k1: KeyState.INVALID, k2: KeyState.INVALID, k3: KeyState.UNREDEEMED}
    body = await report_refunded(scratch, order, refund_id, states)
    opened = await claims_of(scratch, refund_id)
    assert [(c.supplier, c.card_key_ids, c.amount, c.state) for c in opened] == [
        ("sup-a", [k1], 5000, ClaimState.OPEN),
        ("sup-b", [k2], 5000, ClaimState.OPEN),
    ]
    receivable_b = ledger.supplier_claims("sup-b")
    recovery = ledger.merchant_recovery(order.merchant_id)
    assert await balances(scratch, receivable_b, recovery) == [-5000, 10000]

    # The same report again (an activity retried), and a later one: nothing opens twice.
    await report_refunded(scratch, order, refund_id, states)
    async with scratch.sessions.begin() as session:
        assert await claims.open_claims(session, body, now=utcnow()) == []
    assert len(await claims_of(scratch, refund_id)) == 2
    assert await balances(scratch, receivable_b, recovery) == [-5000, 10000]
    assert set((await trial_balance(scratch)).values()) <= {0}


async def test_no_claim_without_a_key_confirmed_invalid(scratch: Scratch) -> None:
    _, refund_id = await refunded_invalid(scratch, [KeyState.UNREDEEMED])
    assert await claims_of(scratch, refund_id) == []


async def test_a_credit_settles_once_even_when_the_supplier_credits_twice(
    scratch: Scratch,
) -> None:
    order, refund_id = await refunded_invalid(scratch, [KeyState.INVALID], suppliers=["sup-c"])
    c = await claim(scratch, refund_id)
    accounts = (
        ledger.supplier_claims("sup-c"),
        ledger.supplier_clearing("sup-c"),
        ledger.merchant_recovery(order.merchant_id),
        ledger.merchant_settlement(order.merchant_id),
    )
    sold = 5000 - 500  # the sale: the merchant's share after the distributor's commission
    assert await balances(scratch, *accounts) == [-5000, 0, 5000, sold]
    async with scratch.sessions.begin() as session:
        assert await claims.recover(
            session, c, credit_id="CR-1", credited=5000, duplicates=0, now=utcnow()
        )
    async with scratch.sessions.begin() as session:  # the supplier's second credit
        assert not await claims.recover(
            session, c, credit_id="CR-2", credited=5000, duplicates=1, now=utcnow()
        )
        # ... nor can a claim recovered be written off afterwards.
        assert not await claims.write_off(session, c, why="late", now=utcnow())
    (row,) = await claims_of(scratch, refund_id)
    assert (row.state, row.recovered, row.credit_id, row.duplicate_credits) == (
        ClaimState.RECOVERED,
        5000,
        "CR-1",
        1,
    )
    # The supplier's credit cleared its claim; the merchant's recovery became settlement.
    assert await balances(scratch, *accounts) == [0, -5000, 0, sold + 5000]
    async with scratch.reads() as session:
        assert await ledger.posted(session, f"supplier-claim:{c.claim_id}:recovered")
        assert not await ledger.posted(session, f"supplier-claim:{c.claim_id}:written-off")
    assert set((await trial_balance(scratch)).values()) <= {0}


async def test_a_write_off_reverses_the_claim_once(scratch: Scratch) -> None:
    order, refund_id = await refunded_invalid(scratch, [KeyState.INVALID], suppliers=["sup-w"])
    c = await claim(scratch, refund_id)
    receivable = ledger.supplier_claims("sup-w")
    recovery = ledger.merchant_recovery(order.merchant_id)
    assert await balances(scratch, receivable, recovery) == [-5000, 5000]
    async with scratch.sessions.begin() as session:
        assert await claims.write_off(session, c, why="not credited within 30 days", now=utcnow())
        assert not await claims.write_off(session, c, why="again", now=utcnow())
    async with scratch.sessions.begin() as session:  # a credit after the write-off: ignored
        assert not await claims.recover(
            session, c, credit_id="CR-9", credited=5000, duplicates=0, now=utcnow()
        )
    assert await balances(scratch, receivable, recovery) == [0, 0]
    (row,) = await claims_of(scratch, refund_id)
    assert row.state is ClaimState.WRITTEN_OFF and row.outcome_note == "not credited within 30 days"
    assert set((await trial_balance(scratch)).values()) <= {0}


async def test_per_supplier_figures_and_the_deadline_query(scratch: Scratch) -> None:
    _, open_id = await refunded_invalid(scratch, [KeyState.INVALID], suppliers=["sup-f"])
    _, gone_id = await refunded_invalid(scratch, [KeyState.INVALID], suppliers=["sup-f"])
    async with scratch.sessions.begin() as session:
        await claims.write_off(session, await claim(scratch, gone_id), why="x", now=utcnow())
    async with scratch.reads() as session:
        (figures,) = [s for s in await claims.per_supplier(session) if s.supplier == "sup-f"]
        overdue = await claims.past_deadline(session, opened_before=utcnow() + timedelta(days=1))
        fresh = await claims.past_deadline(session, opened_before=utcnow() - timedelta(days=1))
    assert (figures.open.count, figures.open.amount) == (1, 5000)
    assert (figures.written_off.count, figures.written_off.amount) == (1, 5000)
    assert (figures.recovered.count, figures.recovered.amount) == (0, 0)
    assert open_id in {c.refund_id for c in overdue} and gone_id not in {
        c.refund_id for c in overdue
    }
    assert open_id not in {c.refund_id for c in fresh}
