"""Gateway answers that cannot be trusted, end to end (issue 14): API → Temporal → worker →
sandbox gateways → database. In every case exactly one refund reaches the buyer, counting
the gateways' own ledgers and the platform balance together."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import delete, select

from domain.model import utcnow
from domain.policy import default_policy_text
from refundctl.reconcile import reconcile_day
from store import ledger
from store.db import make_engine, make_session_factory
from store.models import NotificationRow, PayoutRow
from tests.integration.test_money import fault
from tests.system import System, card_key_order

pytestmark = pytest.mark.integration


async def balance_of(system: System, buyer_id: str) -> int:
    engine = make_engine(system.settings.database_url)
    try:
        async with make_session_factory(engine)() as session:
            return await ledger.balance(session, ledger.buyer_balance(buyer_id))
    finally:
        await engine.dispose()


async def money_reached_buyer(system: System, order: dict[str, Any]) -> int:
    """What the buyer got back: the gateway's own ledger plus the platform balance."""
    channel = order["payments"][0]["channel"]
    transaction = order["payments"][0]["transaction_id"]
    at_gateway = sum(
        r["amount"]
        for r in await system.gateway_refunds(channel, transaction)
        if r["status"] in ("SUCCESS", "PROCESSING", "ABNORMAL")
    )
    return at_gateway + await balance_of(system, order["buyer_id"])


async def test_abnormal_waits_for_a_person_and_never_pays_twice(system: System) -> None:
    order = await system.record(card_key_order(channel="wechat"))
    await fault(system, "wechat", "abnormal")
    refund_id = await system.refund_id(order)
    body = await system.wait_status(refund_id, "needs_attention", within=30)

    assert [(p["channel"], p["state"]) for p in body["payouts"]] == [("wechat", "abnormal")]
    assert body["payouts"][0]["gateway_status"] == "ABNORMAL"
    (attention,) = [t for t in body["timeline"] if t["stage"] == "needs_attention"]
    assert "ABNORMAL" in attention["detail"]
    assert await money_reached_buyer(system, order) == 5000  # held at WeChat, nothing else

    queue = (await system.get("/v1/reviews?state=needs_attention", role="reviewer")).json()
    assert refund_id in [case["refund"]["refund_id"] for case in queue["reviews"]]
    pending = (await system.get("/v1/reviews?state=pending", role="reviewer")).json()
    assert refund_id not in [case["refund"]["refund_id"] for case in pending["reviews"]]

    # Only a supervisor (admin) resolves; the buyer cannot cancel money in flight.
    forbidden = await system.post(
        f"/v1/refunds/{refund_id}/resolve", {"operator": "x", "action": "verify"}, "reviewer"
    )
    assert forbidden.status_code == 403
    cancel = await system.post(f"/v1/refunds/{refund_id}/cancel", {"buyer_id": order["buyer_id"]})
    assert cancel.status_code == 409

    verified = await system.post(
        f"/v1/refunds/{refund_id}/resolve", {"operator": "sre-li", "action": "verify"}, "admin"
    )
    assert verified.status_code == 200, verified.text
    after = verified.json()
    assert after["status"] == "needs_attention"
    assert any(t["stage"] == "attention_verified" for t in after["timeline"])

    async with _books(system) as session:
        alerts = (
            await session.scalars(
                select(NotificationRow.body).where(
                    NotificationRow.refund_id == refund_id,
                    NotificationRow.channel == "supervisor",
                )
            )
        ).all()
    assert any("needs attention" in a.get("message", "") for a in alerts), alerts
    assert await money_reached_buyer(system, order) == 5000


async def test_resolve_is_refused_when_the_refund_does_not_need_it(system: System) -> None:
    order = await system.record(card_key_order(channel="alipay"))
    refund_id = await system.refund_id(order)
    await system.wait_status(refund_id, "refunded")
    r = await system.post(
        f"/v1/refunds/{refund_id}/resolve", {"operator": "sre", "action": "verify"}, "admin"
    )
    assert r.status_code == 409
    assert r.headers["content-type"].startswith("application/problem+json")
    bad = await system.post(
        f"/v1/refunds/{refund_id}/resolve", {"operator": "sre", "action": "pay_to_balance"}, "admin"
    )
    assert bad.status_code == 422
    assert "note" in bad.text


async def test_a_planted_over_refund_is_caught_by_checks_and_reconcile(system: System) -> None:
    order = await system.record(card_key_order(channel="wechat"))
    refund_id = await system.refund_id(order)
    body = await system.wait_status(refund_id, "refunded")
    paid = body["payouts"][0]

    checks = (await system.get("/v1/admin/checks", role="admin")).json()
    assert checks["money_conserved"] is True, checks["over_refunds"]

    # What the old bug did: a second payout of the same money, to balance.
    planted = f"{refund_id}-p99"
    now = utcnow()
    async with _books(system, write=True) as session:
        session.add(
            PayoutRow(
                out_refund_no=planted,
                refund_id=refund_id,
                attempt=99,
                payment_id=None,
                transaction_id=None,
                channel="balance",
                amount=paid["amount"],
                payment_total=paid["amount"],
                currency="CNY",
                buyer_id=order["buyer_id"],
                merchant_id=order["merchant_id"],
                reason="",
                state="succeeded",
                gateway_refund_id=None,
                gateway_status="CREDITED",
                created_at=now,
                updated_at=now,
                settled_at=now,
            )
        )
    try:
        checks = (await system.get("/v1/admin/checks", role="admin")).json()
        assert checks["money_conserved"] is False
        (breach,) = [b for b in checks["over_refunds"] if b["order_id"] == order["order_id"]]
        assert (breach["paid"], breach["refunded"]) == (5000, 10000)

        report = await reconcile_day(system.settings, datetime.now(UTC).date())
        assert not report.ok
        assert order["order_id"] in [b.order_id for b in report.over_refunds]
        async with _books(system) as session:
            alerts = (
                await session.scalars(
                    select(NotificationRow.status).where(
                        NotificationRow.refund_id == refund_id,
                        NotificationRow.channel == "supervisor",
                    )
                )
            ).all()
        assert any(s.startswith("over_refund") for s in alerts), alerts
    finally:
        async with _books(system, write=True) as session:
            await session.execute(delete(PayoutRow).where(PayoutRow.out_refund_no == planted))
    checks = (await system.get("/v1/admin/checks", role="admin")).json()
    assert checks["money_conserved"] is True


class _books:
    """A short-lived session on the system's database."""

    def __init__(self, system: System, *, write: bool = False) -> None:
        self.engine = make_engine(system.settings.database_url)
        self.write = write

    async def __aenter__(self) -> Any:
        self.session = make_session_factory(self.engine)()
        return self.session

    async def __aexit__(self, *exc: object) -> None:
        if self.write and exc[0] is None:
            await self.session.commit()
        await self.session.close()
        await self.engine.dispose()


@contextlib.contextmanager
def payout_limits(system: System, **limits: int) -> Iterator[None]:
    """Run with the policy's payout limits changed (the worker re-reads the file)."""
    path = Path(system.settings.policy_path)
    policy = yaml.safe_load(default_policy_text())
    policy["payouts"] = {**policy["payouts"], **limits}
    path.write_text(yaml.safe_dump(policy, allow_unicode=True), encoding="utf-8")
    try:
        yield
    finally:
        path.write_text(default_policy_text(), encoding="utf-8")


async def refund_once_despite(system: System, channel: str, mode: str) -> dict[str, Any]:
    order = await system.record(card_key_order(channel=channel))
    await fault(system, channel, mode)
    body = await system.wait_status(await system.refund_id(order), "refunded", within=40)
    assert [(p["channel"], p["state"]) for p in body["payouts"]] == [(channel, "succeeded")]
    assert "route_fallback" not in [t["stage"] for t in body["timeline"]]
    transaction = order["payments"][0]["transaction_id"]
    assert len(await system.gateway_refunds(channel, transaction)) == 1
    assert await money_reached_buyer(system, order) == 5000
    return body


@pytest.mark.parametrize("channel", ["wechat", "alipay"])
async def test_success_answered_with_a_bad_signature_is_verified_not_paid_again(
    system: System, channel: str
) -> None:
    body = await refund_once_despite(system, channel, "bad_signature")
    unverified = [t for t in body["timeline"] if t["stage"] == "refund_unverified"]
    assert unverified and "SIGNATURE_INVALID" in unverified[0]["detail"]


async def test_a_skewed_gateway_clock_is_unverified_then_verified(system: System) -> None:
    body = await refund_once_despite(system, "wechat", "skewed_clock")
    assert "refund_unverified" in [t["stage"] for t in body["timeline"]]


async def test_unsigned_system_error_is_retried_under_the_same_number(system: System) -> None:
    body = await refund_once_despite(system, "alipay", "unsigned_system_error")
    assert [p["attempt"] for p in body["payouts"]] == [1]


async def test_a_refund_the_query_never_confirms_goes_to_a_person(system: System) -> None:
    order = await system.record(card_key_order(channel="alipay"))
    with payout_limits(system, processing_limit_minutes=0):
        await fault(system, "alipay", "no_status")
        refund_id = await system.refund_id(order)
        body = await system.wait_status(refund_id, "needs_attention", within=60)
    assert body["payouts"][0]["gateway_status"] == "REFUND_STATUS_MISSING"
    assert "still processing" in body["timeline"][-1]["detail"]

    # The gateway's back office settles it; the supervisor asks again.
    no = body["payouts"][0]["out_refund_no"]
    base = system.sandboxes.alipay.rsplit("/", 1)[0]
    r = await system.http.put(f"{base}/sandbox/refunds/{no}", json={"status": "SUCCESS"})
    assert r.status_code == 200, r.text
    r = await system.post(
        f"/v1/refunds/{refund_id}/resolve", {"operator": "sre-li", "action": "verify"}, "admin"
    )
    assert r.status_code == 200, r.text
    body = await system.wait_status(refund_id, "refunded", within=30)
    assert [p["state"] for p in body["payouts"]] == ["succeeded"]
    assert await money_reached_buyer(system, order) == 5000


async def test_abnormal_is_sent_to_the_buyers_bank_card_on_a_supervisors_word(
    system: System,
) -> None:
    order = await system.record(card_key_order(channel="wechat"))
    await fault(system, "wechat", "abnormal")
    refund_id = await system.refund_id(order)
    await system.wait_status(refund_id, "needs_attention", within=30)

    missing = await system.post(
        f"/v1/refunds/{refund_id}/resolve",
        {"operator": "sre-li", "action": "abnormal_refund", "to": "USER_BANK_CARD"},
        "admin",
    )
    assert missing.status_code == 422 and "bank_account" in missing.text
    r = await system.post(
        f"/v1/refunds/{refund_id}/resolve",
        {
            "operator": "sre-li",
            "action": "abnormal_refund",
            "to": "USER_BANK_CARD",
            "bank_type": "ICBC_DEBIT",
            "bank_account": "6212260000000000001",
            "real_name": "张三",
            "note": "buyer's old card was closed; new card confirmed by phone",
        },
        "admin",
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "refunding"
    assert "6212260000000000001" not in r.text  # encrypted before the workflow saw it
    body = await system.wait_status(refund_id, "refunded", within=30)

    stages = [t["stage"] for t in body["timeline"]]
    assert stages.index("needs_attention") < stages.index("abnormal_refund_requested")
    (record,) = await system.gateway_refunds("wechat", order["payments"][0]["transaction_id"])
    assert record["status"] == "SUCCESS" and record["rescue"]["type"] == "USER_BANK_CARD"
    # Only WeChat could read the card: the sandbox decrypted it with its platform key.
    assert record["rescue"]["bank_account"].endswith("0001")
    assert await money_reached_buyer(system, order) == 5000
