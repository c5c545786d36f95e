"""The money path against the sandbox gateways: settlement of "processing" refunds, closed
routes falling back to balance, notifications that are forged or replayed, commissions
already withdrawn, and the ledger balancing after all of it."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from peers.signing import load_private_key, wechatpay_encrypt, wechatpay_sign_response
from peers.wechat_keys import certificate_serial, load_certificates
from refundctl.audit import verify
from store import ledger
from store.db import make_engine, make_session_factory
from tests.system import System, card_key_order, course_order, unique

pytestmark = pytest.mark.integration


async def fault(system: System, channel: str, mode: str, count: int = 1) -> None:
    base = (
        system.sandboxes.alipay.rsplit("/", 1)[0]
        if channel == "alipay"
        else system.sandboxes.wechat
    )
    r = await system.http.post(f"{base}/sandbox/faults", json={"mode": mode, "count": count})
    r.raise_for_status()


async def test_processing_wechat_refund_settles_on_the_notification(system: System) -> None:
    order = await system.record(card_key_order(channel="wechat"))
    await fault(system, "wechat", "processing")
    refund_id = await system.refund_id(order)
    body = await system.wait_status(refund_id, "refunded", within=30)
    # Settled well before the first 10 s query: the signed notification woke the workflow.
    sent = next(t for t in body["timeline"] if t["stage"] == "refund_sent")
    arrived = next(t for t in body["timeline"] if t["stage"] == "money_arrived")
    waited = datetime.fromisoformat(arrived["at"]) - datetime.fromisoformat(sent["at"])
    assert waited.total_seconds() < 9, waited
    gateway = await system.gateway_refunds("wechat", order["payments"][0]["transaction_id"])
    assert len(gateway) == 1 and gateway[0]["status"] == "SUCCESS"


async def test_processing_alipay_refund_settles_by_query(system: System) -> None:
    order = await system.record(card_key_order(channel="alipay"))
    await fault(system, "alipay", "processing")
    refund_id = await system.refund_id(order)
    body = await system.wait_status(refund_id, "refunded", within=40)
    assert [p["state"] for p in body["payouts"]] == ["succeeded"]
    gateway = await system.gateway_refunds("alipay", order["payments"][0]["transaction_id"])
    assert len(gateway) == 1 and gateway[0]["queries"] >= 1


@pytest.mark.parametrize("channel", ["wechat", "alipay"])
async def test_closed_route_falls_back_to_balance(system: System, channel: str) -> None:
    order = await system.record(card_key_order(channel=channel))
    await fault(system, channel, "closed")
    refund_id = await system.refund_id(order)
    body = await system.wait_status(refund_id, "refunded", within=30)
    payouts = [(p["channel"], p["state"], p["attempt"]) for p in body["payouts"]]
    assert payouts[-1] == ("balance", "succeeded", 2)
    assert payouts[0][0] == channel and payouts[0][1] in ("closed", "failed", "abnormal")
    assert "route_fallback" in [t["stage"] for t in body["timeline"]]
    async with _session(system) as session:
        assert await ledger.balance(session, ledger.buyer_balance(order["buyer_id"])) == 5000


async def test_gateway_5xx_burst_still_refunds_once(system: System) -> None:
    order = await system.record(card_key_order(channel="wechat"))
    await fault(system, "wechat", "error_5xx", count=3)
    refund_id = await system.refund_id(order)
    await system.wait_status(refund_id, "refunded", within=40)
    gateway = await system.gateway_refunds("wechat", order["payments"][0]["transaction_id"])
    assert len(gateway) == 1


def notification(
    system: System, out_refund_no: str, *, key: rsa.RSAPrivateKey | None = None
) -> tuple[bytes, dict[str, str]]:
    """A WeChat REFUND.SUCCESS notification, signed with the sandbox platform key (genuine)
    or another key (forged)."""
    resource = {
        "mchid": system.settings.wechat_mchid,
        "out_refund_no": out_refund_no,
        "refund_id": "5030",
        "refund_status": "SUCCESS",
        "transaction_id": "T",
        "amount": {"total": 5000, "refund": 5000},
    }
    envelope = {
        "id": str(uuid.uuid4()),
        "create_time": "2026-11-23T10:00:00+08:00",
        "resource_type": "encrypt-resource",
        "event_type": "REFUND.SUCCESS",
        "summary": "退款成功",
        "resource": {
            "original_type": "refund",
            **wechatpay_encrypt(
                system.settings.wechat_apiv3_key,
                json.dumps(resource).encode(),
                associated_data="refund",
            ),
        },
    }
    body = json.dumps(envelope).encode()
    genuine = load_private_key(
        Path(system.settings.wechat_private_key_path).parent / "wechat_platform_private.pem"
    )
    # Under the serial of the platform certificate the service trusts.
    [certificate] = load_certificates(system.settings.wechat_platform_cert_paths())
    headers = wechatpay_sign_response(
        key or genuine, serial_no=certificate_serial(certificate), body=body
    )
    return body, {**headers, "Content-Type": "application/json"}


async def test_forged_notification_is_refused_and_changes_nothing(system: System) -> None:
    order = await system.record(course_order(progress=20, minutes_ago=120))
    refund_id = await system.refund_id(order, reason="changed_mind")
    await system.wait_status(refund_id, "pending_review")
    before = await system.body(refund_id)
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    body, headers = notification(system, f"{refund_id}-p1", key=forger)
    r = await system.http.post(
        system.url("/v1/gateways/wechat/notify"), content=body, headers=headers
    )
    assert r.status_code == 401 and r.json()["code"] == "FAIL"
    tampered_body, good_headers = notification(system, f"{refund_id}-p1")
    r = await system.http.post(
        system.url("/v1/gateways/wechat/notify"),
        content=tampered_body.replace(b"REFUND.SUCCESS", b"REFUND.CLOSED"),
        headers=good_headers,
    )
    assert r.status_code == 401
    assert await system.body(refund_id) == before


async def test_replayed_notification_changes_nothing(system: System) -> None:
    order = await system.record(card_key_order(channel="wechat"))
    refund_id = await system.refund_id(order)
    done = await system.wait_status(refund_id, "refunded")
    body, headers = notification(system, done["payouts"][0]["out_refund_no"])
    for _ in range(3):
        r = await system.http.post(
            system.url("/v1/gateways/wechat/notify"), content=body, headers=headers
        )
        assert r.status_code == 200 and r.json()["code"] == "SUCCESS"
    assert await system.body(refund_id) == done
    assert len(await system.gateway_refunds("wechat", order["payments"][0]["transaction_id"])) == 1


async def test_withdrawn_commission_is_clawed_back_as_a_debt(system: System) -> None:
    distributor = unique("D")
    order = card_key_order(channel="alipay")
    order["commissions"] = [{"beneficiary_id": distributor, "level": 1, "amount": 500}]
    await system.record(order)
    r = await system.post(
        f"/v1/distributors/{distributor}/withdrawals", {"withdrawal_id": "W-1", "amount": 500}
    )
    assert r.status_code == 200 and r.json()["available"] == 0
    too_much = await system.post(
        f"/v1/distributors/{distributor}/withdrawals", {"withdrawal_id": "W-2", "amount": 1}
    )
    assert too_much.status_code == 422

    body = await system.wait_status(await system.refund_id(order), "refunded")
    assert body["commissions"] == [
        {"beneficiary_id": distributor, "level": 1, "amount": 500, "state": "debt"}
    ]
    account = (await system.get(f"/v1/distributors/{distributor}/account")).json()
    assert account == {
        "beneficiary_id": distributor,
        "currency": "CNY",
        "available": -500,
        "frozen": 0,
    }


async def test_ledger_balances_and_audit_chain_holds_after_everything(system: System) -> None:
    async with _session(system) as session:
        totals = await ledger.trial_balance(session)
    assert totals and all(v == 0 for v in totals.values()), totals
    assert (await verify(system.settings.database_url)).ok


class _session:
    """A short-lived session on the system's database, for reading the books."""

    def __init__(self, system: System) -> None:
        self.engine = make_engine(system.settings.database_url)

    async def __aenter__(self) -> Any:
        self.session = make_session_factory(self.engine)()
        return self.session

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()
        await self.engine.dispose()
