"""`refundctl reconcile --date D`: the day's gateway payouts against the gateways' records.
Prints every line, raises a supervisor alert per mismatch or missing item, exits 1 if any."""

from __future__ import annotations

import argparse
import asyncio
from datetime import date

import httpx

from config.settings import Settings, get_settings
from ops.reconcile import Report, raise_alerts, reconcile
from peers.from_settings import payout_gateways
from store.db import make_engine, make_session_factory


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--date", type=date.fromisoformat, default=date.today(), help="YYYY-MM-DD (UTC)"
    )
    parser.add_argument("--database-url", default=None)


async def reconcile_day(settings: Settings, day: date) -> Report:
    engine = make_engine(settings.database_url)
    try:
        async with httpx.AsyncClient(timeout=settings.http_timeout_seconds) as http:
            sessions = make_session_factory(engine)
            async with sessions() as session:
                report = await reconcile(session, day, gateways=payout_gateways(settings, http))
            async with sessions.begin() as session:
                await raise_alerts(session, report)
            return report
    finally:
        await engine.dispose()


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    if args.database_url:
        settings = settings.model_copy(update={"database_url": args.database_url})
    report = asyncio.run(reconcile_day(settings, args.date))
    for ln in report.lines:
        theirs = f"{ln.theirs} {ln.their_amount}" if ln.their_amount is not None else ln.theirs
        print(
            f"{ln.verdict:<11} {ln.channel:<7} {ln.out_refund_no:<28} ours {ln.ours} {ln.our_amount}"
            f"  gateway {theirs}  {ln.note}"
        )
    summary = ", ".join(
        f"{v} {report.count(v)}" for v in ("match", "mismatch", "missing", "pending", "unreachable")
    )
    print(f"reconciliation {report.day}: {len(report.lines)} payouts: {summary}")
    for breach in report.over_refunds:
        print(f"over_refund {breach.describe()}")
    if report.problems:
        print(
            f"ALERT: {len(report.problems)} payout(s) disagree with the gateway; supervisors notified"
        )
    if report.over_refunds:
        print(
            f"ALERT: {len(report.over_refunds)} order(s) got back more than they paid; "
            "supervisors notified"
        )
    return 0 if report.ok else 1
