"""`refundctl bench --incident N`: an incident of N orders (issue 11: refund everyone a bad
batch hurt) run at `--incident-rate`, and what it does to ordinary refunds at the same time.

1. N paid card-key orders whose keys all come from one supplier batch are written straight
   to the database (bench/direct.py), and `--n` ordinary orders recorded through the API.
2. The incident is declared through the API with the admin key, selecting that batch; the
   bench reads its dry run (every order must be "to refund") and confirms it as a second
   person, as the README walks it from the CLI.
3. Once the incident is at its pace, the `--n` ordinary refunds run exactly as in the refunds
   phase, whose figures from the same run are the baseline: issue 11 asks that their p99
   stay under 2x the p99 without the incident.
4. The bench waits for the incident's final report and checks each order was refunded exactly
   once: one refund row, `refunded`, one payout of its amount at the gateway sandbox, and the
   report's counts agreeing. Any mismatch is an error (exit 1); a p99 over 2x is a figure.

The incident is cancelled on the way out if it has not ended (an error, Ctrl-C, --timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bench.direct import database, say, write_in_batches
from bench.load import bench_order, measured_refunds, record_orders
from bench.stack import BenchError, BenchStack

if TYPE_CHECKING:
    import argparse

    import httpx
    from sqlalchemy.ext.asyncio import AsyncSession

DECLARED_BY = "bench-declarer"
CONFIRMED_BY = "bench-confirmer"  # a second person: the declarer may not confirm
POLL_SECONDS = 2.0
DRY_RUN_PAGE = 500
# The ordinary refunds start once the incident has run this long at its rate (its first
# batches are out and it is at its pace), so they measure the steady state, not the start.
SETTLE_SECONDS = 10.0
# The dry run asks the supplier about every key, 32 at a time; generous for slow machines.
DRY_RUN_SECONDS_PER_ORDER = 0.05
# After the last refund started: time for the last ones to be paid and the workflow's
# polling (every 30 s at most) to see that and write the report.
TAIL_SECONDS = 300.0
ENDED = ("completed", "cancelled", "refused")


def incident_order(serial: int, run_id: str, batch_id: str) -> dict[str, Any]:
    """The refunds phase's card-key order, its key from the bad batch. Without the buyer's
    device and address: the shop refunds these on its own initiative, no buyer files them."""
    order = bench_order(serial, f"{run_id}-inc")
    order["merchant_id"] = "M-INCIDENT"
    order["items"][0]["card_keys"][0]["batch_id"] = batch_id
    order.pop("client")
    return order


async def record_incident_orders(stack: BenchStack, n: int, run_id: str, batch_id: str) -> float:
    """Write the N orders the bad batch hurt; returns the seconds it took."""
    from domain.model import utcnow
    from domain.order import Order
    from store import orders

    started = time.monotonic()

    async def write(session: AsyncSession, serial: int) -> None:
        order = Order.model_validate(incident_order(serial, run_id, batch_id))
        await orders.record_order(session, order, now=utcnow())

    async with database(stack) as sessions:
        await write_in_batches(sessions, n, write, label="incident orders recorded")
    return time.monotonic() - started


class IncidentClient:
    """The incident's API, with the admin key; every unexpected answer is a BenchError."""

    def __init__(self, http: httpx.AsyncClient, stack: BenchStack, incident_id: str) -> None:
        self.http = http
        self.base = f"{stack.api_url}/v1/incidents"
        self.incident_id = incident_id
        self.headers = {"Authorization": f"Bearer {stack.admin_key}"}

    async def _call(self, method: str, path: str, ok: tuple[int, ...], **kw: Any) -> Any:
        r = await self.http.request(method, self.base + path, headers=self.headers, **kw)
        if r.status_code not in ok:
            raise BenchError(f"{method} /v1/incidents{path}: {r.status_code} {r.text[:300]}")
        return r.json()

    async def declare(self, batch_id: str, rate: float) -> dict[str, Any]:
        body = {
            "incident_id": self.incident_id,
            "declared_by": DECLARED_BY,
            "selection": {"batch_id": batch_id, "supplier": "sup-a"},
            "reason": "refundctl bench: a bad batch of card keys",
            "rate_per_second": rate,
            # Thousands of orders are above the default policy's incidents.max_orders and
            # max_amount: deliberate here, as an operator's override would be.
            "override_limits": True,
        }
        return await self._call("POST", "", (200, 202), json=body)

    async def view(self) -> dict[str, Any]:
        return await self._call("GET", f"/{self.incident_id}", (200,))

    async def act(self, action: str, **body: Any) -> dict[str, Any]:
        return await self._call("POST", f"/{self.incident_id}/{action}", (200, 202), json=body)

    async def report(self) -> dict[str, Any]:
        return await self._call("GET", f"/{self.incident_id}/report", (200,))

    async def dry_run(self) -> list[dict[str, Any]]:
        """Every line of the dry run, a page at a time."""
        lines: list[dict[str, Any]] = []
        after: int | None = 0
        while after is not None:
            page = await self._call(
                "GET",
                f"/{self.incident_id}/orders",
                (200,),
                params={"after": after, "limit": DRY_RUN_PAGE},
            )
            lines += page["orders"]
            after = page["next_after"]
        return lines

    async def wait(self, until: tuple[str, ...], seconds: float, what: str) -> dict[str, Any]:
        """Poll the incident until its state is one of `until`."""
        deadline = time.monotonic() + seconds
        while True:
            view = await self.view()
            if view["state"] in until:
                return view
            if view["state"] in ENDED or time.monotonic() > deadline:
                raise BenchError(
                    f"incident {self.incident_id} is {view['state']}, not {'/'.join(until)}, "
                    f"after {seconds:.0f}s waiting for {what}: {view.get('message')}"
                )
            await asyncio.sleep(POLL_SECONDS)


async def with_incident(
    args: argparse.Namespace,
    stack: BenchStack,
    http: httpx.AsyncClient,
    run_id: str,
    baseline: dict[str, Any],
) -> dict[str, Any]:
    """The whole `--incident` phase; `baseline` is the refunds phase's summary."""
    n, rate = args.incident, args.incident_rate
    batch_id = f"B-bench-{run_id}"
    incident = IncidentClient(http, stack, f"INC-bench-{run_id}")
    say(f"incident: {n} orders of batch {batch_id} into the database ...")
    setup = await record_incident_orders(stack, n, run_id, batch_id)
    ordinary = [bench_order(i, run_id + "c") for i in range(args.n)]
    await record_orders(http, stack, ordinary, args.concurrency)
    ended = False
    try:
        t_declare = time.monotonic()
        await incident.declare(batch_id, rate)
        dry = await incident.wait(
            ("awaiting_confirmation",), 60 + n * DRY_RUN_SECONDS_PER_ORDER, "its dry run"
        )
        dry_run_seconds = time.monotonic() - t_declare
        lines = await incident.dry_run()
        summary = dry["summary"] or {}
        skipped = [line for line in lines if line["skip_reason"]]
        say(f"  dry run in {dry_run_seconds:.0f}s: {dry['message']}")
        if len(lines) != n or summary.get("to_refund") != n or skipped:
            raise BenchError(
                f"the dry run lists {len(lines)} orders, {summary.get('to_refund')} to refund, "
                f"{len(skipped)} skipped; expected all {n} to refund"
            )

        say(f"incident: confirmed by {CONFIRMED_BY}, {rate:g}/s ...")
        confirmed_at = datetime.now(UTC)
        t_confirm = time.monotonic()
        await incident.act("confirm", by=CONFIRMED_BY)
        await asyncio.sleep(min(SETTLE_SECONDS, n / rate / 4))
        before = await incident.view()
        say(f"refunds during the incident: {args.n} x{args.concurrency} ...")
        during, _, cpu = await measured_refunds(http, stack, ordinary, args, "refund-incident")
        after = await incident.view()
        say(f"  {during.rate:.1f}/s, {len(during.errors)} errors; incident {after['state']}")

        final = await incident.wait(("completed",), n / rate * 2 + TAIL_SECONDS, "its end")
        ended = True
        final_seconds = time.monotonic() - t_confirm
        say(f"  incident {final['message']} ({final_seconds:.0f}s after the confirmation)")
        report = await incident.report()
        found = await refunds_found(stack, http, incident.incident_id, run_id, confirmed_at)
    finally:
        if not ended:
            await cancel_if_open(incident)

    d = during.summary()
    ratio = d["p99_ms"] / baseline["p99_ms"] if baseline["p99_ms"] else float("nan")
    return {
        "orders": n,
        "setup_seconds": round(setup, 1),
        "dry_run_seconds": round(dry_run_seconds, 1),
        "rate_configured": final["rate_per_second"],
        "rate_achieved": round(found["started"] / max(found["start_span"], 1e-9), 2),
        "start_seconds": round(found["start_span"], 1),
        "to_last_money_seconds": round(
            (found["last_money"] - confirmed_at).total_seconds() if found["last_money"] else 0, 1
        ),
        "to_final_report_seconds": round(final_seconds, 1),
        "report": {k: report[k] for k in ("matched", "started", "refunded", "failed")}
        | {
            "skipped": sum(report["skipped"].values()),
            "waiting_for_a_person": report["waiting_for_a_person"],
            "refunded_amounts": report["refunded_amounts"],
        },
        # How much of the ordinary refunds' phase the incident was starting refunds in.
        "started_during": [before["progress"]["started"], after["progress"]["started"]],
        "state_after": after["state"],
        "refund": d,
        "cpu_seconds": cpu,
        "p99_ratio": round(ratio, 2),
        "p99_under_2x": ratio < 2.0,
        "errors": during.errors + check(report, found, run_id, n),
    }


async def cancel_if_open(incident: IncidentClient) -> None:
    """Best effort on the way out, also when Ctrl-C cancelled the run: stop new refunds."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(15):
            view = await incident.view()
            if view["state"] not in ENDED:
                await incident.act("cancel", by=CONFIRMED_BY, note="refundctl bench ended")
                say(f"incident {incident.incident_id} cancelled (it was {view['state']})")


async def refunds_found(
    stack: BenchStack,
    http: httpx.AsyncClient,
    incident_id: str,
    run_id: str,
    confirmed_at: datetime,
) -> dict[str, Any]:
    """What the database and the gateway sandboxes hold for the incident's orders; `start_span`
    is confirm -> the last refund stored (its intake time), the achieved rate's denominator."""
    from sqlalchemy import select

    from store.models import RefundRow

    sample = incident_order(0, run_id, "-")
    prefix = sample["order_id"].removesuffix("0")
    async with database(stack) as sessions, sessions() as session:
        rows = (
            await session.execute(
                select(
                    RefundRow.order_id,
                    RefundRow.status,
                    RefundRow.incident_id,
                    RefundRow.created_at,
                ).where(RefundRow.order_id.like(prefix + "%"))
            )
        ).all()
    ours = [r for r in rows if r.incident_id == incident_id]
    last_created = max((r.created_at for r in ours), default=confirmed_at)
    payouts = await gateway_payouts(
        stack, http, sample["payments"][0]["transaction_id"].removesuffix("0")
    )
    return {
        "started": len(ours),
        "start_span": (last_created - confirmed_at).total_seconds(),
        "refunds_per_order": Counter(r.order_id for r in rows),
        "refunded": Counter(r.order_id for r in ours if r.status.value == "refunded"),
        "payouts": payouts["count"],
        "paid": payouts["amount"],
        "last_money": payouts["last"],
    }


async def gateway_payouts(
    stack: BenchStack, http: httpx.AsyncClient, prefix: str
) -> dict[str, Any]:
    """Refunds the Alipay and WeChat Pay sandboxes hold for transactions starting `prefix`:
    per transaction how many and how much, and when the last one succeeded."""
    settings = stack.settings
    count: Counter[str] = Counter()
    amount: Counter[str] = Counter()
    last: datetime | None = None
    for base in (settings.alipay_url.rsplit("/", 1)[0], settings.wechat_url):
        r = await http.get(f"{base}/sandbox/refunds")
        r.raise_for_status()
        for record in r.json()["refunds"]:
            if not record["transaction_id"].startswith(prefix) or record["status"] == "CLOSED":
                continue
            count[record["transaction_id"]] += 1
            amount[record["transaction_id"]] += int(record["amount"])
            if record.get("success_time"):
                at = datetime.fromisoformat(record["success_time"].replace("Z", "+00:00"))
                last = at if last is None else max(last, at)
    return {"count": count, "amount": amount, "last": last}


def check(report: dict[str, Any], found: dict[str, Any], run_id: str, n: int) -> list[str]:
    """Every incident order refunded exactly once, and the report saying so."""
    errors: list[str] = []
    per_order, refunded = found["refunds_per_order"], found["refunded"]
    payouts, paid = found["payouts"], found["paid"]
    for serial in range(n):
        order = incident_order(serial, run_id, "-")
        order_id, tx = order["order_id"], order["payments"][0]["transaction_id"]
        if per_order[order_id] != 1 or refunded[order_id] != 1:
            errors.append(
                f"{order_id}: {per_order[order_id]} refunds, {refunded[order_id]} refunded"
            )
        if payouts[tx] != 1 or paid[tx] != order["amount"]:
            errors.append(f"{order_id}: {payouts[tx]} gateway payouts, {paid[tx]} paid in all")
    expected = {"matched": n, "started": n, "refunded": n, "failed": 0, "skipped": 0}
    for key, want in expected.items():
        got = report[key] if key != "skipped" else sum(report["skipped"].values())
        if got != want:
            errors.append(f"the incident's report says {key} {got}, expected {want}")
    amounts = {"CNY": n * incident_order(0, run_id, "-")["amount"]}
    if report["refunded_amounts"] != amounts:
        errors.append(f"the report's refunded amounts {report['refunded_amounts']}, not {amounts}")
    return errors
