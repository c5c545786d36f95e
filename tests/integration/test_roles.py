"""Who may do what (CONTRACT.md, Conventions: a missing or unknown key is 401, a wrong role
403, admin may do everything), over real HTTP against the running system."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from tests.system import KEYS, System, card_key_order, course_order, unique

pytestmark = pytest.mark.integration

PROBLEM_JSON = "application/problem+json"


def problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM_JSON), r.headers["content-type"]
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["type"] and body["title"]
    return body


def unauthorized(r: httpx.Response) -> None:
    problem(r, 401)
    assert r.headers["www-authenticate"].lower().startswith("bearer"), r.headers


# Every /v1 endpoint, with a body good enough to get past validation.
ENDPOINTS: list[tuple[str, str, Any]] = [
    ("POST", "/v1/orders", card_key_order()),
    ("GET", "/v1/orders/O-1", None),
    ("POST", "/v1/orders/O-1/usage", {"item_id": "I-1", "downloaded": True}),
    ("POST", "/v1/refunds", {"order_id": "O-1", "buyer_id": "U-1", "reason": "other"}),
    ("GET", "/v1/refunds", None),
    ("GET", "/v1/refunds/rf_1", None),
    ("GET", "/v1/refunds/rf_1/events", None),
    ("POST", "/v1/refunds/rf_1/evidence", {"evidence": [{"kind": "other", "text": "x"}]}),
    ("POST", "/v1/refunds/rf_1/cancel", {"buyer_id": "U-1"}),
    ("POST", "/v1/refunds/rf_1/appeal", {"buyer_id": "U-1", "text": "x"}),
    ("POST", "/v1/refunds/rf_1/approve", {"reviewer": "alice"}),
    ("POST", "/v1/refunds/rf_1/reject", {"reviewer": "alice", "reason": "no"}),
    ("GET", "/v1/reviews?state=pending", None),
]
IDS = [f"{m} {p}" for m, p, _ in ENDPOINTS]


async def call(
    system: System, method: str, path: str, body: Any, headers: dict[str, str]
) -> httpx.Response:
    return await system.http.request(
        method,
        system.url(path),
        json=body,
        headers={"Idempotency-Key": unique("idem"), **headers},
    )


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS, ids=IDS)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Bearer"},
        {"Authorization": f"Bearer {KEYS['platform']}x"},
        {"Authorization": KEYS["platform"]},
        {"Authorization": f"Basic {base64.b64encode(KEYS['admin'].encode()).decode()}"},
        {"Authorization": f"Basic {KEYS['admin']}"},
        {"Authorization": f"Token {KEYS['admin']}"},
        {"X-Api-Key": KEYS["admin"]},
    ],
    ids=["none", "unknown", "empty", "near-miss", "no-scheme", "basic", "basic-raw", "token",
         "x-api-key"],
)  # fmt: skip
async def test_no_valid_key_is_401(
    system: System, method: str, path: str, body: Any, headers: dict[str, str]
) -> None:
    unauthorized(await call(system, method, path, body, headers))


async def test_401_comes_before_anything_else(system: System) -> None:
    # ... before validation, before "not found", before idempotency checks.
    unauthorized(await call(system, "POST", "/v1/orders", {"order_id": 1}, {}))
    unauthorized(await call(system, "POST", "/v1/refunds", {}, {"Idempotency-Key": ""}))
    unauthorized(await call(system, "GET", "/v1/refunds?limit=0&cursor=bad", None, {}))
    unauthorized(await call(system, "GET", f"/v1/refunds/{unique('rf')}", None, {}))


async def test_401_comes_before_malformed_json(system: System) -> None:
    r = await system.http.post(
        system.url("/v1/orders"), content=b"{", headers={"Content-Type": "application/json"}
    )
    unauthorized(r)


async def test_bearer_scheme_is_case_insensitive(system: System) -> None:
    r = await system.http.get(
        system.url("/v1/refunds?limit=1"), headers={"Authorization": f"bearer {KEYS['platform']}"}
    )
    assert r.status_code == 200, r.text


FORBIDDEN: dict[str, list[tuple[str, str, Any]]] = {
    "reviewer": [
        ("POST", "/v1/orders", card_key_order()),
        ("POST", "/v1/orders/O-1/usage", {"item_id": "I-1", "downloaded": True}),
        ("POST", "/v1/refunds", {"order_id": "O-1", "buyer_id": "U-1", "reason": "other"}),
        ("POST", "/v1/refunds/rf_1/evidence", {"evidence": [{"kind": "other", "text": "x"}]}),
        ("POST", "/v1/refunds/rf_1/cancel", {"buyer_id": "U-1"}),
        ("POST", "/v1/refunds/rf_1/appeal", {"buyer_id": "U-1", "text": "x"}),
    ],
    "platform": [
        ("POST", "/v1/refunds/rf_1/approve", {"reviewer": "alice"}),
        ("POST", "/v1/refunds/rf_1/reject", {"reviewer": "alice", "reason": "no"}),
        ("GET", "/v1/reviews?state=pending", None),
        ("GET", "/v1/reviews", None),
    ],
}


@pytest.mark.parametrize(
    ("role", "method", "path", "body"),
    [(role, *endpoint) for role, endpoints in FORBIDDEN.items() for endpoint in endpoints],
    ids=[f"{role} {m} {p}" for role, endpoints in FORBIDDEN.items() for m, p, _ in endpoints],
)
async def test_wrong_role_is_403(
    system: System, role: str, method: str, path: str, body: Any
) -> None:
    r = await call(system, method, path, body, {"Authorization": f"Bearer {KEYS[role]}"})
    answer = problem(r, 403)
    assert role in answer["detail"]
    assert "www-authenticate" not in r.headers


async def test_wrong_role_changes_nothing(system: System) -> None:
    order = card_key_order()
    reviewer = {"Authorization": f"Bearer {KEYS['reviewer']}"}
    problem(await call(system, "POST", "/v1/orders", order, reviewer), 403)
    problem(await system.get(f"/v1/orders/{order['order_id']}"), 404)

    await system.record(order)
    refund = {"order_id": order["order_id"], "buyer_id": order["buyer_id"], "reason": "other"}
    problem(await call(system, "POST", "/v1/refunds", refund, reviewer), 403)
    problem(
        await call(
            system,
            "POST",
            f"/v1/orders/{order['order_id']}/usage",
            {"item_id": "I-1", "key_revealed": True},
            reviewer,
        ),
        403,
    )
    shown = (await system.get(f"/v1/orders/{order['order_id']}")).json()
    assert shown["refunds"] == []
    assert shown["items"][0]["usage"]["key_revealed"] is False


async def test_platform_may_not_approve_or_reject_a_real_refund(system: System) -> None:
    order = await system.record(course_order(progress=20, minutes_ago=120))
    rid = await system.refund_id(order, reason="changed_mind")
    await system.wait_status(rid, "pending_review")
    problem(await system.post(f"/v1/refunds/{rid}/approve", {"reviewer": "mallory"}), 403)
    problem(
        await system.post(f"/v1/refunds/{rid}/reject", {"reviewer": "mallory", "reason": "x"}),
        403,
    )
    body = await system.body(rid)
    assert body["status"] == "pending_review" and body["review"]["reviewer"] is None
    # ... and the reviewer may: clean up by rejecting.
    r = await system.post(
        f"/v1/refunds/{rid}/reject", {"reviewer": "bob", "reason": "test"}, role="reviewer"
    )
    assert r.status_code == 202, r.text


async def test_admin_may_do_everything(system: System) -> None:
    order = course_order(progress=20, minutes_ago=120)
    r = await system.post("/v1/orders", order, role="admin")
    assert r.status_code == 201, r.text
    r = await system.post(
        f"/v1/orders/{order['order_id']}/usage",
        {"item_id": "I-1", "progress_pct": 30},
        role="admin",
    )
    assert r.status_code == 200, r.text
    body = {"order_id": order["order_id"], "buyer_id": order["buyer_id"], "reason": "changed_mind"}
    r = await system.post("/v1/refunds", body, role="admin", **{"Idempotency-Key": unique("k")})
    assert r.status_code == 202, r.text
    rid = r.json()["refund_id"]
    await system.wait_status(rid, "pending_review")

    for path in (
        f"/v1/refunds/{rid}",
        f"/v1/orders/{order['order_id']}",
        f"/v1/refunds?order_id={order['order_id']}",
        "/v1/reviews?state=pending",
    ):
        r = await system.get(path, role="admin")
        assert r.status_code == 200, (path, r.text)
    r = await system.post(
        f"/v1/refunds/{rid}/evidence",
        {"evidence": [{"kind": "other", "text": "admin note"}]},
        role="admin",
    )
    assert r.status_code == 202, r.text
    r = await system.post(
        f"/v1/refunds/{rid}/approve", {"reviewer": "root", "amount": 1000}, role="admin"
    )
    assert r.status_code == 202, r.text
    done = await system.wait_status(rid, "refunded")
    assert done["amount"] == 1000


async def test_reviewer_and_platform_may_read_a_refund(system: System) -> None:
    order = await system.record(card_key_order())
    rid = await system.refund_id(order)
    for role in ("platform", "reviewer", "admin"):
        r = await system.get(f"/v1/refunds/{rid}", role=role)
        assert r.status_code == 200, (role, r.text)
        assert r.json()["refund_id"] == rid
        r = await system.get(f"/v1/refunds?order_id={order['order_id']}", role=role)
        assert [b["refund_id"] for b in r.json()["refunds"]] == [rid], role
        r = await system.get(f"/v1/orders/{order['order_id']}", role=role)
        assert r.status_code == 200, (role, r.text)
    r = await system.get("/v1/reviews?state=pending", role="reviewer")
    assert r.status_code == 200 and "reviews" in r.json()


async def test_health_needs_no_key(system: System) -> None:
    r = await system.http.get(system.url("/healthz"))
    assert r.status_code == 200 and r.json() == {"status": "ok"}
