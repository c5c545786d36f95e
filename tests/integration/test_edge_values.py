"""Odd bytes and edge values, end to end over real HTTP: text no database can hold (NUL) is a
422, other odd text is stored as sent; values at their column's limit fit and one past it is
a 422, not a 500 on PostgreSQL; deeply nested JSON is a 4xx."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.integration.bad_input import (
    assert_no_order,
    idem,
    problem,
    raw_post,
    refund_body,
    refund_ids,
)
from tests.system import KEYS, System, card_key_order, unique

pytestmark = pytest.mark.integration


ODD_TEXTS = [
    pytest.param("nul \u0000 inside", id="nul"),
    pytest.param("lone surrogate \ud800 inside", id="surrogate"),
    pytest.param("emoji 🎮 and 中文 and rtl \u202e", id="unicode"),
]


async def _accepted_or_422(r: httpx.Response, field: str) -> int:
    """Odd but printable text is stored; text no database can hold is a 422 naming the field."""
    assert r.status_code in (200, 201, 202, 422), r.text
    if r.status_code == 422:
        problem(r, 422, field)
    return r.status_code


@pytest.mark.parametrize("text", ODD_TEXTS)
async def test_odd_characters_in_refund_text(system: System, text: str) -> None:
    o = await system.record(card_key_order())
    raw = json.dumps(refund_body(o, reason="other", reason_text=text)).encode()  # \u escapes
    r = await raw_post(system, "/v1/refunds", raw, **idem())
    if await _accepted_or_422(r, "reason_text") == 422:
        assert await refund_ids(system, o["order_id"]) == []
    else:
        assert (await system.body(r.json()["refund_id"]))["reason_text"] == text
    if "\u0000" in text:  # printable text is fine; NUL must not be (PostgreSQL cannot hold it)
        assert r.status_code == 422


@pytest.mark.parametrize("text", ODD_TEXTS)
async def test_odd_characters_in_order_text(system: System, text: str) -> None:
    order = card_key_order()
    order["items"][0]["title"] = text
    r = await raw_post(system, "/v1/orders", json.dumps(order).encode())
    if await _accepted_or_422(r, "items[0].title") == 422:
        await assert_no_order(system, order["order_id"])
    else:
        shown = (await system.get(f"/v1/orders/{order['order_id']}")).json()
        assert shown["items"][0]["title"] == text
    if "\u0000" in text:
        assert r.status_code == 422


async def test_blacklist_reason_longer_than_stored_is_422(system: System) -> None:
    """A 501-character reason was a 500 on PostgreSQL (the column holds 500)."""
    path = f"/v1/admin/blacklist/buyer/{unique('U')}"
    headers = {"Authorization": f"Bearer {KEYS['admin']}"}
    r = await system.http.put(system.url(path), json={"reason": "r" * 501}, headers=headers)
    problem(r, 422, "reason")
    r = await system.http.put(system.url(path), json={"reason": "r" * 500}, headers=headers)
    assert r.status_code == 200, r.text
    assert (await system.http.delete(system.url(path), headers=headers)).status_code == 204


async def test_longest_distributor_and_withdrawal_ids(system: System) -> None:
    """Ids at their 128-character limit each: the withdrawal's ledger transaction is named by
    both, which must fit its column (on PostgreSQL an overlong name was a 500)."""
    distributor = "D" * 128
    order = card_key_order(amount=5000)
    order["commissions"] = [{"beneficiary_id": distributor, "level": 1, "amount": 500}]
    await system.record(order)
    path = f"/v1/distributors/{distributor}/withdrawals"
    r = await system.post(path, {"withdrawal_id": "W" * 128, "amount": 100})
    problem(r, 422, "withdrawal_id")
    fits = "W" * (200 - len(f"withdrawal:{distributor}:"))
    r = await system.post(path, {"withdrawal_id": fits, "amount": 100})
    assert r.status_code == 200, r.text
    assert r.json()["available"] == 400
    again = await system.post(path, {"withdrawal_id": fits, "amount": 100})
    assert again.status_code == 200 and again.json()["available"] == 400


async def test_idempotency_key_of_255_characters_is_fine(system: System) -> None:
    o = await system.record(card_key_order())
    key = {"Idempotency-Key": unique("k").ljust(255, "k")}
    first = await system.post("/v1/refunds", refund_body(o), **key)
    assert first.status_code == 202, first.text
    again = await system.post("/v1/refunds", refund_body(o), **key)
    assert again.status_code == 200 and again.json()["refund_id"] == first.json()["refund_id"]


async def test_deeply_nested_json_is_a_4xx(system: System) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    r = await raw_post(system, "/v1/orders", deep)
    assert 400 <= r.status_code < 500, r.text
    problem(r, r.status_code)
    big = json.dumps({"order_id": "O-1", "items": [{"item_id": "I"}] * 5000}).encode()
    problem(await raw_post(system, "/v1/orders", big), 422, "items")
