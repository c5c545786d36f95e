"""The crash rig: the same system as `tests/conftest.py`'s `system`, except that the worker is
a real `refundctl worker` subprocess of the stack that can die (at a crash point, or by SIGKILL)
and be started again, configured entirely through its environment like a deployed worker.

The API runs in-process, as in `system`, on the crash rig's own task queue: the in-process
worker of `system` may poll `refunds` in the same pytest session and must never pick up a
crash test's refund (it would finish it without ever crashing).

Crash points (activities/crashpoints.py) are all listed in the worker's KAMI_CRASHPOINTS and
all *disarmed* by their marker files; a test arms exactly one by deleting its marker. The
worker dies there (exit 137), leaving the marker behind, so the restarted worker walks past it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.crashpoints import marker
from refundctl.procs import ChildProcess
from refundctl.stack import ProcessService
from store import ledger
from store.db import make_session_factory
from store.models import BalanceRow, LedgerEntryRow, PayoutRow
from tests.system import System

TASK_QUEUE = "refunds-crash"
WORKER = "crash-worker"
CRASHPOINTS = (
    "payout.before_gateway",
    "payout.after_gateway",
    "payout.during_settlement",
    "commissions.claw_back",
    "incident.before_start",
    "replacement.after_confirm",
)
# How long a "timeout" fault holds the gateway's answer, and how long the worker's HTTP client
# waits for it: the window in which a test SIGKILLs the worker mid-call.
FAULT_DELAY = 8.0
WORKER_HTTP_TIMEOUT = 6.0
# A payout activity lost with its worker is re-dispatched only when its start_to_close
# timeout (30 s, workflows/refund.py) expires; the crash tests wait that out.
CRASH_RECOVERY_SECONDS = 90.0


def crash_env(crash_dir: Path) -> dict[str, str]:
    """Every crash point listed for the worker (the stack gives it the settings as well)."""
    return {
        "KAMI_CRASHPOINTS": ",".join(CRASHPOINTS),
        "KAMI_CRASHPOINT_DIR": str(crash_dir),
    }


@dataclass
class CrashSystem:
    system: System
    service: ProcessService
    temporal_address: str
    crash_dir: Path
    engine: AsyncEngine

    # --- crash points --------------------------------------------------------------------

    def disarm_all(self) -> None:
        self.disarm_in(self.crash_dir)

    def arm(self, name: str) -> None:
        assert name in CRASHPOINTS, name
        marker(name, self.crash_dir).unlink(missing_ok=True)

    def fired(self, name: str) -> bool:
        path = marker(name, self.crash_dir)
        return path.exists() and path.read_text().strip() != ""

    # --- the worker ----------------------------------------------------------------------

    @staticmethod
    def disarm_in(crash_dir: Path) -> None:
        for name in CRASHPOINTS:
            marker(name, crash_dir).touch()

    @property
    def worker(self) -> ChildProcess:
        return self.service.child

    async def start_worker(self) -> None:
        """A live worker polling the crash queue (a new process if the last one died)."""
        if not self.service.running:
            await self.service.start()
        await self.service.wait_ready()

    async def wait_for_death(self, within: float = 60.0) -> int:
        """The worker's exit code once it died by itself (a crash point fired)."""
        try:
            return await asyncio.wait_for(self.worker.wait(), timeout=within)
        except TimeoutError:
            tail = "\n".join(self.worker.tail(40))
            raise AssertionError(
                f"the worker did not crash within {within:.0f}s; last output:\n{tail}"
            ) from None

    async def kill_worker(self) -> None:
        await self.service.kill()

    # --- sandbox gateways ----------------------------------------------------------------

    def gateway_base(self, channel: str) -> str:
        urls = self.system.sandboxes
        return urls.alipay.rsplit("/", 1)[0] if channel == "alipay" else urls.wechat

    async def arm_gateway_fault(self, channel: str, mode: str, count: int = 1) -> None:
        r = await self.system.http.post(
            f"{self.gateway_base(channel)}/sandbox/faults", json={"mode": mode, "count": count}
        )
        r.raise_for_status()

    async def clear_gateway_faults(self) -> None:
        for channel in ("alipay", "wechat"):
            r = await self.system.http.post(f"{self.gateway_base(channel)}/sandbox/reset")
            r.raise_for_status()

    # --- the books -----------------------------------------------------------------------

    async def trial_balance(self) -> dict[str, int]:
        async with make_session_factory(self.engine)() as session:
            return await ledger.trial_balance(session)

    async def balance_drift(self) -> dict[tuple[str, str], tuple[int, int]]:
        """Accounts whose running balance is not the sum of their ledger entries:
        {(account, currency): (balance, sum of entries)}; empty when consistent."""
        async with make_session_factory(self.engine)() as session:
            sums = {
                (a, c): int(total or 0)
                for a, c, total in (
                    await session.execute(
                        select(
                            LedgerEntryRow.account,
                            LedgerEntryRow.currency,
                            func.sum(LedgerEntryRow.amount),
                        ).group_by(LedgerEntryRow.account, LedgerEntryRow.currency)
                    )
                ).all()
            }
            balances = {
                (b.account, b.currency): b.amount
                for b in (await session.scalars(select(BalanceRow)))
            }
        return {
            key: (balances.get(key, 0), sums.get(key, 0))
            for key in set(sums) | set(balances)
            if balances.get(key, 0) != sums.get(key, 0)
        }

    async def ledger_entries(self, refund_id: str) -> list[LedgerEntryRow]:
        async with make_session_factory(self.engine)() as session:
            return list(
                await session.scalars(
                    select(LedgerEntryRow)
                    .where(LedgerEntryRow.refund_id == refund_id)
                    .order_by(LedgerEntryRow.id)
                )
            )

    async def payout_rows(self, refund_id: str) -> list[PayoutRow]:
        async with make_session_factory(self.engine)() as session:
            return list(
                await session.scalars(
                    select(PayoutRow)
                    .where(PayoutRow.refund_id == refund_id)
                    .order_by(PayoutRow.attempt)
                )
            )


def by_txn(entries: list[Any]) -> dict[str, dict[str, int]]:
    """Ledger entries grouped as {txn_id: {account: amount}}."""
    txns: dict[str, dict[str, int]] = {}
    for e in entries:
        txns.setdefault(e.txn_id, {})[e.account] = e.amount
    return txns
