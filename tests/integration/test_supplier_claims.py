"""The supplier pays for its bad keys, through the real path: a refund of a key the sandbox
supplier calls `invalid` is paid through the API and the workflow, its `refunded` report
opens a claim, the worker's claims loop submits it, the supplier credits it (twice) and the
claim is recovered once — or, left unpaid past the policy's deadline, written off. The
ledger, `refundctl reconcile` and the operators' report say so."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import yaml

from domain.policy import default_policy_text
from domain.supplier_claims import ClaimState, claim_id_for
from refundctl.procs import refundctl_argv
from refundctl.reconcile import lines, reconcile_day
from refundctl.stack.launch import settings_env
from store import ledger
from store.claim_rows import SupplierClaimRow
from store.db import SessionFactory, make_engine, make_session_factory
from tests.system import System, card_key_order, unique

pytestmark = pytest.mark.integration


@pytest.fixture
async def sessions(system: System) -> AsyncIterator[SessionFactory]:
    engine = make_engine(system.settings.database_url)
    try:
        yield make_session_factory(engine)
    finally:
        await engine.dispose()


async def refunded_invalid_key(system: System, supplier: str, merchant: str) -> tuple[str, str]:
    """An order whose key `supplier` calls invalid, refunded through the API: (refund, claim)."""
    order = card_key_order()
    order["merchant_id"] = merchant
    key = order["items"][0]["card_keys"][0]
    key["supplier"] = supplier
    await system.record(order)
    await system.set_key(key["card_key_id"], "invalid")
    refund_id = await system.refund_id(order, reason="invalid_key")
    body = await system.wait_status(refund_id, "refunded")
    assert body["decision"]["rule"] == "card_key.invalid_confirmed"
    return refund_id, claim_id_for(refund_id, supplier)


async def at_supplier(system: System, claim_id: str, *, within: float = 20) -> dict[str, Any]:
    """The claim as the sandbox supplier holds it, once the worker submitted it."""
    url = f"{system.sandboxes.supplier}/sandbox/claims/{claim_id}"
    for _ in range(int(within / 0.2)):
        r = await system.http.get(url)
        if r.status_code == 200:
            return dict(r.json())
        await asyncio.sleep(0.2)
    raise AssertionError(f"the supplier never received claim {claim_id}")


async def claim_in(
    sessions: SessionFactory, claim_id: str, state: ClaimState, *, within: float = 30
) -> SupplierClaimRow:
    for _ in range(int(within / 0.25)):
        async with sessions() as session:
            row = await session.get(SupplierClaimRow, claim_id)
        if row is not None and row.state is state:
            return row
        await asyncio.sleep(0.25)
    raise AssertionError(f"claim {claim_id} is {row.state if row else None}, not {state}")


async def balances(sessions: SessionFactory, *accounts: str) -> list[int]:
    async with sessions() as session:
        return [await ledger.balance(session, a) for a in accounts]


def claims_line(report_lines: list[str], supplier: str) -> str:
    (line,) = [ln for ln in report_lines if ln.startswith(f"claims {supplier} ")]
    return line


async def test_a_bad_key_is_claimed_submitted_credited_and_recovered_once(
    system: System, sessions: SessionFactory
) -> None:
    supplier, merchant = unique("sup"), unique("M-claims")
    started = datetime.now(UTC) - timedelta(hours=1)
    refund_id, claim_id = await refunded_invalid_key(system, supplier, merchant)

    held = await at_supplier(system, claim_id)
    assert held["state"] == "pending" and held["submissions"] == 1
    assert held["submitted"]["refund_id"] == refund_id
    assert held["submitted"]["amount"] == 5000
    opened = await claim_in(sessions, claim_id, ClaimState.SUBMITTED)
    assert (opened.refund_id, opened.merchant_id, opened.amount) == (refund_id, merchant, 5000)
    receivable = ledger.supplier_claims(supplier)
    recovery = ledger.merchant_recovery(merchant)
    assert await balances(sessions, receivable, recovery) == [-5000, 5000]

    settlement = ledger.merchant_settlement(merchant)
    (settled_before,) = await balances(sessions, settlement)  # the sale, less the refund

    # The supplier credits the claim, then again (a duplicate): it is recovered once.
    for _ in range(2):
        r = await system.http.post(
            f"{system.sandboxes.supplier}/sandbox/claims/{claim_id}/credit", json={}
        )
        assert r.status_code == 200, r.text
    recovered = await claim_in(sessions, claim_id, ClaimState.RECOVERED)
    assert (recovered.recovered, recovered.duplicate_credits) == (5000, 1)
    assert await balances(
        sessions, receivable, ledger.supplier_clearing(supplier), recovery, settlement
    ) == [0, -5000, 0, settled_before + 5000]
    assert (await at_supplier(system, claim_id))["submissions"] == 1

    # `refundctl reconcile` as an operator runs it, configured from the environment.
    argv = refundctl_argv("reconcile", "--date", datetime.now(UTC).date().isoformat())
    env = {**os.environ, **settings_env(system.settings)}
    printed = await asyncio.to_thread(
        subprocess.run, argv, capture_output=True, text=True, env=env, timeout=120
    )
    assert "reconciliation " in printed.stdout, printed.stderr
    line = claims_line(printed.stdout.splitlines(), supplier)
    assert "open 0 (¥0.00)" in line and "recovered 1 (¥50.00)" in line
    assert "written off 0 (¥0.00)" in line and "duplicate credits 1" in line

    checks = (await system.get("/v1/admin/checks", role="admin")).json()
    (mine,) = [c for c in checks["supplier_claims"] if c["supplier"] == supplier]
    assert mine == {
        "supplier": supplier,
        "open": {"count": 0, "amount": 0},
        "recovered": {"count": 1, "amount": 5000},
        "written_off": {"count": 0, "amount": 0},
        "duplicate_credits": 1,
    }
    assert checks["ledger_balanced"]

    # The operators' report: the supplier's bad-key rate over the keys it sold.
    other = card_key_order()
    other["merchant_id"] = merchant
    other["items"][0]["card_keys"][0]["supplier"] = supplier
    await system.record(other)  # sold, never refunded
    query = urlencode({"from": started.isoformat(), "merchant_id": merchant})
    figures = (await system.get(f"/v1/admin/reports?{query}", role="admin")).json()
    assert figures["suppliers"] == [
        {
            "supplier": supplier,
            "keys_sold": 2,
            "invalid_keys": 1,
            "refunds": 1,
            "bad_key_rate": 0.5,
        }
    ]


async def test_a_claim_unpaid_past_the_deadline_is_written_off(
    system: System, sessions: SessionFactory
) -> None:
    supplier, merchant = unique("sup"), unique("M-claims")
    _, claim_id = await refunded_invalid_key(system, supplier, merchant)
    await at_supplier(system, claim_id)
    await claim_in(sessions, claim_id, ClaimState.SUBMITTED)

    # The deadline, from the policy the worker reads at run time: 0 days, so it has passed.
    path = Path(system.settings.policy_path)
    policy = yaml.safe_load(default_policy_text())
    policy["claims"] = {"write_off_days": 0}
    path.write_text(yaml.safe_dump(policy, allow_unicode=True), encoding="utf-8")
    try:
        written_off = await claim_in(sessions, claim_id, ClaimState.WRITTEN_OFF)
    finally:
        path.write_text(default_policy_text(), encoding="utf-8")
    assert written_off.outcome_note == "not credited within 0 days"
    assert await balances(
        sessions, ledger.supplier_claims(supplier), ledger.merchant_recovery(merchant)
    ) == [0, 0]
    async with sessions() as session:
        assert await ledger.posted(session, f"supplier-claim:{claim_id}:written-off")
        assert not await ledger.posted(session, f"supplier-claim:{claim_id}:recovered")

    report = await reconcile_day(system.settings, datetime.now(UTC).date())
    line = claims_line(lines(report), supplier)
    assert "open 0 (¥0.00)" in line and "recovered 0 (¥0.00)" in line
    assert "written off 1 (¥50.00)" in line
