"""`refundctl incident ...` through the HTTP API, as a supervisor runs an incident from a
terminal: declare (waits for the dry run), show the list, a refused confirm, confirm by a
second person, report once it ended."""

from __future__ import annotations

import asyncio
import os
import subprocess

import pytest

from refundctl.procs import refundctl_argv
from tests.integration.incident_support import bad_batch, incident_refunds, paid_back
from tests.system import KEYS, System, unique

pytestmark = pytest.mark.integration


async def test_an_incident_run_from_the_cli(system: System) -> None:
    batch, orders = await bad_batch(system, 2)
    incident_id = unique("inc")
    env = {**os.environ, "REFUNDCTL_API": system.api_url, "REFUNDCTL_KEY": KEYS["admin"]}

    async def refundctl(*args: str) -> subprocess.CompletedProcess[str]:
        argv = refundctl_argv("incident", *args)
        return await asyncio.to_thread(
            subprocess.run, argv, capture_output=True, text=True, env=env, timeout=120
        )

    declared = await refundctl(
        "declare", incident_id, "--by", "sam", "--reason", "供应商批次卡密失效",
        "--batch", batch, "--rate", "10",
    )  # fmt: skip
    assert declared.returncode == 0, declared.stderr
    assert f"incident {incident_id}: awaiting_confirmation" in declared.stdout
    assert "2 matched, 2 to refund (100.00 CNY)" in declared.stdout

    shown = await refundctl("show", incident_id, "--orders")
    assert shown.returncode == 0, shown.stderr
    assert all(o["order_id"] in shown.stdout for o in orders)

    refused = await refundctl("confirm", incident_id, "--by", "sam")
    assert refused.returncode == 1
    assert "409" in refused.stderr and "second person" in refused.stderr

    confirmed = await refundctl("confirm", incident_id, "--by", "lee")
    assert confirmed.returncode == 0, confirmed.stderr
    assert "confirmed by lee" in confirmed.stdout

    report = await refundctl("report", incident_id, "--wait", "60")
    assert report.returncode == 0, report.stderr
    assert "refunded             2  (100.00 CNY)" in report.stdout
    assert len(await incident_refunds(system, incident_id)) == 2
    for order in orders:
        assert len(await paid_back(system, order)) == 1

    unknown = await refundctl("show", unique("inc"))
    assert unknown.returncode == 1 and "404" in unknown.stderr
