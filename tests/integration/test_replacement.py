"""A fresh key instead of money (补发), end to end: API -> workflow -> sandbox supplier's stock
and reservations -> database, asserted from the outside. Each test's order has a SKU of its
own, so the stock one test sets is nobody else's."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from domain.buyer_messages import BuyerStage
from tests.integration.test_buyer_messages import check_words, contacts, settled
from tests.integration.test_pages import _csrf, buyer_link
from tests.system import System, card_key_order, course_order, unique

pytestmark = pytest.mark.integration


async def order_in_stock(system: System, stock: int, *, channel: str = "alipay") -> dict[str, Any]:
    order = card_key_order(channel=channel)
    order["items"][0]["sku"] = unique("sku")
    await system.record(order)
    await _set_stock(system, order["items"][0]["sku"], stock)
    return order


async def _set_stock(system: System, sku: str, available: int) -> None:
    r = await system.http.put(
        f"{system.sandboxes.supplier}/sandbox/stock/{sku}", json={"available": available}
    )
    r.raise_for_status()


async def _stock(system: System, order: dict[str, Any]) -> dict[str, Any]:
    sku = order["items"][0]["sku"]
    r = await system.http.get(f"{system.sandboxes.supplier}/sandbox/stock/{sku}")
    r.raise_for_status()
    return dict(r.json())


async def _arm_reservation_fault(system: System, mode: str, count: int = 1) -> None:
    r = await system.http.post(
        f"{system.sandboxes.supplier}/sandbox/reservations/faults",
        json={"mode": mode, "count": count},
    )
    r.raise_for_status()


def _old_key(order: dict[str, Any]) -> str:
    return str(order["items"][0]["card_keys"][0]["card_key_id"])


async def _assert_replaced_once(
    system: System, order: dict[str, Any], body: dict[str, Any]
) -> None:
    """One reservation, confirmed for this buyer, recorded on the refund; the old key out of
    reach; no money moved."""
    stock = await _stock(system, order)
    assert [(r["state"], r["buyer_id"]) for r in stock["reservations"]] == [
        ("confirmed", order["buyer_id"])
    ]
    reservation = stock["reservations"][0]
    assert body["replacement"] == {
        "card_key_id": reservation["card_key_id"],
        "supplier": "sup-a",
        "replaced_card_key_id": _old_key(order),
        "item_id": "I-1",
        "reservation_id": reservation["reservation_id"],
        "delivered_at": body["replacement"]["delivered_at"],
    }
    assert body["payouts"] == []
    txn = order["payments"][0]["transaction_id"]
    assert await system.gateway_refunds("alipay", txn) == []
    old = await system.sandbox_key(_old_key(order))
    assert old["state"] in ("locked", "voided")


async def test_a_buyer_who_asks_for_a_replacement_gets_a_fresh_key_and_no_money(
    system: System,
) -> None:
    order = await order_in_stock(system, 2)
    refund_id = await system.refund_id(order, reason="invalid_key", remedy="replacement")

    body = await system.wait_status(refund_id, "replaced", "refunded")

    assert body["status"] == "replaced", body["timeline"]
    assert body["remedy"] == "replacement" and body["replacement_offered"] is True
    await _assert_replaced_once(system, order, body)
    assert (await _stock(system, order))["available"] == 1
    stages = [t["stage"] for t in body["timeline"]]
    assert stages.index("card_key_locked") < stages.index("replacement_requested")
    assert stages[-1] == "replacement_delivered"
    # The distributor keeps the commission: the sale stands.
    assert [c["state"] for c in body["commissions"]] in ([], ["released"])


async def test_no_stock_refunds_as_before(system: System) -> None:
    order = await order_in_stock(system, 0)
    refund_id = await system.refund_id(order, reason="invalid_key", remedy="replacement")

    body = await system.wait_status(refund_id, "refunded", "replaced")

    assert body["status"] == "refunded"
    assert body["replacement"] is None
    stages = [t["stage"] for t in body["timeline"]]
    assert "replacement_unavailable" in stages and stages[-1] == "money_arrived"
    assert (await _stock(system, order))["reservations"] == []
    txn = order["payments"][0]["transaction_id"]
    assert len(await system.gateway_refunds("alipay", txn)) == 1


async def test_out_of_stock_mid_reservation_refunds(system: System) -> None:
    """The supplier had stock when we looked, and none when we reserved."""
    order = await order_in_stock(system, 1)
    await _arm_reservation_fault(system, "out_of_stock")
    refund_id = await system.refund_id(order, reason="invalid_key", remedy="replacement")

    body = await system.wait_status(refund_id, "refunded", "replaced")

    assert body["status"] == "refunded"
    assert (await _stock(system, order))["reservations"] == []


@pytest.mark.parametrize("fault", ["timeout", "error_5xx"])
async def test_a_reservation_that_timed_out_or_failed_is_made_once(
    system: System, fault: str
) -> None:
    """A timeout reserved the key but lost the answer: the retry finds that reservation by
    its idempotency key instead of taking a second key (or reading "out of stock" for the
    key it took itself: the stock is exactly one)."""
    order = await order_in_stock(system, 1)
    await _arm_reservation_fault(system, fault)
    refund_id = await system.refund_id(order, reason="invalid_key", remedy="replacement")

    body = await system.wait_status(refund_id, "replaced", "refunded", within=90)

    assert body["status"] == "replaced", body["timeline"]
    await _assert_replaced_once(system, order, body)
    assert (await _stock(system, order))["available"] == 0
    faults = await system.http.get(f"{system.sandboxes.supplier}/sandbox/reservations/faults")
    assert faults.json()["armed"] == [], "the fault was served to the reservation"


async def test_a_buyer_who_asks_for_money_gets_money(system: System) -> None:
    order = await order_in_stock(system, 3)
    refund_id = await system.refund_id(order, reason="invalid_key", remedy="refund")

    body = await system.wait_status(refund_id, "refunded", "replaced")

    assert body["status"] == "refunded" and body["remedy"] == "refund"
    assert (await _stock(system, order))["reservations"] == []


async def test_without_a_choice_the_policy_default_offer_means_money(system: System) -> None:
    """The shipped policy offers replacements for card keys: the buyer must ask for one."""
    order = await order_in_stock(system, 3)
    refund_id = await system.refund_id(order, reason="invalid_key")

    body = await system.wait_status(refund_id, "refunded", "replaced")

    assert body["status"] == "refunded" and body["remedy"] is None
    assert body["replacement_offered"] is True


async def test_a_replacement_reported_invalid_again_goes_to_a_person(system: System) -> None:
    order = await order_in_stock(system, 2)
    first = await system.refund_id(order, reason="invalid_key", remedy="replacement")
    replaced = await system.wait_status(first, "replaced", "refunded")
    assert replaced["status"] == "replaced"
    fresh = replaced["replacement"]["card_key_id"]
    await system.set_key(fresh, "invalid")

    second = await system.refund_id(order, reason="invalid_key", remedy="replacement")
    body = await system.wait_status(second, "pending_review", "replaced", "refunded")

    assert body["status"] == "pending_review"
    assert body["decision"]["rule"] == "card_key.replacement_invalid"
    assert "补发" in body["decision"]["explanation_zh"]
    assert body["replacement_offered"] is False
    # The supplier was asked about the fresh key, not the voided one.
    assert (await system.sandbox_key(fresh))["queries"] >= 1
    assert len((await _stock(system, order))["reservations"]) == 1


async def test_the_pre_check_says_a_replacement_is_offered(system: System) -> None:
    order = await order_in_stock(system, 1)
    body = {"order_id": order["order_id"], "buyer_id": order["buyer_id"]}
    r = await system.post("/v1/refunds/precheck", {**body, "reason": "invalid_key"})
    assert r.status_code == 200, r.text
    assert r.json()["replacement"] == "offer"
    r = await system.post("/v1/refunds/precheck", {**body, "reason": "changed_mind"})
    assert r.json()["replacement"] == "off"


async def test_a_replacement_for_another_reason_is_bad_input(system: System) -> None:
    order = await order_in_stock(system, 1)
    r = await system.refund(order, reason="changed_mind", remedy="replacement")
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    r = await system.refund(order, reason="invalid_key", remedy="gift")
    assert r.status_code == 422
    assert any("remedy" in e["field"] for e in r.json()["errors"])


async def test_the_buyer_takes_a_replacement_on_the_progress_page_while_a_person_reviews(
    system: System,
) -> None:
    """A revealed key goes to a person; the buyer meanwhile asks for a fresh key on the page,
    and the approval delivers one instead of the money."""
    order = card_key_order()
    order["items"][0]["sku"] = unique("sku")
    order["items"][0]["usage"]["key_revealed"] = True
    await system.record(order)
    await _set_stock(system, order["items"][0]["sku"], 1)
    refund_id = await system.refund_id(order, reason="invalid_key")
    waiting = await system.wait_status(refund_id, "pending_review")
    assert waiting["replacement_offered"] is True and waiting["remedy"] is None

    link = await buyer_link(system, refund_id)
    page = await system.http.get(system.url(link))
    assert "换一张新卡密" in page.text and 'id="choose-replacement"' in page.text
    t = link.split("t=", 1)[1]
    chosen = await system.http.post(
        system.url(f"/r/{refund_id}/remedy"),
        data={"t": t, "csrf": _csrf(page.text), "remedy": "replacement"},
    )
    assert chosen.status_code == 303, chosen.text
    for _ in range(100):
        if (await system.body(refund_id))["remedy"] == "replacement":
            break
        await asyncio.sleep(0.1)
    again = await system.http.get(system.url(link))
    assert 'id="choose-refund"' in again.text and "已选择补发" in again.text

    r = await system.post(f"/v1/refunds/{refund_id}/approve", {"reviewer": "alice"}, "reviewer")
    assert r.status_code in (200, 202), r.text
    body = await system.wait_status(refund_id, "replaced", "refunded")

    assert body["status"] == "replaced", body["timeline"]
    await _assert_replaced_once(system, order, body)
    done = await system.http.get(system.url(link))
    assert "新卡密已补发" in done.text and 'id="choose-replacement"' not in done.text


async def test_a_replacement_is_refused_where_none_is_offered(system: System) -> None:
    order = await system.record(course_order(progress=20, minutes_ago=120))
    refund_id = await system.refund_id(order, reason="changed_mind")
    await system.wait_status(refund_id, "pending_review")

    r = await system.post(
        f"/v1/refunds/{refund_id}/remedy",
        {"buyer_id": order["buyer_id"], "remedy": "replacement"},
    )

    assert r.status_code == 409, r.text
    assert r.json()["type"].endswith("replacement-not-offered")
    r = await system.post(
        f"/v1/refunds/{refund_id}/remedy", {"buyer_id": "someone-else", "remedy": "refund"}
    )
    assert r.status_code == 403


async def wait_until_reserved(system: System, order: dict[str, Any], within: float = 30) -> None:
    """Until the supplier lists a reservation for the order's SKU (the call may still hang)."""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        if (await _stock(system, order))["reservations"]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("no reservation was made")


async def test_the_platform_and_the_buyer_hear_of_the_replacement(system: System) -> None:
    order = card_key_order()
    order["items"][0]["sku"] = unique("sku")
    order["buyer_contact"] = contacts("en")
    await system.record(order)
    await _set_stock(system, order["items"][0]["sku"], 1)
    refund_id = await system.refund_id(order, reason="invalid_key", remedy="replacement")
    refund = await system.wait_status(refund_id, "replaced", "refunded")
    assert refund["status"] == "replaced"

    for _ in range(100):
        hooks = await system.webhooks(refund_id)
        if any(h["body"]["status"] == "replaced" for h in hooks):
            break
        await asyncio.sleep(0.1)
    [hook] = [h for h in hooks if h["body"]["status"] == "replaced"]
    assert hook["body"]["replacement"] == refund["replacement"]

    await settled(system, refund_id, 4)
    await check_words(
        system, order, refund, [BuyerStage.SUBMITTED, BuyerStage.REPLACEMENT_DELIVERED]
    )
