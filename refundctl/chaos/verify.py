"""After the storm: every refund against the gateways' own records and the books.

- The sandbox gateways list every refund they accepted for a payment
  (`GET /sandbox/refunds?transaction_id=`); a payout to the balance is a credit to the buyer's
  balance account in our ledger. Their sum is the money that went back for an order: more than
  the refund is a double payout, less for a `refunded` refund a missing one.
- `refundctl reconcile --date D` (every day the run touched) and `refundctl audit verify`, run
  as an operator would, and `GET /v1/admin/checks` (ledger balanced, audit chain intact, no
  order got back more than it paid).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from refundctl.chaos.workload import Refund, Workload
from refundctl.devserver import PROJECT_ROOT
from refundctl.procs import ChildProcess, LogFile, refundctl_argv
from refundctl.stack import Stack, settings_env

__all__ = ["CommandResult", "Money", "Verdicts", "check"]

# A sandbox refund that succeeded this long after it was accepted was "processing" first.
PROCESSING_SECONDS = 1.0


@dataclass
class Money:
    gateway: int = 0  # accepted and not closed, at the payment's gateway
    gateway_refunds: int = 0
    balance: int = 0  # credited to the buyer's balance
    processing_first: bool = False

    @property
    def out(self) -> int:
        return self.gateway + self.balance


@dataclass
class CommandResult:
    command: str
    exit_code: int | None
    summary: str


@dataclass
class Verdicts:
    money: dict[int, Money] = field(default_factory=dict)  # by refund serial
    refunded: list[Refund] = field(default_factory=list)
    double: list[Refund] = field(default_factory=list)
    missing: list[Refund] = field(default_factory=list)
    stuck: list[Refund] = field(default_factory=list)  # not finished, or waiting for a person
    other: list[Refund] = field(default_factory=list)  # ended otherwise, or never requested
    commands: list[CommandResult] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)

    @property
    def processing_settled(self) -> int:
        return sum(m.processing_first for m in self.money.values())

    @property
    def ok(self) -> bool:
        books = all(c.exit_code == 0 for c in self.commands) and all(
            self.checks.get(k) is True for k in ("ledger_balanced", "audit_ok", "money_conserved")
        )
        return books and not (self.double or self.missing or self.stuck or self.other)


async def _gateway_money(
    http: httpx.AsyncClient, stack: Stack, refund: Refund, money: Money
) -> None:
    urls = stack.sandboxes
    assert urls is not None
    base = {"alipay": urls.alipay.rsplit("/", 1)[0], "wechat": urls.wechat}.get(refund.channel)
    if base is None:
        return
    r = await http.get(f"{base}/sandbox/refunds", params={"transaction_id": refund.transaction_id})
    r.raise_for_status()
    for record in r.json()["refunds"]:
        if record["status"] == "CLOSED":
            continue
        money.gateway += int(record["amount"])
        money.gateway_refunds += 1
        if record.get("success_time"):
            took = _ts(record["success_time"]) - _ts(record["created_at"])
            money.processing_first |= took >= PROCESSING_SECONDS


def _ts(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


async def _balances(database_url: str, buyers: list[str]) -> dict[str, int]:
    """The buyers' balance accounts, read from the ledger."""
    from sqlalchemy import select

    from store import ledger
    from store.db import make_engine, make_session_factory
    from store.models import BalanceRow

    accounts = {ledger.buyer_balance(b): b for b in buyers}
    engine = make_engine(database_url)
    try:
        async with make_session_factory(engine)() as session:
            rows = await session.execute(
                select(BalanceRow.account, BalanceRow.amount).where(
                    BalanceRow.account.in_(list(accounts))
                )
            )
            return {accounts[account]: int(amount) for account, amount in rows.all()}
    finally:
        await engine.dispose()


async def _operator(stack: Stack, log_dir: Path, name: str, *args: str) -> CommandResult:
    """`refundctl <args>` run as an operator would, against the stack's database and peers."""
    log = LogFile(log_dir / f"{name}.log")
    child = ChildProcess(
        name,
        refundctl_argv(*args),
        env=settings_env(stack.settings),
        cwd=PROJECT_ROOT,
        output=log,
    )
    try:
        async with child:
            code = await child.wait()
    finally:
        log.close()
    lines = [ln for ln in child.tail(200) if ln.strip()]
    wanted = [ln for ln in lines if ln.startswith(("reconciliation", "audit", "AUDIT", "ALERT"))]
    return CommandResult("refundctl " + " ".join(args), code, " / ".join(wanted or lines[-2:]))


async def check(workload: Workload, stack: Stack, *, admin_key: str, log_dir: Path) -> Verdicts:
    verdicts = Verdicts()
    refunds = workload.refunds
    verdicts.money = {r.serial: Money() for r in refunds}
    sem = asyncio.Semaphore(20)

    async def gateway(refund: Refund) -> None:
        async with sem:
            await _gateway_money(workload.http, stack, refund, verdicts.money[refund.serial])

    await asyncio.gather(*(gateway(r) for r in refunds))
    balances = await _balances(stack.settings.database_url, [r.order["buyer_id"] for r in refunds])
    for refund in refunds:
        money = verdicts.money[refund.serial]
        money.balance = balances.get(refund.order["buyer_id"], 0)
        expected = int(refund.body.get("amount") or refund.order["amount"])
        if money.out > expected or money.gateway_refunds > 1:
            verdicts.double.append(refund)
        if refund.status == "refunded":
            verdicts.refunded.append(refund)
            if money.out < expected:
                verdicts.missing.append(refund)
        elif refund.refund_id is None or refund.done:
            verdicts.other.append(refund)
        else:
            verdicts.stuck.append(refund)
    # needs_attention / pending_review count as done for following, but nobody paid them yet.
    verdicts.stuck += [
        r for r in verdicts.other if r.status in ("needs_attention", "pending_review")
    ]
    verdicts.other = [r for r in verdicts.other if r not in verdicts.stuck]

    days = sorted(
        {datetime.fromtimestamp(r.posted_at, UTC).date() for r in refunds if r.posted_at}
        | {datetime.now(UTC).date()}
    )
    for day in days:
        verdicts.commands.append(
            await _operator(stack, log_dir, f"reconcile-{day}", "reconcile", f"--date={day}")
        )
    verdicts.commands.append(await _operator(stack, log_dir, "audit", "audit", "verify"))
    r = await workload.call(
        "GET",
        f"{stack.api_url}/v1/admin/checks",
        headers={"Authorization": f"Bearer {admin_key}"},
    )
    verdicts.checks = r.json() if r.status_code == 200 else {"error": f"HTTP {r.status_code}"}
    return verdicts
