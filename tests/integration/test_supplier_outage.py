"""A supplier that fails the lean refund's quick steps: the refund goes on without its answer
(no evidence either way: a person decides), never fails. The steps run as local activities,
whose give-up reaches the workflow as the failure itself, not as an ActivityError
(`workflows/card_keys.py`, patch `local-supplier-failures`)."""

from __future__ import annotations

import pytest

from tests.system import System, card_key_order
from workflows.options import SUPPLIER_QUERY_RETRY

pytestmark = pytest.mark.integration


async def test_a_supplier_failing_every_query_sends_the_refund_to_a_person(system: System) -> None:
    order = await system.record(card_key_order(channel="alipay"))
    key_id = order["items"][0]["card_keys"][0]["card_key_id"]
    faults = f"{system.sandboxes.supplier}/sandbox/faults"
    tries = SUPPLIER_QUERY_RETRY.maximum_attempts
    armed = await system.http.post(faults, json={"mode": "error_5xx", "count": tries})
    assert armed.status_code == 200, armed.text

    refund_id = await system.refund_id(order, reason="invalid_key")
    body = await system.wait_status(refund_id, "pending_review", "failed", "refunded")

    assert body["status"] == "pending_review", body
    assert (await system.http.get(faults)).json()["armed"] == [], "every try met a 5xx"
    checked = [t for t in body["timeline"] if t["stage"] == "card_key_checked"]
    assert len(checked) == 1 and "unreachable" in checked[0]["detail"].lower(), checked
    # Nothing moved: no payout, the key untouched at the supplier.
    assert body["payouts"] == []
    assert (await system.sandbox_key(key_id))["lock_calls"] == 0
