"""CardKeyChecks against a fake supplier (httpx MockTransport speaking the supplier's API)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from activities.supplier import CardKeyChecks
from domain.order import CardKeyRef
from domain.types import KeyState
from peers.supplier import SupplierClient, SupplierUnavailable
from tests.activities.conftest import run_activity
from workflows.messages import KeysRequest


class FakeSupplier:
    """Keys by id; a lock is refused (409) for a redeemed key, like the real one."""

    def __init__(self, keys: dict[str, str]) -> None:
        self.keys = keys
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        parts = request.url.path.split("/")  # ["", "v1", "keys", id] or [..., id, "lock"]
        key_id = parts[3]
        state = self.keys.get(key_id)
        if state is None:
            return httpx.Response(404, json={"error": "key_not_found"})
        if request.method == "GET":
            return httpx.Response(200, json={"card_key_id": key_id, "state": state})
        if state == "redeemed":
            return httpx.Response(409, json={"error": "key_redeemed", "state": "redeemed"})
        self.keys[key_id] = "locked"
        return httpx.Response(200, json={"state": "locked", "lock_id": f"L-{key_id}"})


@pytest.fixture
def supplier() -> FakeSupplier:
    return FakeSupplier({"K-fresh": "unredeemed", "K-used": "redeemed"})


@pytest.fixture
async def keys(supplier: FakeSupplier) -> AsyncIterator[CardKeyChecks]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(supplier)) as http:
        client = SupplierClient(
            http, url_for=lambda _: "http://supplier.test", api_key="k", secret="s"
        )
        yield CardKeyChecks(client)


def request(*key_ids: str) -> KeysRequest:
    at = datetime(2026, 11, 20, 8, tzinfo=UTC)
    return KeysRequest(
        refund_id="rf-1",
        keys=[CardKeyRef(card_key_id=k, supplier="sup-a", delivered_at=at) for k in key_ids],
    )


async def test_every_key_is_asked_about(keys: CardKeyChecks) -> None:
    answer = await run_activity(
        keys.query_key_redemption, request("K-fresh", "K-used", "K-unknown")
    )
    assert answer.states == {
        "K-fresh": KeyState.UNREDEEMED,
        "K-used": KeyState.REDEEMED,
        "K-unknown": KeyState.INVALID,
    }


async def test_locking_is_idempotent_per_refund_and_key(
    keys: CardKeyChecks, supplier: FakeSupplier
) -> None:
    answer = await run_activity(keys.lock_card_keys, request("K-fresh", "K-used"))

    # A key redeemed meanwhile is an answer, not an error: the workflow asks a person.
    assert answer.states == {"K-fresh": KeyState.LOCKED, "K-used": KeyState.REDEEMED}
    locks = [r for r in supplier.requests if r.method == "POST"]
    assert {r.headers["Idempotency-Key"] for r in locks} == {
        "rf-1-lock-K-fresh",
        "rf-1-lock-K-used",
    }
    assert all(json.loads(r.content) == {"reason": "refund"} for r in locks)
    assert all(r.headers["X-Signature"] for r in supplier.requests)


async def test_a_supplier_that_is_down_fails_the_attempt() -> None:
    def down(_: httpx.Request) -> httpx.Response:
        return httpx.Response(503)

    async with httpx.AsyncClient(transport=httpx.MockTransport(down)) as http:
        checks = CardKeyChecks(
            SupplierClient(http, url_for=lambda _: "http://supplier.test", api_key="k", secret="s")
        )
        with pytest.raises(SupplierUnavailable, match="HTTP 503"):  # Temporal retries it
            await run_activity(checks.query_key_redemption, request("K-fresh"))
