"""Bad refund requests and signals, end to end over real HTTP: every rejection of
`POST /v1/refunds` and of approve, reject, appeal, cancel and evidence is a 4xx problem+json
naming the field, never a 500, and never leaves a refund stored or moves one on (a finished
refund answers 409)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from domain.model import MAX_AMOUNT
from tests.integration.bad_input import idem, problem, raw_post, refund_body, refund_ids
from tests.system import System, card_key_order, course_order, unique

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def order(system: System) -> AsyncIterator[dict[str, Any]]:
    """A recorded order with two items, which the refund tests below must leave untouched."""
    o = card_key_order(quantity=2)
    o["items"].append(
        {
            "item_id": "I-2",
            "sku": "course-py",
            "title": "Python course",
            "product_type": "course",
            "quantity": 1,
            "unit_price": 100,
        }
    )
    o["amount"] += 100
    o["payments"][0]["amount"] += 100
    yield await system.record(o)
    assert await refund_ids(system, o["order_id"]) == []


async def test_refund_needs_an_idempotency_key(system: System, order: dict[str, Any]) -> None:
    body = problem(await system.post("/v1/refunds", refund_body(order)), 400)
    assert body["errors"][0]["field"] == "Idempotency-Key"
    body = problem(
        await system.post("/v1/refunds", refund_body(order), **{"Idempotency-Key": "k" * 256}), 400
    )
    assert body["errors"][0]["field"] == "Idempotency-Key"
    problem(await system.post("/v1/refunds", refund_body(order), **{"Idempotency-Key": ""}), 400)
    assert await refund_ids(system, order["order_id"]) == []


async def test_refund_malformed_json_is_400(system: System, order: dict[str, Any]) -> None:
    raw = json.dumps(refund_body(order)).encode()[:-1]
    problem(await raw_post(system, "/v1/refunds", raw, **idem()), 400)
    problem(await raw_post(system, "/v1/refunds", b"\xff\xfe", **idem()), 400)
    assert await refund_ids(system, order["order_id"]) == []


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"reason": "bored"}, "reason"),
        ({"reason": None}, "reason"),
        ({"reason_text": "x" * 201}, "reason_text"),
        ({"items": []}, "items"),
        ({"items": [{"item_id": "I-1", "quantity": 0}]}, "items[0].quantity"),
        ({"items": [{"item_id": "I-1", "quantity": -1}]}, "items[0].quantity"),
        ({"items": [{"item_id": "I-1", "quantity": "1"}]}, "items[0].quantity"),
        ({"items": [{"item_id": "I-1"}]}, "items[0].quantity"),
        ({"items": [{"item_id": "I 1", "quantity": 1}]}, "items[0].item_id"),
        ({"evidence": [{"kind": "screenshot"}]}, "evidence[0]"),
        ({"evidence": [{"kind": "screenshot", "text": ""}]}, "evidence[0]"),
        ({"evidence": [{"kind": "screenshot", "url": "not a url"}]}, "evidence[0].url"),
        ({"evidence": [{"kind": "screenshot", "url": "ftp://x/y.png"}]}, "evidence[0].url"),
        ({"evidence": [{"kind": "selfie", "text": "hi"}]}, "evidence[0].kind"),
        ({"evidence": [{"kind": "screenshot", "text": "t" * 2001}]}, "evidence[0].text"),
        ({"evidence": "https://cdn.example/e1.png"}, "evidence"),
        ({"client": {"ip": "1" * 65}}, "client.ip"),
        ({"order_id": "O" * 129}, "order_id"),
        ({"buyer_id": "U/42"}, "buyer_id"),
    ],
)
async def test_refund_bad_value_is_422(
    system: System, order: dict[str, Any], extra: dict[str, Any], field: str
) -> None:
    problem(await system.post("/v1/refunds", refund_body(order, **extra), **idem()), 422, field)
    assert await refund_ids(system, order["order_id"]) == []


async def test_refund_items_must_exist_in_the_order(system: System, order: dict[str, Any]) -> None:
    items = [{"item_id": "I-1", "quantity": 1}, {"item_id": "I-404", "quantity": 1}]
    body = problem(
        await system.post("/v1/refunds", refund_body(order, items=items), **idem()),
        422,
        "items[1].item_id",
    )
    assert "I-404" in body["detail"]
    too_many = [{"item_id": "I-1", "quantity": 3}]  # two were bought
    problem(
        await system.post("/v1/refunds", refund_body(order, items=too_many), **idem()),
        422,
        "items[0].quantity",
    )
    twice = [{"item_id": "I-1", "quantity": 1}, {"item_id": "I-1", "quantity": 1}]
    problem(await system.post("/v1/refunds", refund_body(order, items=twice), **idem()), 422)
    assert await refund_ids(system, order["order_id"]) == []


async def test_refund_on_unknown_or_foreign_order(system: System, order: dict[str, Any]) -> None:
    unknown = {**refund_body(order), "order_id": unique("O")}
    problem(await system.post("/v1/refunds", unknown, **idem()), 404)
    assert await refund_ids(system, unknown["order_id"]) == []

    foreign = {**refund_body(order), "buyer_id": unique("U")}
    body = problem(await system.post("/v1/refunds", foreign, **idem()), 403)
    assert [e["field"] for e in body["errors"]] == ["buyer_id"]
    assert await refund_ids(system, order["order_id"]) == []


async def test_refund_on_a_cancelled_order_is_409(system: System) -> None:
    o = card_key_order()
    o.update(status="cancelled", payments=[], paid_at=None)
    await system.record(o)
    problem(await system.post("/v1/refunds", refund_body(o), **idem()), 409)
    assert await refund_ids(system, o["order_id"]) == []


async def test_rejected_request_does_not_burn_the_idempotency_key(
    system: System, order: dict[str, Any]
) -> None:
    key = {"Idempotency-Key": unique("idem")}
    problem(await system.post("/v1/refunds", refund_body(order, reason="bored"), **key), 422)
    problem(await system.post("/v1/refunds", {**refund_body(order), "buyer_id": "U-x"}, **key), 403)
    # The same key with a now-valid body is a fresh request, not a reuse (409) - checked on
    # another order so the module's order stays without refunds.
    other = await system.record(card_key_order())
    r = await system.post("/v1/refunds", refund_body(other), **key)
    assert r.status_code == 202, r.text


# -- signals -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def in_review(system: System) -> AsyncIterator[dict[str, Any]]:
    """A refund waiting for a reviewer; the tests using it must not move it on."""
    o = await system.record(course_order(progress=20, minutes_ago=120, price=20000))
    refund_id = await system.refund_id(o, reason="changed_mind")
    body = await system.wait_status(refund_id, "pending_review")
    yield {"order": o, "refund": body}
    assert (await system.body(refund_id))["status"] == "pending_review"


@pytest.fixture(scope="module")
async def finished(system: System) -> dict[str, Any]:
    """A refund that ended (automatically) in `refunded`."""
    o = await system.record(card_key_order())
    refund_id = await system.refund_id(o)
    body = await system.wait_status(refund_id, "refunded")
    return {"order": o, "refund": body}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reviewer": "alice", "amount": 0}, "amount"),
        ({"reviewer": "alice", "amount": -100}, "amount"),
        ({"reviewer": "alice", "amount": 20001}, "amount"),
        ({"reviewer": "alice", "amount": 100.5}, "amount"),
        ({"reviewer": "alice", "amount": "100"}, "amount"),
        ({"reviewer": "alice", "amount": MAX_AMOUNT + 1}, "amount"),
        ({"amount": 100}, "reviewer"),
        ({"reviewer": "a l i c e"}, "reviewer"),
        ({"reviewer": "alice", "note": "n" * 2001}, "note"),
    ],
)
async def test_approve_bad_body_is_422(
    system: System, in_review: dict[str, Any], body: dict[str, Any], field: str
) -> None:
    rid = in_review["refund"]["refund_id"]
    problem(await system.post(f"/v1/refunds/{rid}/approve", body, role="reviewer"), 422, field)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reviewer": "bob"}, "reason"),
        ({"reviewer": "bob", "reason": ""}, "reason"),
        ({"reason": "no"}, "reviewer"),
        ({"reviewer": "bob", "reason": "r" * 2001}, "reason"),
    ],
)
async def test_reject_bad_body_is_422(
    system: System, in_review: dict[str, Any], body: dict[str, Any], field: str
) -> None:
    rid = in_review["refund"]["refund_id"]
    problem(await system.post(f"/v1/refunds/{rid}/reject", body, role="reviewer"), 422, field)


async def test_appeal_errors_while_in_review(system: System, in_review: dict[str, Any]) -> None:
    rid = in_review["refund"]["refund_id"]
    buyer = in_review["order"]["buyer_id"]
    body = problem(
        await system.post(f"/v1/refunds/{rid}/appeal", {"buyer_id": unique("U"), "text": "pls"}),
        403,
    )
    assert [e["field"] for e in body["errors"]] == ["buyer_id"]
    body = problem(
        await system.post(f"/v1/refunds/{rid}/appeal", {"buyer_id": buyer, "text": "pls"}), 409
    )
    assert body["status_now"] == "pending_review"
    problem(await system.post(f"/v1/refunds/{rid}/appeal", {"buyer_id": buyer}), 422, "text")
    problem(
        await system.post(f"/v1/refunds/{rid}/appeal", {"buyer_id": buyer, "text": ""}),
        422,
        "text",
    )
    problem(await system.post(f"/v1/refunds/{rid}/cancel", {}), 422, "buyer_id")
    problem(await system.post(f"/v1/refunds/{rid}/evidence", {"evidence": []}), 422, "evidence")
    problem(
        await system.post(f"/v1/refunds/{rid}/evidence", {"evidence": [{"kind": "screenshot"}]}),
        422,
        "evidence[0]",
    )


async def test_signals_on_a_finished_refund_are_409(
    system: System, finished: dict[str, Any]
) -> None:
    rid = finished["refund"]["refund_id"]
    buyer = finished["order"]["buyer_id"]
    for verb, body, role in [
        ("approve", {"reviewer": "alice"}, "reviewer"),
        ("approve", {"reviewer": "alice", "amount": 100}, "reviewer"),
        ("reject", {"reviewer": "bob", "reason": "late"}, "reviewer"),
        ("appeal", {"buyer_id": buyer, "text": "please"}, "platform"),
        ("cancel", {"buyer_id": buyer}, "platform"),
        ("evidence", {"evidence": [{"kind": "other", "text": "more"}]}, "platform"),
    ]:
        answer = problem(await system.post(f"/v1/refunds/{rid}/{verb}", body, role=role), 409)
        assert answer["status_now"] == "refunded", (verb, answer)
    problem(
        await system.post(f"/v1/refunds/{rid}/appeal", {"buyer_id": unique("U"), "text": "x"}),
        403,
    )
    after = await system.body(rid)
    assert after["status"] == "refunded" and after["review"] is None
    assert after["evidence"] == finished["refund"]["evidence"]
    assert after["payouts"] == finished["refund"]["payouts"]
