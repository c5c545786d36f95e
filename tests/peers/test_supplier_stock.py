"""SupplierClient's reservations (补发) against the sandbox supplier: stock, idempotency keys,
a reservation found again after an unknown outcome, confirm and release, and the faults."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from peers.supplier import Reservation, SupplierClient, SupplierUnavailable


async def stock(http: httpx.AsyncClient, sku: str, available: int | None = None) -> dict[str, Any]:
    if available is not None:
        (await http.put(f"/sandbox/stock/{sku}", json={"available": available})).raise_for_status()
    answer = await http.get(f"/sandbox/stock/{sku}")
    answer.raise_for_status()
    return dict(answer.json())


async def reserve(supplier: SupplierClient, sku: str, key: str) -> Reservation | None:
    return await supplier.reserve_key(
        "sup-a", sku=sku, order_id="O-1", replaces="K-old", idempotency_key=key
    )


async def test_a_reservation_takes_one_key_however_often_it_is_asked(
    supplier: SupplierClient, supplier_http: httpx.AsyncClient
) -> None:
    await stock(supplier_http, "sku-a", 2)
    first = await reserve(supplier, "sku-a", "R-1-replace")
    again = await reserve(supplier, "sku-a", "R-1-replace")
    assert first is not None and first == again and first.state == "reserved"
    shown = await stock(supplier_http, "sku-a")
    assert shown["available"] == 1 and len(shown["reservations"]) == 1
    assert await supplier.find_reservation("sup-a", idempotency_key="R-1-replace") == first
    assert await supplier.find_reservation("sup-a", idempotency_key="R-never") is None


async def test_no_stock_is_an_answer_not_an_error(
    supplier: SupplierClient, supplier_http: httpx.AsyncClient
) -> None:
    assert await reserve(supplier, "sku-none", "R-2-replace") is None
    await stock(supplier_http, "sku-b", 1)
    await supplier_http.post("/sandbox/reservations/faults", json={"mode": "out_of_stock"})
    assert await reserve(supplier, "sku-b", "R-3-replace") is None  # gone meanwhile
    assert (await stock(supplier_http, "sku-b"))["available"] == 1


async def test_a_timed_out_reservation_was_made_and_is_found_by_its_key(
    supplier: SupplierClient, supplier_http: httpx.AsyncClient
) -> None:
    """The sandbox reserves, then answers late (here: at once, fault_delay 0): what matters
    is that the reservation exists under the key before the answer."""
    await stock(supplier_http, "sku-c", 1)
    await supplier_http.post("/sandbox/reservations/faults", json={"mode": "timeout"})
    made = await reserve(supplier, "sku-c", "R-4-replace")
    assert made is not None
    assert await supplier.find_reservation("sup-a", idempotency_key="R-4-replace") == made
    # Stock is now 0, yet the same key still answers the same reservation, not "out of stock".
    assert await reserve(supplier, "sku-c", "R-4-replace") == made


async def test_5xx_reserves_nothing_and_is_transient(
    supplier: SupplierClient, supplier_http: httpx.AsyncClient
) -> None:
    await stock(supplier_http, "sku-d", 1)
    await supplier_http.post("/sandbox/reservations/faults", json={"mode": "error_5xx"})
    with pytest.raises(SupplierUnavailable):
        await reserve(supplier, "sku-d", "R-5-replace")
    assert await supplier.find_reservation("sup-a", idempotency_key="R-5-replace") is None
    assert await reserve(supplier, "sku-d", "R-5-replace") is not None


async def test_confirm_hands_the_key_over_once_and_release_gives_it_back(
    supplier: SupplierClient, supplier_http: httpx.AsyncClient
) -> None:
    await stock(supplier_http, "sku-e", 2)
    kept = await reserve(supplier, "sku-e", "R-6-replace")
    dropped = await reserve(supplier, "sku-e", "R-7-replace")
    assert kept is not None and dropped is not None and kept.card_key_id != dropped.card_key_id

    confirmed = await supplier.confirm_reservation(
        "sup-a", kept.reservation_id, order_id="O-1", buyer_id="U-1"
    )
    repeated = await supplier.confirm_reservation(
        "sup-a", kept.reservation_id, order_id="O-1", buyer_id="U-1"
    )
    assert confirmed.state == repeated.state == "confirmed"
    assert confirmed.card_key_id == kept.card_key_id
    # A confirmed key stays the buyer's.
    assert (await supplier.release_reservation("sup-a", kept.reservation_id)).state == "confirmed"

    released = await supplier.release_reservation("sup-a", dropped.reservation_id)
    assert released.state == "released"
    assert (await stock(supplier_http, "sku-e"))["available"] == 1
    # A released reservation cannot be handed over any more: said, not raised.
    late = await supplier.confirm_reservation(
        "sup-a", dropped.reservation_id, order_id="O-1", buyer_id="U-1"
    )
    assert late.state == "released"
