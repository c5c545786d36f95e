"""What the bad-input tests share: the assertion that an answer is a problem+json (RFC 9457)
naming the fields, requests sent as raw bytes, idempotency keys, refund bodies, and checks
that nothing was stored."""

from __future__ import annotations

from typing import Any

import httpx

from tests.system import KEYS, System, unique

PROBLEM_JSON = "application/problem+json"


def problem(r: httpx.Response, status: int, *fields: str) -> dict[str, Any]:
    """Assert an RFC 9457 answer with this status; for a 422, that `errors` names each field."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM_JSON), r.headers["content-type"]
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    assert body["type"] and body["title"] and body["detail"]
    if status == 422:
        assert isinstance(body["errors"], list) and body["errors"], body
        named = [e["field"] for e in body["errors"]]
        for field in fields:
            assert field in named, f"{field!r} not among {named}"
    return body


async def raw_post(
    system: System, path: str, content: bytes, role: str = "platform", **headers: str
) -> httpx.Response:
    return await system.http.post(
        system.url(path),
        content=content,
        headers={
            "Authorization": f"Bearer {KEYS[role]}",
            "Content-Type": "application/json",
            **headers,
        },
    )


async def refund_ids(system: System, order_id: str) -> list[str]:
    r = await system.get(f"/v1/refunds?order_id={order_id}")
    assert r.status_code == 200, r.text
    return [b["refund_id"] for b in r.json()["refunds"]]


async def assert_no_order(system: System, order_id: str) -> None:
    problem(await system.get(f"/v1/orders/{order_id}"), 404)


def idem() -> dict[str, str]:
    return {"Idempotency-Key": unique("idem")}


def refund_body(order: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "order_id": order["order_id"],
        "buyer_id": order["buyer_id"],
        "reason": "invalid_key",
        **extra,
    }
