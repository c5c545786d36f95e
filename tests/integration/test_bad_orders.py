"""Bad orders, end to end over real HTTP: every rejection of `POST /v1/orders` (and of
`POST /v1/orders/{id}/usage`) is a 4xx problem+json naming the field (CONTRACT.md,
Conventions), never a 500, and never leaves an order stored; times in the future or at the
edge of the calendar included."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from domain.model import MAX_AMOUNT
from tests.integration.bad_input import assert_no_order, problem, raw_post
from tests.system import System, card_key_order, course_order, unique

pytestmark = pytest.mark.integration


async def test_order_malformed_json_is_400(system: System) -> None:
    order = card_key_order()
    text = json.dumps(order)[:-7]  # cut off mid-object
    body = problem(await raw_post(system, "/v1/orders", text.encode()), 400)
    assert body["errors"][0]["field"] == "body"
    await assert_no_order(system, order["order_id"])


async def test_order_body_that_is_not_an_object_is_422(system: System) -> None:
    for raw in (b"[]", b'"order"', b"null", b"42"):
        problem(await raw_post(system, "/v1/orders", raw), 422)


def _without(order: dict[str, Any], *path: str | int) -> dict[str, Any]:
    bad = copy.deepcopy(order)
    target: Any = bad
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]
    return bad


def _with(order: dict[str, Any], value: Any, *path: str | int) -> dict[str, Any]:
    bad = copy.deepcopy(order)
    target: Any = bad
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return bad


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (("order_id",), "order_id"),
        (("buyer_id",), "buyer_id"),
        (("merchant_id",), "merchant_id"),
        (("status",), "status"),
        (("amount",), "amount"),
        (("created_at",), "created_at"),
        (("items",), "items"),
        (("items", 0, "product_type"), "items[0].product_type"),
        (("items", 0, "quantity"), "items[0].quantity"),
        (("payments", 0, "channel"), "payments[0].channel"),
        (("payments", 0, "paid_at"), "payments[0].paid_at"),
    ],
)
async def test_order_missing_field_is_422(
    system: System, path: tuple[str | int, ...], field: str
) -> None:
    order = card_key_order()
    problem(await system.post("/v1/orders", _without(order, *path)), 422, field)
    if field != "order_id":
        await assert_no_order(system, order["order_id"])


AMOUNT = 5000  # card_key_order's default unit price and amount


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        # unknown enum values
        (("status",), "refunded", "status"),
        (("status",), "PAID", "status"),
        (("payments", 0, "channel"), "paypal", "payments[0].channel"),
        (("items", 0, "product_type"), "gift_card", "items[0].product_type"),
        (("items", 0, "usage", "topup_status"), "done", "items[0].usage.topup_status"),
        # amounts: integers in range only, never floats or strings
        (("amount",), -5000, "amount"),
        (("amount",), MAX_AMOUNT + 1, "amount"),
        (("amount",), 10**40, "amount"),
        (("amount",), 5000.5, "amount"),
        (("amount",), 5000.0, "amount"),
        (("amount",), "5000", "amount"),
        (("amount",), None, "amount"),
        (("amount",), True, "amount"),
        (("items", 0, "unit_price"), -1, "items[0].unit_price"),
        (("items", 0, "unit_price"), "5000", "items[0].unit_price"),
        (("items", 0, "quantity"), 0, "items[0].quantity"),
        (("items", 0, "quantity"), 1.5, "items[0].quantity"),
        (("payments", 0, "amount"), 0, "payments[0].amount"),
        (("payments", 0, "amount"), MAX_AMOUNT + 1, "payments[0].amount"),
        (("commissions", 0, "amount"), -1, "commissions[0].amount"),
        (("commissions", 0, "level"), 0, "commissions[0].level"),
        (("items", 0, "usage", "progress_pct"), 101, "items[0].usage.progress_pct"),
        (("currency",), "cny", "currency"),
        (("currency",), "RMB1", "currency"),
        # lengths and identifier shapes
        (("order_id",), "O" * 129, "order_id"),
        (("order_id",), "", "order_id"),
        (("order_id",), "O 1001", "order_id"),
        (("order_id",), "O/1001", "order_id"),
        (("order_id",), "../etc", "order_id"),
        (("buyer_id",), "U 42", "buyer_id"),
        (("items", 0, "item_id"), "I/1", "items[0].item_id"),
        (("items", 0, "title"), "t" * 201, "items[0].title"),
        (("items", 0, "card_keys", 0, "card_key_id"), "K 9", "items[0].card_keys[0].card_key_id"),
        (("client", "ip"), "1" * 65, "client.ip"),
        # times must carry an offset
        (("created_at",), "2026-11-20T08:00:00", "created_at"),
        (("created_at",), "yesterday", "created_at"),
        (("paid_at",), "2026-11-20T08:00:05", "paid_at"),
        (("payments", 0, "paid_at"), "2026-11-20 08:00:05", "payments[0].paid_at"),
        (("items", 0, "card_keys", 0, "delivered_at"), "2026-11-20T08:00:06",
         "items[0].card_keys[0].delivered_at"),
        # wrong shapes
        (("items",), [], "items"),
        (("items",), {"item_id": "I-1"}, "items"),
        (("payments",), "P-1", "payments"),
        (("items", 0), "I-1", "items[0]"),
    ],
)  # fmt: skip
async def test_order_bad_value_is_422(
    system: System, path: tuple[str | int, ...], value: Any, field: str
) -> None:
    order = card_key_order(amount=AMOUNT)
    bad = _with(order, value, *path)
    problem(await system.post("/v1/orders", bad), 422, field)
    if path != ("order_id",):
        await assert_no_order(system, order["order_id"])


async def test_order_amount_must_equal_the_item_totals(system: System) -> None:
    order = card_key_order(amount=5000)
    bad = _with(_with(order, 6000, "amount"), 6000, "payments", 0, "amount")
    body = problem(await system.post("/v1/orders", bad), 422)
    assert any("amount" in e["field"] or "amount" in e["message"] for e in body["errors"])
    await assert_no_order(system, order["order_id"])


async def test_cross_field_errors_name_the_field(system: System) -> None:
    order = card_key_order(amount=5000)
    mismatch = _with(_with(order, 6000, "amount"), 6000, "payments", 0, "amount")
    problem(await system.post("/v1/orders", mismatch), 422, "amount")
    problem(await system.post("/v1/orders", _with(order, [], "payments")), 422, "payments")
    twice = _with(order, [order["items"][0], order["items"][0]], "items")
    problem(await system.post("/v1/orders", twice), 422, "items")


async def test_paid_order_without_payments_is_422(system: System) -> None:
    order = card_key_order()
    body = problem(await system.post("/v1/orders", _with(order, [], "payments")), 422)
    assert "payment" in body["detail"]
    short = _with(order, 100, "payments", 0, "amount")
    problem(await system.post("/v1/orders", short), 422)
    await assert_no_order(system, order["order_id"])


async def test_order_duplicate_ids_are_422(system: System) -> None:
    order = card_key_order()
    item = order["items"][0]
    twice = _with(_with(order, [item, item], "items"), 10000, "amount")
    twice["payments"][0]["amount"] = 10000
    body = problem(await system.post("/v1/orders", twice), 422)
    assert "item_id" in body["detail"]
    payment = order["payments"][0]
    pays = _with(order, [payment, payment], "payments")
    problem(await system.post("/v1/orders", pays), 422)
    await assert_no_order(system, order["order_id"])


async def test_commissions_above_the_amount_are_422(system: System) -> None:
    order = card_key_order()
    rich = _with(order, [{"beneficiary_id": "U-7", "level": 1, "amount": 5001}], "commissions")
    problem(await system.post("/v1/orders", rich), 422)
    await assert_no_order(system, order["order_id"])


async def test_order_is_idempotent_on_order_id(system: System) -> None:
    order = card_key_order()
    first = await system.post("/v1/orders", order)
    assert first.status_code == 201, first.text
    again = await system.post("/v1/orders", order)
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    # Unknown extra fields are ignored: still the same order.
    assert (await system.post("/v1/orders", {**order, "note": "x"})).status_code == 200

    changed = _with(order, "Another title", "items", 0, "title")
    body = problem(await system.post("/v1/orders", changed), 409)
    assert body["order_id"] == order["order_id"]
    stored = (await system.get(f"/v1/orders/{order['order_id']}")).json()
    assert stored["items"][0]["title"] == order["items"][0]["title"]
    assert stored["refunds"] == []


async def test_offset_times_are_accepted_and_normalised_to_utc(system: System) -> None:
    order = card_key_order()
    order["created_at"] = "2025-11-20T16:00:00+08:00"
    order["paid_at"] = "2025-11-20T16:00:05+08:00"
    order["payments"][0]["paid_at"] = "2025-11-20T03:00:05-05:00"
    order["items"][0]["card_keys"][0]["delivered_at"] = "2025-11-20T08:00:06Z"
    r = await system.post("/v1/orders", order)
    assert r.status_code == 201, r.text

    def utc(text: str) -> datetime:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        offset = parsed.utcoffset()
        assert offset is not None and offset.total_seconds() == 0, text
        return parsed

    for shown in (r.json(), (await system.get(f"/v1/orders/{order['order_id']}")).json()):
        assert utc(shown["created_at"]) == datetime(2025, 11, 20, 8, 0, 0, tzinfo=UTC)
        assert utc(shown["paid_at"]) == datetime(2025, 11, 20, 8, 0, 5, tzinfo=UTC)
        assert utc(shown["payments"][0]["paid_at"]) == datetime(2025, 11, 20, 8, 0, 5, tzinfo=UTC)
    # The same instants spelled in UTC are the same order.
    same = copy.deepcopy(order)
    same["created_at"] = "2025-11-20T08:00:00Z"
    same["paid_at"] = "2025-11-20T08:00:05+00:00"
    assert (await system.post("/v1/orders", same)).status_code == 200


FUTURE_TIMES = [
    (("created_at",), "created_at"),
    (("paid_at",), "paid_at"),
    (("payments", 0, "paid_at"), "payments[0].paid_at"),
    (("items", 0, "card_keys", 0, "delivered_at"), "items[0].card_keys[0].delivered_at"),
]


def from_now(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


@pytest.mark.parametrize(("path", "field"), FUTURE_TIMES, ids=[f for _, f in FUTURE_TIMES])
@pytest.mark.parametrize(
    "when",
    ["9999-12-31T00:00:00Z", "2999-01-01T00:00:00+08:00", "in an hour"],
)
async def test_order_time_in_the_future_is_422(
    system: System, path: tuple[str | int, ...], field: str, when: str
) -> None:
    """An order "paid" in year 9999 was accepted and refunded "0 minutes after payment"."""
    order = card_key_order()
    if when == "in an hour":
        when = from_now(hours=1)
    body = problem(await system.post("/v1/orders", _with(order, when, *path)), 422, field)
    assert [e["field"] for e in body["errors"]] == [field]
    assert "future" in body["errors"][0]["message"]
    await assert_no_order(system, order["order_id"])


async def test_every_future_time_is_named(system: System) -> None:
    order = card_key_order()
    for path, _ in FUTURE_TIMES:
        order = _with(order, from_now(days=2), *path)
    body = problem(await system.post("/v1/orders", order), 422)
    assert sorted(e["field"] for e in body["errors"]) == sorted(f for _, f in FUTURE_TIMES)
    await assert_no_order(system, order["order_id"])


async def test_order_time_within_the_clock_skew_is_accepted(system: System) -> None:
    order = card_key_order()
    ahead = from_now(seconds=system.settings.max_clock_skew_seconds / 3)
    for path, _ in FUTURE_TIMES:
        order = _with(order, ahead, *path)
    r = await system.post("/v1/orders", order)
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
async def test_order_time_at_the_edge_of_the_calendar_is_422(system: System, when: str) -> None:
    order = card_key_order()
    order["created_at"] = when
    problem(await system.post("/v1/orders", order), 422, "created_at")
    await assert_no_order(system, order["order_id"])


# -- POST /v1/orders/{id}/usage -----------------------------------------------------------


async def test_usage_errors(system: System) -> None:
    order = await system.record(course_order(progress=10))
    oid = order["order_id"]
    usage = f"/v1/orders/{oid}/usage"

    problem(
        await system.post(
            f"/v1/orders/{unique('O')}/usage", {"item_id": "I-1", "downloaded": True}
        ),
        404,
    )
    problem(await system.post(usage, {"item_id": "I-404", "downloaded": True}), 422, "item_id")
    problem(await system.post(usage, {"item_id": "I-1", "progress_pct": 101}), 422, "progress_pct")
    problem(await system.post(usage, {"item_id": "I-1", "progress_pct": -1}), 422, "progress_pct")
    problem(await system.post(usage, {"item_id": "I-1", "progress_pct": 50.5}), 422, "progress_pct")
    problem(await system.post(usage, {"item_id": "I-1", "topup_status": "x"}), 422, "topup_status")
    problem(await system.post(usage, {"item_id": "I-1"}), 422)
    problem(await system.post(usage, {"downloaded": True}), 422, "item_id")
    problem(await raw_post(system, usage, b"{nope"), 400)
    problem(await system.post("/v1/orders/O%20bad/usage", {"item_id": "I-1", "downloaded": True}),
            422, "order_id")  # fmt: skip

    shown = (await system.get(f"/v1/orders/{oid}")).json()
    assert shown["items"][0]["usage"]["progress_pct"] == 10
    assert shown["items"][0]["usage"]["downloaded"] is False

    ok = await system.post(usage, {"item_id": "I-1", "progress_pct": 60, "downloaded": True})
    assert ok.status_code == 200, ok.text
    assert ok.json()["usage"]["progress_pct"] == 60
    shown = (await system.get(f"/v1/orders/{oid}")).json()
    assert shown["items"][0]["usage"]["progress_pct"] == 60
    assert shown["items"][0]["usage"]["downloaded"] is True
