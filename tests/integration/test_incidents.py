"""Incidents end to end (issue 11): declared through the API, dry-run, confirmed by a second
person, run by the IncidentWorkflow at a controlled pace through the same RefundWorkflow as a
buyer's refund, each order refunded once — asserted from the outside (API bodies, the
gateways' records, Temporal's search attributes)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from config.temporal import connect
from domain.policy import default_policy_text
from tests.integration.incident_support import (
    act,
    bad_batch,
    batch_order,
    declaration,
    declare,
    incident,
    incident_refunds,
    paid_back,
    wait_state,
)
from tests.system import System, course_order, unique

pytestmark = pytest.mark.integration


async def test_declare_dry_run_confirm_refunds_every_order_once(system: System) -> None:
    batch, orders = await bad_batch(system, 3)
    # Matched but skipped, each for its reason: refunded by its buyer already, its key
    # redeemed meanwhile, never paid.
    refunded_before = await system.record(batch_order(batch))
    redeemed = await system.record(batch_order(batch))
    unpaid = batch_order(batch)
    unpaid.update(status="unpaid", paid_at=None, payments=[])
    await system.record(unpaid)
    own = await system.refund_id(refunded_before, reason="invalid_key")
    await system.wait_status(own, "refunded")
    await system.set_key(redeemed["items"][0]["card_keys"][0]["card_key_id"], "redeemed")

    incident_id = unique("inc")
    declared = await declare(
        system, declaration(incident_id, {"batch_id": batch}, rate_per_second=20)
    )
    assert declared["state"] in ("planning", "awaiting_confirmation")
    assert declared["workflow_id"] == f"incident-{incident_id}"
    dry = await wait_state(system, incident_id, "awaiting_confirmation")

    summary = dry["summary"]
    assert summary["matched"] == 6 and summary["to_refund"] == 3
    assert summary["amounts"] == {"CNY": 3 * 5000}
    assert summary["skipped"] == {"already_refunded": 1, "key_redeemed": 1, "unpaid": 1}
    listed = (await system.get(f"/v1/incidents/{incident_id}/orders", role="admin")).json()
    why = {o["order_id"]: o["skip_reason"] for o in listed["orders"]}
    assert why[refunded_before["order_id"]] == "already_refunded"
    assert why[redeemed["order_id"]] == "key_redeemed" and why[unpaid["order_id"]] == "unpaid"
    assert {why[o["order_id"]] for o in orders} == {None}
    assert await incident_refunds(system, incident_id) == []  # nothing moves before confirm

    await act(system, incident_id, "confirm", {"by": "lee", "note": "checked the list"})
    done = await wait_state(system, incident_id, "completed")

    report = done["report"]
    assert report["refunded"] == 3 and report["failed"] == 0 and report["started"] == 3
    assert report["refunded_amounts"] == {"CNY": 15000}
    assert report["commissions_clawed_back"] == {"CNY": 3 * 500}
    assert report["skipped"] == {"already_refunded": 1, "key_redeemed": 1, "unpaid": 1}
    assert (await system.get(f"/v1/incidents/{incident_id}/report", role="admin")).json() == (
        report
    )
    refunds = await incident_refunds(system, incident_id)
    assert sorted(r["order_id"] for r in refunds) == sorted(o["order_id"] for o in orders)
    for refund in refunds:
        assert refund["status"] == "refunded"
        assert refund["decision"]["rule"] == "incident.shop_fault"
        assert refund["decision"]["outcome"] == "auto_approved"
    for order in [*orders, refunded_before]:
        assert [g["amount"] for g in await paid_back(system, order)] == [5000]
    assert await paid_back(system, redeemed) == []

    # The Temporal UI lists the incident's refunds by IncidentId.
    client = await connect(system.settings)
    found = [w.id async for w in client.list_workflows(f'IncidentId = "{incident_id}"')]
    assert sorted(found) == sorted(
        [f"incident-{incident_id}", *(r["workflow_id"] for r in refunds)]
    )


async def test_a_second_person_confirms_never_the_declarer(system: System) -> None:
    batch, orders = await bad_batch(system, 1)
    incident_id = unique("inc")
    await declare(system, declaration(incident_id, {"batch_id": batch}, by="sam"))
    await wait_state(system, incident_id, "awaiting_confirmation")

    r = await system.post(f"/v1/incidents/{incident_id}/confirm", {"by": "Sam"}, role="admin")
    assert r.status_code == 409, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["type"].endswith("second-person-needed")
    assert "second person" in problem["detail"]
    assert problem["status_now"] == "awaiting_confirmation"
    assert (await incident(system, incident_id))["state"] == "awaiting_confirmation"

    await act(system, incident_id, "confirm", {"by": "lee"})
    again = await system.post(f"/v1/incidents/{incident_id}/confirm", {"by": "kim"}, role="admin")
    assert again.status_code == 409 and "cannot confirm" in again.json()["detail"]
    await wait_state(system, incident_id, "completed")
    assert [g["amount"] for g in await paid_back(system, orders[0])] == [5000]


async def test_pause_stops_new_refunds_until_resumed(system: System) -> None:
    batch, orders = await bad_batch(system, 5)
    incident_id = unique("inc")
    await declare(system, declaration(incident_id, {"batch_id": batch}, rate_per_second=1))
    await wait_state(system, incident_id, "awaiting_confirmation")
    await act(system, incident_id, "confirm", {"by": "lee"})
    await _until_started(system, incident_id, 1)

    paused = await act(system, incident_id, "pause", {"by": "lee"})
    assert paused["state"] == "paused"
    await asyncio.sleep(1.5)  # a batch already starting when the pause came finishes
    held = len(await incident_refunds(system, incident_id))
    await asyncio.sleep(3)
    assert len(await incident_refunds(system, incident_id)) == held < 5
    assert (await incident(system, incident_id))["state"] == "paused"
    assert (
        await system.post(f"/v1/incidents/{incident_id}/pause", {"by": "lee"}, role="admin")
    ).status_code == 409

    resumed = await act(system, incident_id, "resume", {"by": "kim", "rate_per_second": 5})
    assert resumed["state"] == "running" and resumed["rate_per_second"] == 5
    await wait_state(system, incident_id, "completed")
    refunds = await incident_refunds(system, incident_id)
    assert len(refunds) == 5 and {r["status"] for r in refunds} == {"refunded"}
    for order in orders:
        assert len(await paid_back(system, order)) == 1


async def test_cancel_midway_starts_nothing_new_and_lets_started_refunds_finish(
    system: System,
) -> None:
    batch, orders = await bad_batch(system, 8)
    incident_id = unique("inc")
    await declare(system, declaration(incident_id, {"batch_id": batch}, rate_per_second=1))
    await wait_state(system, incident_id, "awaiting_confirmation")
    await act(system, incident_id, "confirm", {"by": "lee"})
    await _until_started(system, incident_id, 2)

    cancelled = await act(system, incident_id, "cancel", {"by": "lee", "note": "wrong batch"})
    assert cancelled["state"] in ("cancelling", "cancelled")
    done = await wait_state(system, incident_id, "cancelled")
    started = await incident_refunds(system, incident_id)
    assert 2 <= len(started) < 8
    # Every refund started before the cancel ran to its end: none was interrupted.
    assert {r["status"] for r in started} == {"refunded"}
    assert done["report"]["refunded"] == len(started)
    await asyncio.sleep(2)
    assert len(await incident_refunds(system, incident_id)) == len(started)
    refunded_orders = {r["order_id"] for r in started}
    for order in orders:
        expected = 1 if order["order_id"] in refunded_orders else 0
        assert len(await paid_back(system, order)) == expected
    assert (
        await system.post(f"/v1/incidents/{incident_id}/resume", {"by": "lee"}, role="admin")
    ).status_code == 409


async def test_declaring_the_same_incident_again_refunds_nothing_new(system: System) -> None:
    batch, orders = await bad_batch(system, 2)
    incident_id = unique("inc")
    body = declaration(incident_id, {"batch_id": batch}, rate_per_second=10)
    await declare(system, body)
    # The same declaration while it is open is the same incident; another body is a conflict.
    assert (await declare(system, body, expect=200))["incident_id"] == incident_id
    other = await system.post("/v1/incidents", {**body, "reason": "something else"}, role="admin")
    assert other.status_code == 409 and other.json()["status_now"]
    await wait_state(system, incident_id, "awaiting_confirmation")
    await act(system, incident_id, "confirm", {"by": "lee"})
    await wait_state(system, incident_id, "completed")

    await declare(system, body)
    again = await wait_state(system, incident_id, "completed")
    assert again["summary"]["to_refund"] == 0
    assert again["summary"]["skipped"] == {"already_refunded": 2}
    assert len(await incident_refunds(system, incident_id)) == 2
    for order in orders:
        assert len(await paid_back(system, order)) == 1


async def test_orders_of_a_merchant_paid_in_a_window_skip_those_with_a_refund_open(
    system: System,
) -> None:
    merchant = unique("M-inc")
    orders = []
    for _ in range(3):
        order = course_order(progress=20, minutes_ago=120)
        order["merchant_id"] = merchant
        orders.append(await system.record(order))
    held = await system.refund_id(orders[0], reason="changed_mind")
    await system.wait_status(held, "pending_review")
    now = datetime.now(UTC)
    selection = {
        "merchant_id": merchant,
        "product_type": "course",
        "paid_from": (now - timedelta(hours=3)).isoformat(),
        "paid_until": now.isoformat(),
    }
    incident_id = unique("inc")
    await declare(
        system, declaration(incident_id, selection, destination="balance", rate_per_second=10)
    )
    dry = await wait_state(system, incident_id, "awaiting_confirmation")
    assert dry["summary"]["skipped"] == {"refund_open": 1} and dry["summary"]["to_refund"] == 2

    await act(system, incident_id, "confirm", {"by": "lee"})
    await wait_state(system, incident_id, "completed")
    refunds = await incident_refunds(system, incident_id)
    assert sorted(r["order_id"] for r in refunds) == sorted(o["order_id"] for o in orders[1:])
    for refund in refunds:
        assert refund["status"] == "refunded" and refund["destination"] == "balance"
        assert [p["channel"] for p in refund["payouts"]] == ["balance"]
    assert (await system.body(held))["status"] == "pending_review"  # the buyer's stays


async def test_bad_selections_are_refused_with_a_clear_problem(system: System) -> None:
    nothing = await system.post(
        "/v1/incidents",
        declaration(unique("inc"), {"card_key_ids": [unique("K-none")]}),
        role="admin",
    )
    assert nothing.status_code == 422, nothing.text
    assert nothing.headers["content-type"].startswith("application/problem+json")
    assert "matches no order" in nothing.json()["detail"]
    assert nothing.json()["errors"][0]["field"] == "selection"

    no_window = await system.post(
        "/v1/incidents", declaration(unique("inc"), {"merchant_id": "M-7"}), role="admin"
    )
    assert no_window.status_code == 422 and "paid_from" in no_window.text

    not_admin = await system.post(
        "/v1/incidents", declaration(unique("inc"), {"batch_id": "B"}), role="reviewer"
    )
    assert not_admin.status_code == 403
    unknown = await system.get(f"/v1/incidents/{unique('inc')}", role="admin")
    assert unknown.status_code == 404


@pytest.fixture
def small_incident_limit(system: System) -> Iterator[None]:
    """The policy's `incidents.max_orders` at 2 for one test (the file is hot-reloaded)."""
    path = Path(system.settings.policy_path)
    policy = yaml.safe_load(default_policy_text())
    policy["incidents"]["max_orders"] = 2
    path.write_text(yaml.safe_dump(policy, allow_unicode=True), encoding="utf-8")
    try:
        yield
    finally:
        path.write_text(default_policy_text(), encoding="utf-8")


async def test_a_selection_over_the_policy_limit_needs_an_explicit_override(
    system: System, small_incident_limit: None
) -> None:
    batch, _ = await bad_batch(system, 3)
    incident_id = unique("inc")
    body = declaration(incident_id, {"batch_id": batch}, rate_per_second=10)
    refused = await system.post("/v1/incidents", body, role="admin")
    assert refused.status_code == 422, refused.text
    assert "incidents.max_orders" in refused.json()["detail"]
    assert refused.json()["matched_orders"] == 3
    assert (await system.get(f"/v1/incidents/{incident_id}", role="admin")).status_code == 404

    await declare(system, {**body, "override_limits": True})
    await wait_state(system, incident_id, "awaiting_confirmation")
    await act(system, incident_id, "confirm", {"by": "lee"})
    await wait_state(system, incident_id, "completed")
    assert len(await incident_refunds(system, incident_id)) == 3


async def _until_started(system: System, incident_id: str, n: int, within: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while len(await incident_refunds(system, incident_id)) < n:
        assert asyncio.get_running_loop().time() < deadline, "the incident started nothing"
        await asyncio.sleep(0.2)
