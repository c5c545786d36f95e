"""SupplierClient against the sandbox supplier."""

from __future__ import annotations

import httpx
import pytest

from domain.types import KeyState
from peers.supplier import SupplierClient, SupplierRejected, SupplierUnavailable
from tests.peers.conftest import SUPPLIER_KEY


async def set_key(http: httpx.AsyncClient, card_key_id: str, state: str) -> None:
    answer = await http.put(f"/sandbox/keys/{card_key_id}", json={"state": state})
    answer.raise_for_status()


async def test_key_states(supplier: SupplierClient, supplier_http: httpx.AsyncClient) -> None:
    assert await supplier.query_key("sup-a", "K-never-set") is KeyState.UNREDEEMED
    await set_key(supplier_http, "K-r", "redeemed")
    await set_key(supplier_http, "K-i", "invalid")
    assert await supplier.query_key("sup-a", "K-r") is KeyState.REDEEMED
    assert await supplier.query_key("sup-a", "K-i") is KeyState.INVALID


async def test_lock_is_idempotent(
    supplier: SupplierClient, supplier_http: httpx.AsyncClient
) -> None:
    first = await supplier.lock_key("sup-a", "K-1", idempotency_key="R-1-lock")
    again = await supplier.lock_key("sup-a", "K-1", idempotency_key="R-1-lock")
    assert first is KeyState.LOCKED and again is KeyState.LOCKED
    assert await supplier.query_key("sup-a", "K-1") is KeyState.LOCKED
    shown = (await supplier_http.get("/sandbox/keys/K-1")).json()
    assert shown["state"] == "locked" and shown["lock_calls"] == 2
    assert shown["idempotency_keys"] == ["R-1-lock"]


async def test_key_redeemed_meanwhile_is_an_answer_not_an_error(
    supplier: SupplierClient, supplier_http: httpx.AsyncClient
) -> None:
    assert await supplier.query_key("sup-a", "K-2") is KeyState.UNREDEEMED
    await set_key(supplier_http, "K-2", "redeemed")  # the buyer was quicker
    assert await supplier.lock_key("sup-a", "K-2", idempotency_key="R-2-lock") is (
        KeyState.REDEEMED
    )
    assert (await supplier_http.get("/sandbox/keys/K-2")).json()["state"] == "redeemed"


async def test_lock_of_an_invalid_key_answers_invalid(
    supplier: SupplierClient, supplier_http: httpx.AsyncClient
) -> None:
    await set_key(supplier_http, "K-3", "invalid")
    assert await supplier.lock_key("sup-a", "K-3", idempotency_key="R-3-lock") is KeyState.INVALID


async def test_wrong_secret_is_refused(supplier_http: httpx.AsyncClient) -> None:
    forger = SupplierClient(
        supplier_http, url_for=lambda _: "http://supplier.test", api_key=SUPPLIER_KEY, secret="x"
    )
    with pytest.raises(SupplierRejected) as refused:
        await forger.query_key("sup-a", "K-4")
    assert refused.value.status == 401


async def test_5xx_is_transient(supplier: SupplierClient, supplier_http: httpx.AsyncClient) -> None:
    await supplier_http.post("/sandbox/faults", json={"mode": "error_5xx", "count": 2})
    for _ in range(2):
        with pytest.raises(SupplierUnavailable):
            await supplier.lock_key("sup-a", "K-5", idempotency_key="R-5-lock")
    assert (await supplier_http.get("/sandbox/keys/K-5")).json()["state"] == "unredeemed"
    assert await supplier.lock_key("sup-a", "K-5", idempotency_key="R-5-lock") is KeyState.LOCKED


async def test_unreachable_supplier_is_transient() -> None:
    async with httpx.AsyncClient(timeout=0.5) as http:
        client = SupplierClient(
            http, url_for=lambda _: "http://127.0.0.1:9", api_key="k", secret="s"
        )
        with pytest.raises(SupplierUnavailable):
            await client.query_key("sup-a", "K-6")
