"""The main paths, end to end: API -> Temporal dev server -> worker -> sandbox peers ->
database, asserted from the outside (API bodies, sandbox records, webhooks)."""

from __future__ import annotations

import asyncio

import pytest

from config.temporal import connect
from tests.system import System, card_key_order, course_order, unique

pytestmark = pytest.mark.integration


async def test_automatic_refund_of_an_unredeemed_key(system: System) -> None:
    order = await system.record(card_key_order(channel="alipay"))
    refund_id = await system.refund_id(order, reason="invalid_key", reason_text="卡密提示无效")

    body = await system.wait_status(refund_id, "refunded")

    assert body["decision"]["outcome"] == "auto_approved"
    assert body["decision"]["rule"].startswith("card_key.")
    assert body["amount"] == 5000 and body["destination"] == "original"
    assert [(p["channel"], p["amount"], p["state"]) for p in body["payouts"]] == [
        ("alipay", 5000, "succeeded")
    ]
    assert body["commissions"] == [
        {"beneficiary_id": "U-7", "level": 1, "amount": 500, "state": "clawed_back"}
    ]
    stages = [t["stage"] for t in body["timeline"]]
    assert stages[0] == "submitted" and stages[-1] == "money_arrived"
    assert "card_key_locked" in stages and "refund_sent" in stages
    # The gateway paid exactly once, for the right amount, under our idempotency key.
    txn = order["payments"][0]["transaction_id"]
    gateway = await system.gateway_refunds("alipay", txn)
    assert len(gateway) == 1 and gateway[0]["out_refund_no"].startswith(refund_id)
    # The key was locked at the supplier before the money moved.
    key = await system.sandbox_key(order["items"][0]["card_keys"][0]["card_key_id"])
    assert key["state"] in ("locked", "voided")


async def test_platform_gets_signed_webhooks_for_every_status_it_rests_in(system: System) -> None:
    order = await system.record(card_key_order(channel="wechat"))
    refund_id = await system.refund_id(order)
    await system.wait_status(refund_id, "refunded")
    for _ in range(50):
        hooks = await system.webhooks(refund_id)
        if any(h["body"]["status"] == "refunded" for h in hooks):
            break
        await asyncio.sleep(0.1)
    # The stand-in platform stores only deliveries whose X-Refund-Signature verified.
    statuses = [h["body"]["status"] for h in hooks]
    # Money back at once: one webhook, whose timeline tells every stage it passed through.
    assert statuses == ["refunded"]
    stages = [t["stage"] for t in hooks[0]["body"]["timeline"]]
    assert stages[:3] == ["submitted", "checking_card_key", "card_key_checked"]
    assert stages[-1] == "money_arrived"
    assert all(h["body"]["refund_id"] == refund_id for h in hooks)


async def test_reviewed_refund_is_approved_and_paid(system: System) -> None:
    order = await system.record(course_order(progress=20, minutes_ago=120))
    refund_id = await system.refund_id(order, reason="changed_mind")
    body = await system.wait_status(refund_id, "pending_review")
    assert body["review"]["escalated"] is False and body["review"]["deadline"]
    assert body["commissions"][0]["state"] == "frozen"

    queue = (await system.get("/v1/reviews?state=pending", role="reviewer")).json()["reviews"]
    mine = [c for c in queue if c["refund"]["refund_id"] == refund_id]
    assert mine and mine[0]["order"]["order_id"] == order["order_id"]

    r = await system.post(
        f"/v1/refunds/{refund_id}/approve", {"reviewer": "alice", "note": "ok"}, role="reviewer"
    )
    assert r.status_code == 202, r.text
    body = await system.wait_status(refund_id, "refunded")
    assert body["review"]["reviewer"] == "alice"
    assert (
        body["payouts"][-1]["channel"] == "wechat" and body["payouts"][-1]["state"] == "succeeded"
    )
    assert body["commissions"][0]["state"] == "clawed_back"


async def test_partial_approval_pays_less_and_claws_back_pro_rata(system: System) -> None:
    order = await system.record(course_order(progress=20, minutes_ago=120, price=20000))
    refund_id = await system.refund_id(order, reason="changed_mind")
    await system.wait_status(refund_id, "pending_review")
    too_much = await system.post(
        f"/v1/refunds/{refund_id}/approve", {"reviewer": "alice", "amount": 20001}, role="reviewer"
    )
    assert too_much.status_code == 422 and too_much.json()["errors"][0]["field"] == "amount"
    r = await system.post(
        f"/v1/refunds/{refund_id}/approve", {"reviewer": "alice", "amount": 5000}, role="reviewer"
    )
    assert r.status_code == 202
    body = await system.wait_status(refund_id, "refunded")
    assert body["amount"] == 5000 and body["payouts"][-1]["amount"] == 5000
    assert body["commissions"][0]["amount"] == 500  # a quarter of the 2000 commission


async def test_rejected_then_appealed_then_approved(system: System) -> None:
    order = await system.record(course_order(progress=20, minutes_ago=120))
    refund_id = await system.refund_id(order, reason="changed_mind")
    await system.wait_status(refund_id, "pending_review")

    r = await system.post(
        f"/v1/refunds/{refund_id}/reject",
        {"reviewer": "bob", "reason": "course watched"},
        role="reviewer",
    )
    assert r.status_code == 202
    body = await system.wait_status(refund_id, "rejected")
    assert body["commissions"][0]["state"] == "released"

    r = await system.post(
        f"/v1/refunds/{refund_id}/appeal", {"buyer_id": order["buyer_id"], "text": "视频无法播放"}
    )
    assert r.status_code == 202, r.text
    body = await system.wait_status(refund_id, "pending_review")
    assert body["review"]["appealed"] is True
    assert body["commissions"][0]["state"] == "frozen"

    again = await system.post(
        f"/v1/refunds/{refund_id}/appeal", {"buyer_id": order["buyer_id"], "text": "again"}
    )
    assert again.status_code == 409

    await system.post(f"/v1/refunds/{refund_id}/approve", {"reviewer": "carol"}, role="reviewer")
    body = await system.wait_status(refund_id, "refunded")
    assert [t["stage"] for t in body["timeline"]].count("waiting_for_review") == 2


async def test_second_rejection_after_appeal_is_final(system: System) -> None:
    order = await system.record(course_order(progress=20, minutes_ago=120))
    refund_id = await system.refund_id(order, reason="changed_mind")
    await system.wait_status(refund_id, "pending_review")
    await system.post(
        f"/v1/refunds/{refund_id}/reject", {"reviewer": "bob", "reason": "no"}, role="reviewer"
    )
    await system.wait_status(refund_id, "rejected")
    await system.post(
        f"/v1/refunds/{refund_id}/appeal", {"buyer_id": order["buyer_id"], "text": "please"}
    )
    await system.wait_status(refund_id, "pending_review")
    await system.post(
        f"/v1/refunds/{refund_id}/reject",
        {"reviewer": "bob", "reason": "still no"},
        role="reviewer",
    )
    body = await system.wait_status(refund_id, "rejected")
    assert body["review"]["appealed"] is True
    r = await system.post(
        f"/v1/refunds/{refund_id}/appeal", {"buyer_id": order["buyer_id"], "text": "x"}
    )
    assert r.status_code == 409


async def test_buyer_cancels_while_waiting_for_review(system: System) -> None:
    order = await system.record(course_order(progress=20, minutes_ago=120))
    refund_id = await system.refund_id(order, reason="changed_mind")
    await system.wait_status(refund_id, "pending_review")

    other = await system.post(f"/v1/refunds/{refund_id}/cancel", {"buyer_id": "U-someone-else"})
    assert other.status_code == 403
    r = await system.post(f"/v1/refunds/{refund_id}/cancel", {"buyer_id": order["buyer_id"]})
    assert r.status_code == 202
    body = await system.wait_status(refund_id, "cancelled")
    assert body["payouts"] == []
    assert body["commissions"][0]["state"] == "released"
    # Cancelled: the item is free again, so the buyer may ask anew.
    assert (await system.refund(order, reason="changed_mind")).status_code == 202


async def test_cancel_after_refund_is_a_conflict(system: System) -> None:
    order = await system.record(card_key_order())
    refund_id = await system.refund_id(order)
    await system.wait_status(refund_id, "refunded")
    r = await system.post(f"/v1/refunds/{refund_id}/cancel", {"buyer_id": order["buyer_id"]})
    assert r.status_code == 409 and r.headers["content-type"].startswith("application/problem+json")


async def test_idempotent_repeat_returns_the_same_refund(system: System) -> None:
    order = await system.record(card_key_order())
    key = unique("idem")
    first = await system.refund(order, key=key)
    again = await system.refund(order, key=key)
    assert first.status_code == 202 and again.status_code == 200
    assert first.json()["refund_id"] == again.json()["refund_id"]
    other_body = await system.refund(order, key=key, reason="changed_mind")
    assert other_body.status_code == 409
    assert other_body.json()["existing_refund_id"] == first.json()["refund_id"]


async def test_identical_posts_at_the_same_instant_make_one_refund(system: System) -> None:
    order = await system.record(card_key_order())
    key = unique("idem")
    answers = await asyncio.gather(*(system.refund(order, key=key) for _ in range(5)))
    ids = {a.json()["refund_id"] for a in answers}
    assert len(ids) == 1, [a.text for a in answers]
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 200, 202]
    listed = (await system.get(f"/v1/refunds?order_id={order['order_id']}")).json()["refunds"]
    assert len(listed) == 1


async def test_second_refund_on_the_same_item_is_a_conflict(system: System) -> None:
    order = await system.record(course_order(progress=20, minutes_ago=120))
    first = await system.refund_id(order, reason="changed_mind")
    second = await system.refund(order, reason="other")
    assert second.status_code == 409
    assert second.json()["existing_refund_id"] == first
    # ... and still after it was refunded: nothing is left.
    await system.wait_status(first, "pending_review")
    await system.post(f"/v1/refunds/{first}/approve", {"reviewer": "alice"}, role="reviewer")
    await system.wait_status(first, "refunded")
    third = await system.refund(order, reason="other")
    assert third.status_code == 409 and third.json()["existing_refund_id"] == first


async def test_redeemed_key_is_rejected_and_the_buyer_may_appeal(system: System) -> None:
    order = await system.record(card_key_order())
    await system.set_key(order["items"][0]["card_keys"][0]["card_key_id"], "redeemed")
    refund_id = await system.refund_id(order, reason="changed_mind")
    body = await system.wait_status(refund_id, "rejected")
    assert body["decision"]["rule"] == "card_key.redeemed"
    assert body["payouts"] == []


async def test_refunds_are_findable_in_temporal_by_status(system: System) -> None:
    order = await system.record(card_key_order())
    refund_id = await system.refund_id(order)
    body = await system.wait_status(refund_id, "refunded")
    client = await connect(system.settings)  # the service's converter: payloads are encrypted
    query = f"RefundStatus = 'refunded' AND OrderId = '{order['order_id']}'"
    found: list[str] = []
    for _ in range(50):  # visibility is eventually consistent
        found = [w.id async for w in client.list_workflows(query)]
        if found:
            break
        await asyncio.sleep(0.2)
    assert found == [body["workflow_id"]]
    live = await client.get_workflow_handle(body["workflow_id"]).query("status")
    assert live["status"] == "refunded" and live["refund_id"] == refund_id


async def test_two_reviewers_at_once_get_one_success_and_one_clear_409(system: System) -> None:
    """The workflow's Update validator is the only judge: of two reviewers acting on the same
    case at the same instant, exactly one is taken; the other learns why."""
    for second in ("approve", "reject"):
        order = await system.record(course_order(progress=20, minutes_ago=120))
        refund_id = await system.refund_id(order, reason="changed_mind")
        await system.wait_status(refund_id, "pending_review")
        bodies = {
            "approve": {"reviewer": "alice", "note": "ok"},
            "reject": {"reviewer": "bob", "reason": "watched too much"},
        }
        answers = await asyncio.gather(
            system.post(f"/v1/refunds/{refund_id}/approve", bodies["approve"], "reviewer"),
            system.post(f"/v1/refunds/{refund_id}/{second}", bodies[second], "reviewer"),
        )
        codes = sorted(a.status_code for a in answers)
        assert codes == [202, 409], [a.text for a in answers]
        refused = next(a for a in answers if a.status_code == 409)
        assert refused.headers["content-type"].startswith("application/problem+json")
        detail = refused.json()["detail"]
        # Either the first answer was just taken, or the refund has already moved on.
        assert "already answered" in detail or detail.startswith("cannot "), detail
        taken = "approve" if answers[0].status_code == 202 else second
        body = await system.wait_status(refund_id, "refunded", "rejected", within=30)
        assert body["status"] == ("refunded" if taken == "approve" else "rejected")
        assert len(body["payouts"]) == (1 if taken == "approve" else 0)


async def test_the_review_queue_pages_by_deadline_and_filters(system: System) -> None:
    merchant = unique("M")
    ids = []
    for _ in range(3):
        order = course_order(progress=20, minutes_ago=120)
        order["merchant_id"] = merchant
        await system.record(order)
        rid = await system.refund_id(order, reason="changed_mind")
        await system.wait_status(rid, "pending_review")
        ids.append(rid)

    seen, cursor = [], None
    for _ in range(5):
        query = f"/v1/reviews?state=pending&limit=1&merchant_id={merchant}"
        page = (
            await system.get(query + (f"&cursor={cursor}" if cursor else ""), "reviewer")
        ).json()
        seen += [case["refund"]["refund_id"] for case in page["reviews"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids  # each once, most urgent (earliest deadline) first
    other = (await system.get("/v1/reviews?merchant_id=M-nobody", "reviewer")).json()
    assert other["reviews"] == [] and other["next_cursor"] is None
    bad = await system.get("/v1/reviews?cursor=bm9wZQ", "reviewer")
    assert bad.status_code == 422 and "cursor" in bad.text
