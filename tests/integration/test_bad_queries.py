"""Bad query strings and unknown things, end to end over real HTTP: cursors (made up or
forged), limits and filters of the listings, the review queue, the inbox and the distributor
account are 422 problems naming the parameter; unknown refunds, orders and routes are 404
problems."""

from __future__ import annotations

import base64
import json

import pytest

from tests.integration.bad_input import problem
from tests.system import KEYS, System, unique

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "cursor",
    [
        "nonsense",
        "%%%",
        "W10",  # base64 of []
        "WzEsMl0",  # [1,2]
        "WyJub3QgYSBkYXRlIiwieCJd",  # ["not a date","x"]
        "eyJhIjoxfQ",  # {"a":1}
        "c" * 513,
    ],
)
async def test_bad_cursor_is_422(system: System, cursor: str) -> None:
    r = await system.http.get(
        system.url("/v1/refunds"),
        params={"cursor": cursor},
        headers={"Authorization": f"Bearer {KEYS['platform']}"},
    )
    problem(r, 422, "cursor")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=500", "limit"),
        ("limit=-1", "limit"),
        ("limit=ten", "limit"),
        ("status=done", "status"),
        ("order_id=O%201", "order_id"),
    ],
)
async def test_bad_list_query_is_422(system: System, query: str, field: str) -> None:
    problem(await system.get(f"/v1/refunds?{query}"), 422, field)


async def test_unknown_things_are_404_problems(system: System) -> None:
    problem(await system.get(f"/v1/refunds/{unique('rf')}"), 404)
    problem(await system.get(f"/v1/refunds/{unique('rf')}/events"), 404)
    problem(await system.get(f"/v1/orders/{unique('O')}"), 404)
    problem(await system.get("/v1/nothing-here"), 404)
    problem(await system.get("/nothing-here"), 404)
    problem(await system.post(f"/v1/refunds/{unique('rf')}/cancel", {"buyer_id": "U-1"}), 404)
    problem(await system.post(f"/v1/refunds/{unique('rf')}/evidence",
                              {"evidence": [{"kind": "other", "text": "x"}]}), 404)  # fmt: skip
    problem(
        await system.post(
            f"/v1/refunds/{unique('rf')}/approve", {"reviewer": "alice"}, role="reviewer"
        ),
        404,
    )
    r = await system.http.delete(
        system.url("/v1/orders"), headers={"Authorization": f"Bearer {KEYS['admin']}"}
    )
    problem(r, 405)


def forged_cursor(created: str, refund_id: str) -> str:
    raw = json.dumps([created, refund_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        forged_cursor("2026-11-20T08:00:00", "rf_x"),  # naive
        forged_cursor("2026-11-20T08:00:00+00:00", "rf_\u0000"),
        forged_cursor("0001-01-01T00:00:00+14:00", "rf_x"),
        forged_cursor("9999-12-31T23:59:59-14:00", "rf_x"),
    ],
    ids=["naive", "nul", "min", "max"],
)
async def test_forged_cursor_is_422(system: System, cursor: str) -> None:
    r = await system.http.get(
        system.url("/v1/refunds"),
        params={"cursor": cursor, "limit": 1},
        headers={"Authorization": f"Bearer {KEYS['platform']}"},
    )
    problem(r, 422, "cursor")


async def test_issued_cursor_pages_on(system: System) -> None:
    first = await system.get("/v1/refunds?limit=1")
    assert first.status_code == 200, first.text
    cursor = first.json()["next_cursor"]
    if cursor is not None:
        r = await system.get(f"/v1/refunds?limit=1&cursor={cursor}")
        assert r.status_code == 200, r.text


async def test_bad_review_query_is_422(system: System) -> None:
    problem(await system.get("/v1/reviews?state=done", role="reviewer"), 422, "state")
    problem(await system.get("/v1/reviews?limit=0", role="reviewer"), 422, "limit")
    problem(await system.get("/v1/reviews?limit=201", role="reviewer"), 422, "limit")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("after_id=9223372036854775808", "after_id"),  # 2^63: a 500 before (issue 8)
        ("after_id=2147483648", "after_id"),  # past the id column's range
        ("after_id=" + "9" * 40, "after_id"),
        ("after_id=-1", "after_id"),
        ("limit=201", "limit"),
    ],
)
async def test_bad_inbox_query_is_422(system: System, query: str, field: str) -> None:
    r = await system.get(f"/v1/notifications?recipient=buyer:U-42&{query}")
    problem(r, 422, field)


async def test_largest_inbox_cursor_is_an_empty_page(system: System) -> None:
    r = await system.get("/v1/notifications?recipient=buyer:U-42&after_id=2147483647")
    assert r.status_code == 200, r.text
    assert r.json() == {"notifications": [], "next_after_id": None}


@pytest.mark.parametrize("currency", ["cny", "CNYX", "", "%00"])
async def test_bad_account_currency_is_422(system: System, currency: str) -> None:
    problem(await system.get(f"/v1/distributors/U-7/account?currency={currency}"), 422, "currency")
