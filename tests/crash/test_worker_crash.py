"""A worker killed mid-refund and restarted finishes the refund, and the gateway pays once.

Each test takes the worker down at one step boundary of the money path, brings a fresh worker
up, and checks from the outside: the refund is `refunded`, the sandbox gateway holds exactly
one refund for the payment, the refund body shows one succeeded payout, the commission was
clawed back once, and the books balance (trial balance zero, balances = sum of entries).

Slow by nature: a payout activity lost with its worker is re-dispatched by Temporal only when
its 30 s start_to_close timeout expires (workflows/refund.py), so most cases take ~35 s.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import pytest

from activities.crashpoints import CRASH_EXIT_CODE
from tests.crash.rig import CRASH_RECOVERY_SECONDS, CrashSystem, by_txn
from tests.system import card_key_order

pytestmark = pytest.mark.integration

AMOUNT = 5000
COMMISSION = AMOUNT // 10  # card_key_order gives U-7 a tenth


@dataclass(frozen=True)
class Case:
    point: str
    channel: str
    gateway_fault: str | None = None  # armed at the gateway before the refund is submitted

    def __str__(self) -> str:
        return f"{self.point}-{self.channel}"


CASES = [
    # The pending payout row is committed, the gateway never heard of the refund.
    Case("payout.before_gateway", "alipay"),
    # The gateway paid; the worker died before writing that down. The retry sends the same
    # out_request_no, which Alipay answers with fund_change=N (→ processing → query). (WeChat
    # in the same spot is test_sigkill_while_the_gateway_call_hangs.)
    Case("payout.after_gateway", "alipay"),
    # The gateway said "processing"; the worker dies while querying for the settlement.
    Case("payout.during_settlement", "wechat", gateway_fault="processing"),
    # Money moved; the worker dies inside the claw-back transaction (posted, not committed).
    Case("commissions.claw_back", "alipay"),
    # The gateway paid but its answer failed verification (payout UNKNOWN); the worker dies
    # while checking by query. Never a second route: the restarted worker verifies it.
    Case("payout.during_settlement", "wechat", gateway_fault="bad_signature"),
    Case("payout.during_settlement", "alipay", gateway_fault="bad_signature"),
]


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_worker_dies_at_a_crash_point_and_the_refund_completes_once(
    crash: CrashSystem, case: Case
) -> None:
    s = crash.system
    order = await s.record(card_key_order(channel=case.channel))
    txn = order["payments"][0]["transaction_id"]
    crash.arm(case.point)
    if case.gateway_fault:
        await crash.arm_gateway_fault(case.channel, case.gateway_fault)

    refund_id = await s.refund_id(order, reason="invalid_key")
    code = await crash.wait_for_death(within=60)
    assert code == CRASH_EXIT_CODE, f"worker exited {code}, not at a crash point"
    assert crash.fired(case.point)

    # What the crash left behind: the refund is mid-flight, not finished.
    at_crash = await s.body(refund_id)
    assert at_crash["status"] != "refunded"
    at_gateway = await s.gateway_refunds(case.channel, txn)
    if case.point == "payout.before_gateway":
        assert at_gateway == [], "the worker died before calling the gateway"
    else:
        assert len(at_gateway) == 1, at_gateway

    started = time.monotonic()
    await crash.start_worker()
    body = await s.wait_status(refund_id, "refunded", within=CRASH_RECOVERY_SECONDS)
    print(f"{case}: refunded {time.monotonic() - started:.1f}s after the restart")

    await assert_paid_once(crash, order, refund_id, body, channel=case.channel)


async def test_sigkill_while_the_gateway_call_hangs(crash: CrashSystem) -> None:
    """SIGKILL from outside while the gateway holds its answer (it recorded the refund): the
    restarted worker's retry, under the same out_refund_no, must not pay a second time."""
    s = crash.system
    order = await s.record(card_key_order(channel="wechat"))
    txn = order["payments"][0]["transaction_id"]
    await crash.arm_gateway_fault("wechat", "timeout")

    refund_id = await s.refund_id(order, reason="invalid_key")
    # The sandbox records the refund first, then withholds the answer for FAULT_DELAY seconds
    # (longer than the worker's HTTP timeout): once it is listed, the call is hanging.
    await wait_until(lambda: s.gateway_refunds("wechat", txn), within=30)
    assert crash.worker.running
    await crash.kill_worker()
    assert crash.worker.returncode == -9  # SIGKILL

    started = time.monotonic()
    await crash.start_worker()
    body = await s.wait_status(refund_id, "refunded", within=CRASH_RECOVERY_SECONDS)
    print(f"sigkill mid-call: refunded {time.monotonic() - started:.1f}s after the restart")

    await assert_paid_once(crash, order, refund_id, body, channel="wechat")
    gateway = await s.gateway_refunds("wechat", txn)
    assert gateway[0]["requests"] >= 2, "the retry should have asked the gateway again"


async def test_worker_dies_while_an_abnormal_refund_waits_for_a_person(
    crash: CrashSystem,
) -> None:
    """ABNORMAL waits for a supervisor, not for a timer: a worker killed meanwhile leaves
    nothing to redo, and the resolution on the restarted worker pays once."""
    s = crash.system
    order = await s.record(card_key_order(channel="wechat"))
    await crash.arm_gateway_fault("wechat", "abnormal")
    refund_id = await s.refund_id(order, reason="invalid_key")
    await s.wait_status(refund_id, "needs_attention", within=60)
    await crash.kill_worker()
    await crash.start_worker()

    r = await s.post(
        f"/v1/refunds/{refund_id}/resolve",
        {"operator": "sre", "action": "abnormal_refund", "to": "MERCHANT_BANK_CARD"},
        "admin",
    )
    assert r.status_code == 200, r.text
    body = await s.wait_status(refund_id, "refunded", within=CRASH_RECOVERY_SECONDS)
    await assert_paid_once(crash, order, refund_id, body, channel="wechat")


async def test_gateway_5xx_burst_is_retried_to_one_refund(crash: CrashSystem) -> None:
    s = crash.system
    order = await s.record(card_key_order(channel="alipay"))
    await crash.arm_gateway_fault("alipay", "error_5xx", count=3)

    refund_id = await s.refund_id(order, reason="invalid_key")
    body = await s.wait_status(refund_id, "refunded", within=60)

    await assert_paid_once(crash, order, refund_id, body, channel="alipay")
    faults = (await s.http.get(f"{crash.gateway_base('alipay')}/sandbox/faults")).json()
    assert faults["armed"] == [], "all three 5xx answers were served"
    assert crash.worker.running


# --- assertions --------------------------------------------------------------------------------


async def assert_paid_once(
    crash: CrashSystem, order: dict[str, Any], refund_id: str, body: dict[str, Any], *, channel: str
) -> None:
    s = crash.system
    txn = order["payments"][0]["transaction_id"]

    # The gateway: exactly one refund for the payment, for the full amount, settled.
    gateway = await s.gateway_refunds(channel, txn)
    assert len(gateway) == 1, gateway
    assert gateway[0]["amount"] == AMOUNT
    assert gateway[0]["status"] == "SUCCESS"
    assert gateway[0]["out_refund_no"].startswith(refund_id)

    # The refund body: one payout, succeeded, through the original route; no balance fallback.
    assert [(p["channel"], p["amount"], p["state"]) for p in body["payouts"]] == [
        (channel, AMOUNT, "succeeded")
    ]
    assert body["payouts"][0]["out_refund_no"] == gateway[0]["out_refund_no"]
    rows = await crash.payout_rows(refund_id)
    assert [(r.out_refund_no, r.state) for r in rows] == [
        (gateway[0]["out_refund_no"], "succeeded")
    ]
    assert body["commissions"] == [
        {"beneficiary_id": "U-7", "level": 1, "amount": COMMISSION, "state": "clawed_back"}
    ]

    # The books: one payout posting, one freeze, one claw-back, nothing else for this refund.
    txns = by_txn(await crash.ledger_entries(refund_id))
    merchant = f"merchant:{order['merchant_id']}:settlement"
    paid = {f"refund:{refund_id}:payout:1": {merchant: -AMOUNT, f"clearing:{channel}": AMOUNT}}
    freeze = f"refund:{refund_id}:commission:U-7:1:freeze:0"
    claw_back = f"refund:{refund_id}:commission:U-7:1:claw_back"
    if freeze in txns:  # the refund had to wait (a payout settling): frozen, then clawed back
        assert txns == {
            **paid,
            freeze: {
                "distributor:U-7:commission": -COMMISSION,
                "distributor:U-7:frozen": COMMISSION,
            },
            claw_back: {"distributor:U-7:frozen": -COMMISSION, merchant: COMMISSION},
        }
    else:  # paid out before it ever waited: taken straight back, once
        assert txns == {
            **paid,
            claw_back: {"distributor:U-7:commission": -COMMISSION, merchant: COMMISSION},
        }
    assert all(v == 0 for v in (await crash.trial_balance()).values())
    assert await crash.balance_drift() == {}


async def wait_until(probe: Any, *, within: float, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + within
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {within:.0f}s")
        await asyncio.sleep(interval)
