"""Operators' side, end to end: blacklists and velocity turning automatic refunds into
reviews, the policy changed at run time, explaining a decision, reconciliation and the
audit chain catching planted problems."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select, text, update

from domain.policy import default_policy_text
from refundctl.audit import verify
from refundctl.reconcile import reconcile_day
from store.db import make_engine, make_session_factory
from store.models import AuditRow, NotificationRow, PayoutRow
from tests.system import System, card_key_order, course_order, unique

pytestmark = pytest.mark.integration


async def test_blacklisted_device_goes_to_review_with_the_signal(system: System) -> None:
    device = unique("dev")
    r = await system.http.put(
        system.url(f"/v1/admin/blacklist/device/{device}"),
        json={"reason": "chargeback ring"},
        headers={"Authorization": "Bearer ak-test"},
    )
    assert r.status_code == 200, r.text
    listed = (await system.get("/v1/admin/blacklist?kind=device", role="admin")).json()["entries"]
    assert any(e["value"] == device for e in listed)

    order = await system.record(card_key_order(device=device))
    body = await system.wait_status(await system.refund_id(order), "pending_review")
    assert body["risk"]["level"] == "blocked"
    assert "blacklist.device" in [s["code"] for s in body["risk"]["signals"]]
    assert body["decision"]["rule"] == "risk.blocked"

    bad = await system.http.put(
        system.url("/v1/admin/blacklist/planet/earth"),
        json={"reason": "x"},
        headers={"Authorization": "Bearer ak-test"},
    )
    assert bad.status_code == 422
    gone = await system.http.delete(
        system.url(f"/v1/admin/blacklist/device/{device}"),
        headers={"Authorization": "Bearer ak-test"},
    )
    assert gone.status_code == 204


async def test_a_burst_from_one_device_turns_later_refunds_to_review(system: System) -> None:
    device = unique("dev")
    outcomes = []
    for _ in range(5):
        order = await system.record(card_key_order(device=device))
        body = await system.wait_status(await system.refund_id(order), "refunded", "pending_review")
        outcomes.append((body["status"], body["risk"]["level"]))
    assert outcomes[0] == ("refunded", "low")
    assert outcomes[-1][0] == "pending_review"
    assert outcomes[-1][1] in ("medium", "high")
    later = await system.body(
        (await system.get("/v1/refunds?status=pending_review&limit=1")).json()["refunds"][0][
            "refund_id"
        ]
    )
    assert later["risk"]["signals"]


async def test_policy_changes_at_run_time_and_a_bad_policy_is_refused(system: System) -> None:
    path = Path(system.settings.policy_path)
    before = (await system.get("/v1/admin/policy", role="admin")).json()
    # Make merchant M-strict's card keys non-refundable by self-service.
    policy = yaml.safe_load(default_policy_text())
    policy.setdefault("merchants", {})["M-strict"] = {
        "product_types": {"card_key": {"windows": {"refundable": False}}}
    }
    path.write_text(yaml.safe_dump(policy, allow_unicode=True), encoding="utf-8")
    try:
        order = card_key_order()
        order["merchant_id"] = "M-strict"
        await system.record(order)
        body = await system.wait_status(await system.refund_id(order), "rejected")
        assert body["decision"]["rule"] == "product.non_refundable"
        assert body["decision"]["policy_version"] != before["version"]
        # The API reads the same file: it reports the version the worker decided with.
        status = (await system.get("/v1/admin/policy", role="admin")).json()
        assert (
            status["version"] == body["decision"]["policy_version"] and status["last_error"] is None
        )

        # A broken edit is refused; the last good policy stays in force.
        await asyncio.sleep(0.01)
        path.write_text(
            "product_types: {card_key: {windows: {cooling_off_minutes: -5}}}\n", encoding="utf-8"
        )
        status = (await system.get("/v1/admin/policy", role="admin")).json()
        assert status["last_error"] and "cooling_off_minutes" in status["last_error"]
        assert status["version"] == body["decision"]["policy_version"]
    finally:
        path.write_text(default_policy_text(), encoding="utf-8")


async def test_explain_replays_the_seed_scenarios_without_creating_a_refund(system: System) -> None:
    order = await system.record(course_order(progress=20, minutes_ago=12))
    paid = datetime.fromisoformat(order["paid_at"])

    async def why(at: datetime, reason: str = "changed_mind", text: str = "") -> dict[str, object]:
        r = await system.post(
            "/v1/admin/explain",
            {
                "order_id": order["order_id"],
                "reason": reason,
                "reason_text": text,
                "at": at.isoformat(),
            },
            role="reviewer",
        )
        assert r.status_code == 200, r.text
        return dict(r.json()["decision"])

    assert (await why(paid + timedelta(minutes=12)))["outcome"] == "auto_approved"
    assert (await why(paid + timedelta(hours=2)))["outcome"] == "review"
    assert (await why(paid + timedelta(days=3), "other", "视频无法播放"))[
        "outcome"
    ] == "redirected_to_support"
    listed = (await system.get(f"/v1/refunds?order_id={order['order_id']}")).json()["refunds"]
    assert listed == []
    unknown = await system.post(
        "/v1/admin/explain", {"order_id": "nope", "reason": "other"}, role="reviewer"
    )
    assert unknown.status_code == 404


async def test_reconcile_matches_then_flags_a_planted_mismatch(system: System) -> None:
    order = await system.record(card_key_order(channel="wechat"))
    refund_id = await system.refund_id(order)
    await system.wait_status(refund_id, "refunded")
    today = datetime.now(UTC).date()

    report = await reconcile_day(system.settings, today)
    mine = [ln for ln in report.lines if ln.refund_id == refund_id]
    assert [ln.verdict for ln in mine] == ["match"]

    engine = make_engine(system.settings.database_url)
    sessions = make_session_factory(engine)
    try:
        async with sessions.begin() as session:
            await session.execute(
                update(PayoutRow)
                .where(PayoutRow.refund_id == refund_id)
                .values(amount=PayoutRow.amount + 1)
            )
        report = await reconcile_day(system.settings, today)
        assert [ln.verdict for ln in report.lines if ln.refund_id == refund_id] == ["mismatch"]
        async with sessions() as session:
            alerts = (
                await session.scalars(
                    select(NotificationRow).where(
                        NotificationRow.refund_id == refund_id,
                        NotificationRow.channel == "supervisor",
                    )
                )
            ).all()
        assert alerts, "a mismatch must raise a supervisor alert"
    finally:
        async with sessions.begin() as session:
            await session.execute(
                update(PayoutRow)
                .where(PayoutRow.refund_id == refund_id)
                .values(amount=PayoutRow.amount - 1)
            )
        await engine.dispose()


async def test_audit_chain_detects_a_planted_edit(system: System) -> None:
    order = await system.record(card_key_order())
    await system.wait_status(await system.refund_id(order), "refunded")
    checks = (await system.get("/v1/admin/checks", role="admin")).json()
    assert checks["ledger_balanced"] is True and checks["audit_ok"] is True
    assert (await verify(system.settings.database_url)).ok

    engine = make_engine(system.settings.database_url)
    try:
        async with make_session_factory(engine).begin() as session:
            row = (
                await session.execute(
                    text("SELECT seq, actor FROM audit_log ORDER BY seq DESC LIMIT 1")
                )
            ).one()
            await session.execute(
                update(AuditRow).where(AuditRow.seq == row.seq).values(actor="someone-else")
            )
        broken = await verify(system.settings.database_url)
        assert not broken.ok and broken.first_bad_seq == row.seq
    finally:
        async with make_session_factory(engine).begin() as session:
            await session.execute(
                update(AuditRow).where(AuditRow.seq == row.seq).values(actor=row.actor)
            )
        await engine.dispose()


async def test_buyer_and_upline_inboxes_tell_what_happened(system: System) -> None:
    order = await system.record(course_order(progress=20, minutes_ago=120))
    distributor = order["commissions"][0]["beneficiary_id"]
    refund_id = await system.refund_id(order, reason="changed_mind")
    await system.wait_status(refund_id, "pending_review")
    await system.post(
        f"/v1/refunds/{refund_id}/reject", {"reviewer": "bob", "reason": "watched"}, role="reviewer"
    )
    await system.wait_status(refund_id, "rejected")

    buyer = (await system.get(f"/v1/notifications?recipient=buyer:{order['buyer_id']}")).json()
    statuses = [n["status"] for n in buyer["notifications"] if n["refund_id"] == refund_id]
    # Every status the refund rests in; "checking" lasted one workflow step and is told in
    # the next notification's timeline instead of a message of its own.
    assert statuses == ["pending_review", "rejected"]

    upline = (await system.get(f"/v1/notifications?recipient=distributor:{distributor}")).json()
    mine = [n["body"] for n in upline["notifications"] if n["refund_id"] == refund_id]
    assert [(b["action"], b["state"]) for b in mine] == [
        ("freeze", "frozen"),
        ("release", "released"),
    ]
    assert mine[0]["amount"] == order["commissions"][0]["amount"]

    forbidden = await system.get("/v1/notifications?recipient=supervisors")
    assert forbidden.status_code == 403
    assert (
        await system.get("/v1/notifications?recipient=supervisors", role="reviewer")
    ).status_code == 200
    bad = await system.get("/v1/notifications?recipient=everyone")
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "recipient"
