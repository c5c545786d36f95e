"""The pre-check (智能预检, issue 11): `POST /v1/refunds/precheck` answers what a refund would
likely get — automatic, review, no, support — with the rule, its explanation in zh/en, the
amount and the policy's self-help steps, creating nothing; someone else's order is a 404 as
for refunds; reports count pre-checks followed by a refund and those not (deflection)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.system import System, card_key_order, course_order, unique

pytestmark = pytest.mark.integration


async def _precheck(
    system: System, order: dict[str, Any], reason: str, *, expect: int = 200, **extra: Any
) -> dict[str, Any]:
    body = {"order_id": order["order_id"], "buyer_id": order["buyer_id"], "reason": reason}
    r = await system.post("/v1/refunds/precheck", {**body, **extra})
    assert r.status_code == expect, r.text
    return dict(r.json())


async def _refunds_of(system: System, order: dict[str, Any]) -> list[dict[str, Any]]:
    r = await system.get(f"/v1/refunds?order_id={order['order_id']}")
    return list(r.json()["refunds"])


async def test_an_unredeemed_key_would_be_refunded_automatically(system: System) -> None:
    order = await system.record(card_key_order())
    answer = await _precheck(system, order, "invalid_key", reason_text="卡密提示无效")

    assert answer["outcome"] == "automatic"
    assert answer["rule"].startswith("card_key.") and answer["amount"] == 5000
    assert answer["currency"] == "CNY" and answer["destination"] == "original"
    assert answer["explanation"] and answer["explanation_zh"]
    assert answer["precheck_id"].startswith("pc_")
    steps = answer["self_help"]
    assert steps and {s["product_type"] for s in steps} == {"card_key"}
    assert any("region" in s["en"] for s in steps) and all(s["zh"] for s in steps)
    assert await _refunds_of(system, order) == []  # nothing was created


async def test_each_outcome_with_its_rule(system: System) -> None:
    watched = await system.record(course_order(progress=20, minutes_ago=120))
    review = await _precheck(system, watched, "changed_mind")
    assert review["outcome"] == "review" and review["amount"] == 19900
    assert {s["product_type"] for s in review["self_help"]} == {"course"}

    redeemed = await system.record(card_key_order())
    await system.set_key(redeemed["items"][0]["card_keys"][0]["card_key_id"], "redeemed")
    no = await _precheck(system, redeemed, "changed_mind")
    assert no["outcome"] == "no" and no["rule"] == "card_key.redeemed"
    assert "redeemed" in no["explanation"] and no["explanation_zh"]

    broken = await system.record(course_order(progress=5, minutes_ago=120))
    support = await _precheck(system, broken, "technical_issue", reason_text="视频无法播放")
    assert support["outcome"] == "support" and support["rule"] == "reason.technical_redirect"

    for order in (watched, redeemed, broken):
        assert await _refunds_of(system, order) == []


async def test_someone_elses_order_is_not_found_as_for_refunds(system: System) -> None:
    order = await system.record(card_key_order())
    r = await system.post(
        "/v1/refunds/precheck",
        {"order_id": order["order_id"], "buyer_id": unique("U-other"), "reason": "invalid_key"},
    )
    assert r.status_code == 404, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    unknown = await system.post(
        "/v1/refunds/precheck",
        {"order_id": unique("O-none"), "buyer_id": order["buyer_id"], "reason": "invalid_key"},
    )
    assert unknown.status_code == 404
    # Platform role only; bad input is a 422 like the refund's.
    r = await system.post(
        "/v1/refunds/precheck",
        {"order_id": order["order_id"], "buyer_id": order["buyer_id"], "reason": "invalid_key"},
        role="reviewer",
    )
    assert r.status_code == 403
    bad = await system.post(
        "/v1/refunds/precheck",
        {"order_id": order["order_id"], "buyer_id": order["buyer_id"], "reason": "whim"},
    )
    assert bad.status_code == 422


async def test_an_open_refund_is_a_conflict_as_for_refunds(system: System) -> None:
    order = await system.record(course_order(progress=20, minutes_ago=120))
    refund_id = await system.refund_id(order, reason="changed_mind")
    r = await system.post(
        "/v1/refunds/precheck",
        {"order_id": order["order_id"], "buyer_id": order["buyer_id"], "reason": "other"},
    )
    assert r.status_code == 409 and r.json()["existing_refund_id"] == refund_id


async def test_reports_count_prechecks_followed_by_a_refund_and_not(system: System) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    merchant = unique("M-pre")

    def mine(order: dict[str, Any]) -> dict[str, Any]:
        order["merchant_id"] = merchant
        return order

    followed = await system.record(mine(card_key_order()))
    deflected = await system.record(mine(course_order(progress=5, minutes_ago=120)))
    await _precheck(system, followed, "invalid_key")
    await _precheck(system, deflected, "technical_issue")
    await system.wait_status(await system.refund_id(followed, reason="invalid_key"), "refunded")

    query = urlencode({"from": start.isoformat(), "merchant_id": merchant})
    r = await system.get(f"/v1/admin/reports?{query}", role="admin")
    assert r.status_code == 200, r.text
    figures = r.json()["prechecks"]
    assert figures["prechecks"] == 2
    assert figures["followed_by_refund"] == 1 and figures["not_followed"] == 1
    assert figures["deflection_rate"] == 0.5
    assert figures["by_outcome"] == {
        "automatic": {"prechecks": 1, "followed_by_refund": 1},
        "support": {"prechecks": 1, "followed_by_refund": 0},
    }
