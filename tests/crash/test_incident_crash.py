"""An incident whose worker is killed mid-way resumes and refunds no order twice (issue 11).

The worker is a real `refundctl worker` subprocess (tests/crash/rig.py): SIGKILLed while the
incident starts its refunds, or dying at `incident.before_start` (a batch's refunds stored,
their workflows not started yet). A fresh worker takes the incident over from its history;
from the outside every order is refunded, each gateway holds exactly one refund per payment,
and the books balance."""

from __future__ import annotations

import asyncio

import pytest

from activities.crashpoints import CRASH_EXIT_CODE
from tests.crash.rig import CRASH_RECOVERY_SECONDS, CrashSystem
from tests.integration.incident_support import (
    act,
    bad_batch,
    declaration,
    declare,
    incident_refunds,
    paid_back,
    wait_state,
)
from tests.system import unique

pytestmark = pytest.mark.integration

ORDERS = 8


async def _confirmed_incident(crash: CrashSystem) -> tuple[str, list[dict[str, object]]]:
    s = crash.system
    batch, orders = await bad_batch(s, ORDERS)
    incident_id = unique("inc")
    await declare(s, declaration(incident_id, {"batch_id": batch}, rate_per_second=2))
    await wait_state(s, incident_id, "awaiting_confirmation")
    await act(s, incident_id, "confirm", {"by": "lee"})
    return incident_id, orders


async def _each_order_refunded_once(
    crash: CrashSystem, incident_id: str, orders: list[dict[str, object]]
) -> None:
    s = crash.system
    done = await wait_state(s, incident_id, "completed", within=CRASH_RECOVERY_SECONDS + 60)
    assert done["report"]["refunded"] == ORDERS and done["report"]["failed"] == 0
    refunds = await incident_refunds(s, incident_id)
    assert sorted(r["order_id"] for r in refunds) == sorted(str(o["order_id"]) for o in orders)
    assert {r["status"] for r in refunds} == {"refunded"}
    for order in orders:
        assert [g["amount"] for g in await paid_back(s, order)] == [5000]
    for refund in refunds:
        assert [p["state"] for p in refund["payouts"]] == ["succeeded"]
    assert all(v == 0 for v in (await crash.trial_balance()).values())
    assert await crash.balance_drift() == {}


async def test_sigkill_while_the_incident_starts_refunds(crash: CrashSystem) -> None:
    incident_id, orders = await _confirmed_incident(crash)
    deadline = asyncio.get_running_loop().time() + 60
    while len(await incident_refunds(crash.system, incident_id)) < 3:
        assert asyncio.get_running_loop().time() < deadline, "the incident started nothing"
        await asyncio.sleep(0.1)

    await crash.kill_worker()
    started_before = len(await incident_refunds(crash.system, incident_id))
    assert started_before < ORDERS
    await crash.start_worker()

    await _each_order_refunded_once(crash, incident_id, orders)


async def test_worker_dies_between_storing_a_batch_and_starting_it(crash: CrashSystem) -> None:
    crash.arm("incident.before_start")
    incident_id, orders = await _confirmed_incident(crash)
    code = await crash.wait_for_death(within=60)
    assert code == CRASH_EXIT_CODE and crash.fired("incident.before_start")
    # The batch's refunds are stored, their workflows not started yet.
    stored = await incident_refunds(crash.system, incident_id)
    assert stored and {r["status"] for r in stored} == {"submitted"}

    await crash.start_worker()
    await _each_order_refunded_once(crash, incident_id, orders)
