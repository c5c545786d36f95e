"""A worker killed in the middle of replacing a key (补发) finishes the replacement, hands the
buyer exactly one fresh key, and pays nothing.

The worker is a real `refundctl worker` subprocess (tests/crash/rig.py). It dies at
`replacement.after_confirm` (the supplier handed the key over; nobody wrote it down yet), or
is SIGKILLed while the reservation call hangs (the supplier reserved; the answer is withheld).
The restarted worker repeats the call under the refund's idempotency key: the same
reservation, confirmed once for the buyer, recorded once."""

from __future__ import annotations

from typing import Any

import pytest

from activities.crashpoints import CRASH_EXIT_CODE
from tests.crash.rig import CRASH_RECOVERY_SECONDS, CrashSystem
from tests.integration.test_replacement import order_in_stock, wait_until_reserved

pytestmark = pytest.mark.integration


async def test_worker_dies_after_the_supplier_handed_the_key_over(crash: CrashSystem) -> None:
    s = crash.system
    order = await order_in_stock(s, 2)
    crash.arm("replacement.after_confirm")

    refund_id = await s.refund_id(order, reason="invalid_key", remedy="replacement")
    code = await crash.wait_for_death(within=60)
    assert code == CRASH_EXIT_CODE, f"worker exited {code}, not at a crash point"
    assert crash.fired("replacement.after_confirm")
    assert (await s.body(refund_id))["status"] != "replaced"

    await crash.start_worker()
    body = await s.wait_status(refund_id, "replaced", "refunded", within=CRASH_RECOVERY_SECONDS)

    reservations = await assert_replaced_once(crash, order, refund_id, body)
    assert reservations[0]["confirm_calls"] >= 2, "the restarted worker confirmed again"


async def test_sigkill_while_the_reservation_call_hangs(crash: CrashSystem) -> None:
    s = crash.system
    order = await order_in_stock(s, 2)
    r = await s.http.post(
        f"{s.sandboxes.supplier}/sandbox/reservations/faults", json={"mode": "timeout"}
    )
    r.raise_for_status()

    refund_id = await s.refund_id(order, reason="invalid_key", remedy="replacement")
    # The sandbox reserves first, then withholds the answer: once listed, the call hangs.
    await wait_until_reserved(s, order)
    assert crash.worker.running
    await crash.kill_worker()

    await crash.start_worker()
    body = await s.wait_status(refund_id, "replaced", "refunded", within=CRASH_RECOVERY_SECONDS)

    await assert_replaced_once(crash, order, refund_id, body)


async def assert_replaced_once(
    crash: CrashSystem, order: dict[str, Any], refund_id: str, body: dict[str, Any]
) -> list[dict[str, Any]]:
    """One reservation, confirmed for the buyer and recorded; the old key out of reach; not a
    fen paid: no gateway refund, no payout row, no payout in the books."""
    s = crash.system
    assert body["status"] == "replaced", body["timeline"]
    sku = order["items"][0]["sku"]
    stock = (await s.http.get(f"{s.sandboxes.supplier}/sandbox/stock/{sku}")).json()
    reservations = stock["reservations"]
    assert [(r["state"], r["buyer_id"]) for r in reservations] == [("confirmed", order["buyer_id"])]
    assert stock["available"] == 1
    assert body["replacement"]["card_key_id"] == reservations[0]["card_key_id"]
    old = order["items"][0]["card_keys"][0]["card_key_id"]
    assert body["replacement"]["replaced_card_key_id"] == old
    assert (await s.sandbox_key(old))["state"] in ("locked", "voided")

    txn = order["payments"][0]["transaction_id"]
    assert await s.gateway_refunds("alipay", txn) == []
    assert body["payouts"] == [] and await crash.payout_rows(refund_id) == []
    entries = await crash.ledger_entries(refund_id)
    assert not [e for e in entries if ":payout:" in e.txn_id], entries
    assert all(v == 0 for v in (await crash.trial_balance()).values())
    assert await crash.balance_drift() == {}
    return list(reservations)
