"""The claims driver against the sandbox supplier and a database of its own: it submits open
claims, asks before it resubmits one whose answer it never got, settles a credit once
(however often the supplier credits), writes off what the supplier refused or left unpaid
past the policy's deadline."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from domain.model import utcnow
from domain.policy import load_policy
from domain.supplier_claims import ClaimState
from domain.types import KeyState
from peers.supplier_claims import SupplierClaims
from sandbox.supplier import create_supplier_app
from store import ledger
from tests.peers.conftest import SUPPLIER_KEY, SUPPLIER_SECRET, asgi_client
from tests.scratch import Scratch, scratch_database
from tests.store.claims_support import claims_of, refunded_invalid
from workers.supplier_claims import MIN_POLL, ClaimsDriver

SUPPLIER = "http://supplier.test"
# How many claims a round reads at a time (`store.supplier_claims.due`).
PAGE = 50


@pytest.fixture(scope="module")
async def scratch(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Scratch]:
    async with scratch_database(tmp_path_factory.mktemp("claims-driver")) as db:
        yield db


class LostAnswers(httpx.AsyncBaseTransport):
    """Delivers every request; the answers to the next `lose` are lost on the way back (a
    read timeout after the supplier acted: the caller cannot know what happened)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.lose = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if self.lose:
            self.lose -= 1
            raise httpx.ReadTimeout("the answer never came", request=request)
        return response


@pytest.fixture(scope="module")
def supplier_app() -> FastAPI:
    return create_supplier_app(api_key=SUPPLIER_KEY, secret=SUPPLIER_SECRET, fault_delay=0.0)


@pytest.fixture(scope="module")
async def supplier_http(supplier_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(supplier_app, SUPPLIER) as http:
        yield http


@pytest.fixture
def transport(supplier_app: FastAPI) -> LostAnswers:
    return LostAnswers(httpx.ASGITransport(app=supplier_app))


@pytest.fixture
async def driver(scratch: Scratch, transport: LostAnswers) -> AsyncIterator[ClaimsDriver]:
    async with httpx.AsyncClient(transport=transport, base_url=SUPPLIER) as http:
        client = SupplierClaims(
            http, url_for=lambda _: SUPPLIER, api_key=SUPPLIER_KEY, secret=SUPPLIER_SECRET
        )
        yield ClaimsDriver(scratch.sessions, client, policy=load_policy)


async def at_supplier(http: httpx.AsyncClient, claim_id: str) -> dict[str, object]:
    answer = await http.get(f"/sandbox/claims/{claim_id}")
    return answer.json() if answer.status_code == 200 else {}


async def test_submitted_then_credited_twice_is_recovered_once(
    scratch: Scratch, driver: ClaimsDriver, supplier_http: httpx.AsyncClient
) -> None:
    order, refund_id = await refunded_invalid(scratch, [KeyState.INVALID], suppliers=["sup-d"])
    (claim,) = await claims_of(scratch, refund_id)
    now = utcnow()
    done = await driver.round(now)
    assert done.submitted >= 1
    (claim,) = await claims_of(scratch, refund_id)
    assert claim.state is ClaimState.SUBMITTED and claim.next_attempt_at > now
    assert (await at_supplier(supplier_http, claim.claim_id))["state"] == "pending"

    # Still pending at the next poll: it stays submitted.
    await driver.round(claim.next_attempt_at)
    (claim,) = await claims_of(scratch, refund_id)
    assert claim.state is ClaimState.SUBMITTED

    for _ in range(2):  # a supplier that credits the same claim twice
        await supplier_http.post(f"/sandbox/claims/{claim.claim_id}/credit", json={})
    await driver.round(claim.next_attempt_at)
    await driver.round(claim.next_attempt_at + timedelta(hours=2))
    (claim,) = await claims_of(scratch, refund_id)
    assert (claim.state, claim.recovered, claim.duplicate_credits) == (
        ClaimState.RECOVERED,
        5000,
        1,
    )
    assert (await at_supplier(supplier_http, claim.claim_id))["submissions"] == 1
    async with scratch.reads() as session:
        assert await ledger.balance(session, ledger.supplier_claims("sup-d")) == 0
        assert await ledger.balance(session, ledger.supplier_clearing("sup-d")) == -5000
        assert await ledger.balance(session, ledger.merchant_recovery(order.merchant_id)) == 0
        assert set((await ledger.trial_balance(session)).values()) <= {0}


async def test_a_5xx_on_submit_is_asked_about_before_it_is_sent_again(
    scratch: Scratch, driver: ClaimsDriver, supplier_http: httpx.AsyncClient
) -> None:
    _, refund_id = await refunded_invalid(scratch, [KeyState.INVALID], suppliers=["sup-5"])
    await supplier_http.post("/sandbox/claims/faults", json={"mode": "error_5xx", "count": 1})
    now = utcnow()
    await driver.round(now)
    (claim,) = await claims_of(scratch, refund_id)
    assert claim.state is ClaimState.OPEN and claim.attempts == 1
    assert "503" in (claim.last_error or "")
    assert await at_supplier(supplier_http, claim.claim_id) == {}

    await driver.round(claim.next_attempt_at)
    (claim,) = await claims_of(scratch, refund_id)
    shown = await at_supplier(supplier_http, claim.claim_id)
    assert claim.state is ClaimState.SUBMITTED and shown["submissions"] == 1
    # The claim the supplier did not have was asked for (404) before it was sent again.
    assert shown["queries"] == 1


async def test_a_lost_answer_is_asked_about_and_the_claim_never_sent_twice(
    scratch: Scratch,
    driver: ClaimsDriver,
    transport: LostAnswers,
    supplier_http: httpx.AsyncClient,
) -> None:
    _, refund_id = await refunded_invalid(scratch, [KeyState.INVALID], suppliers=["sup-t"])
    transport.lose = 1
    await driver.round(utcnow())
    (claim,) = await claims_of(scratch, refund_id)
    # Unknown, not refused: still ours, its attempt counted; the supplier took it though.
    assert claim.state is ClaimState.OPEN and claim.attempts == 1
    assert "ReadTimeout" in (claim.last_error or "")
    assert (await at_supplier(supplier_http, claim.claim_id))["submissions"] == 1

    await driver.round(claim.next_attempt_at)
    (claim,) = await claims_of(scratch, refund_id)
    shown = await at_supplier(supplier_http, claim.claim_id)
    assert claim.state is ClaimState.SUBMITTED
    assert (shown["queries"], shown["submissions"]) == (1, 1)  # found by its id, not resent


async def test_a_rejected_claim_is_written_off_with_the_reason(
    scratch: Scratch, driver: ClaimsDriver, supplier_http: httpx.AsyncClient
) -> None:
    order, refund_id = await refunded_invalid(scratch, [KeyState.INVALID], suppliers=["sup-r"])
    await driver.round(utcnow())
    (claim,) = await claims_of(scratch, refund_id)
    await supplier_http.post(
        f"/sandbox/claims/{claim.claim_id}/reject", json={"reason": "key_was_valid"}
    )
    await driver.round(claim.next_attempt_at)
    (claim,) = await claims_of(scratch, refund_id)
    assert claim.state is ClaimState.WRITTEN_OFF
    assert claim.outcome_note == "rejected by the supplier: key_was_valid"
    async with scratch.reads() as session:
        assert await ledger.balance(session, ledger.supplier_claims("sup-r")) == 0
        assert await ledger.balance(session, ledger.merchant_recovery(order.merchant_id)) == 0


async def test_a_claim_unpaid_past_the_deadline_is_written_off_and_a_paid_one_is_not(
    scratch: Scratch, driver: ClaimsDriver, supplier_http: httpx.AsyncClient
) -> None:
    _, unpaid_id = await refunded_invalid(scratch, [KeyState.INVALID], suppliers=["sup-l"])
    _, paid_id = await refunded_invalid(scratch, [KeyState.INVALID], suppliers=["sup-l"])
    await driver.round(utcnow())
    (paid,) = await claims_of(scratch, paid_id)
    # Credited just before the deadline, and not yet polled: the last look finds it.
    await supplier_http.post(f"/sandbox/claims/{paid.claim_id}/credit", json={})

    days = load_policy().claims.write_off_days
    assert days == 30
    await driver.round(utcnow() + timedelta(days=days - 1, hours=23))
    (unpaid,) = await claims_of(scratch, unpaid_id)
    assert unpaid.state is ClaimState.SUBMITTED  # not yet

    await driver.round(utcnow() + timedelta(days=days, minutes=1))
    (unpaid,) = await claims_of(scratch, unpaid_id)
    (paid,) = await claims_of(scratch, paid_id)
    assert unpaid.state is ClaimState.WRITTEN_OFF
    assert unpaid.outcome_note == f"not credited within {days} days"
    assert paid.state is ClaimState.RECOVERED
    async with scratch.reads() as session:
        assert await ledger.balance(session, ledger.supplier_claims("sup-l")) == 0
        assert set((await ledger.trial_balance(session)).values()) <= {0}


async def test_a_new_claim_is_submitted_ahead_of_a_page_of_overdue_polls(
    scratch: Scratch, driver: ClaimsDriver
) -> None:
    """A round takes a page of claims at a time; a fresh claim must not wait behind a page of
    old ones the supplier sits on (their polls overdue because the loop fell behind)."""
    waiting = [
        (await refunded_invalid(scratch, [KeyState.INVALID], suppliers=["sup-slow"]))[1]
        for _ in range(PAGE + 1)
    ]
    while (await driver.round(utcnow())).submitted:
        pass  # a page a round, until every one of them is at the supplier
    for refund_id in waiting:
        assert [c.state for c in await claims_of(scratch, refund_id)] == [ClaimState.SUBMITTED]
    await asyncio.sleep((MIN_POLL + timedelta(milliseconds=200)).total_seconds())
    _, fresh = await refunded_invalid(scratch, [KeyState.INVALID], suppliers=["sup-new"])

    await driver.round(utcnow())

    (claim,) = await claims_of(scratch, fresh)
    assert claim.state is ClaimState.SUBMITTED, "the fresh claim waited behind the polls"
