"""`refundctl bench --incident` at a tiny size, so the incident bench's code path keeps working:
the stack, the refunds phase as the baseline, an incident of 20 orders declared, dry-run read
and confirmed through the API, the refunds again while it runs, and the exactly-once checks.

It runs the real command in a subprocess with a throwaway stack of its own, on a database of
its own (SQLite, or a fresh PostgreSQL database in CI's second pass), as the chaos run's test
does. About 20 s on 2 cores.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.harness import run_refundctl, session_database

pytestmark = pytest.mark.integration

RUN_TIMEOUT_SECONDS = 300


async def test_tiny_incident_bench_refunds_every_order_once(tmp_path: Path) -> None:
    figures = tmp_path / "bench.json"
    async with session_database(tmp_path) as database_url:
        code, text = await run_refundctl(
            "bench",
            "--n=10",
            "--concurrency=5",
            "--warmup=2",
            "--history-sample=5",
            "--incident=20",
            "--incident-rate=10",
            f"--database-url={database_url}",
            f"--json={figures}",
            timeout_seconds=RUN_TIMEOUT_SECONDS,
        )
    assert code == 0, text[-3000:]

    incident = json.loads(figures.read_text())["incident"]
    assert incident["errors"] == []
    assert incident["report"] | {"refunded_amounts": None} == {
        "matched": 20,
        "started": 20,
        "refunded": 20,
        "failed": 0,
        "skipped": 0,
        "waiting_for_a_person": 0,
        "refunded_amounts": None,
    }
    assert incident["rate_configured"] == 10
    assert incident["refund"]["count"] == 10
    assert incident["p99_ratio"] > 0
    assert "an incident of 20 orders" in text
