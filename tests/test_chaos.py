"""The short chaos run of CI: `refundctl chaos --n 100 --kills 10` (and one API kill) must end
with every refund paid exactly once, none stuck, the books and the audit chain intact.

It runs the real command in a subprocess with a stack of its own (Temporal, sandboxes, worker,
API as processes it SIGKILLs), on a database of its own: the session's database holds the
deliberately planted over-refunds and audit tampering of other tests, which the chaos run's
own checks would rightly report. On PostgreSQL (CI's second pass) that is a fresh database
on the same server. About a minute and a half on 2 cores.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.harness import run_refundctl, session_database

pytestmark = pytest.mark.integration

RUN_TIMEOUT_SECONDS = 300


async def test_short_chaos_run_pays_every_refund_once(tmp_path: Path) -> None:
    figures = tmp_path / "chaos.json"
    async with session_database(tmp_path) as database_url:
        code, text = await run_refundctl(
            "chaos",
            "--n=100",
            "--kills=10",
            "--api-kills=1",
            "--concurrency=20",
            "--seed=20261129",
            f"--database-url={database_url}",
            f"--log-dir={tmp_path / 'logs'}",
            f"--json={figures}",
            timeout_seconds=RUN_TIMEOUT_SECONDS,
        )
    assert code == 0, text[-3000:]

    result = json.loads(figures.read_text())
    assert result["fired"] == 100
    assert result["worker_kills"] == 10 and result["api_kills"] == 1
    assert result["refunded"] == 100
    assert result["double_payouts"] == 0
    assert result["missing_payouts"] == 0
    assert result["stuck"] == 0 and result["ended_otherwise"] == 0
    assert result["checks"] == {"ledger_balanced": True, "audit_ok": True, "money_conserved": True}
    assert all(c["exit_code"] == 0 for c in result["commands"])
