"""`refundctl reconcile --date D`: the day's gateway payouts against the gateways' records.
Prints every line, raises a supervisor alert per mismatch or missing item, exits 1 if any;
and every supplier's claims for the keys it confirmed invalid (open, recovered, written off)."""

from __future__ import annotations

import argparse
import asyncio
from datetime import date

import httpx

from config.settings import Settings, get_settings
from domain.wording import yuan
from ops.reconcile import Report, raise_alerts, reconcile
from peers.from_settings import payout_gateways
from store.db import make_engine, make_session_factory
from store.supplier_claims import SupplierClaims


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
    for line in lines(report):
        print(line)
    return 0 if report.ok else 1


def lines(report: Report) -> list[str]:
    """What `refundctl reconcile` prints: every payout, the day's summary, every supplier's
    claims, and the alerts."""
    out = []
    for ln in report.lines:
        theirs = f"{ln.theirs} {ln.their_amount}" if ln.their_amount is not None else ln.theirs
        out.append(
            f"{ln.verdict:<11} {ln.channel:<7} {ln.out_refund_no:<28} ours {ln.ours} {ln.our_amount}"
            f"  gateway {theirs}  {ln.note}"
        )
    summary = ", ".join(
        f"{v} {report.count(v)}" for v in ("match", "mismatch", "missing", "pending", "unreachable")
    )
    out.append(f"reconciliation {report.day}: {len(report.lines)} payouts: {summary}")
    for breach in report.over_refunds:
        out.append(f"over_refund {breach.describe()}")
    out.extend(claim_lines(report.claims))
    if report.problems:
        out.append(
            f"ALERT: {len(report.problems)} payout(s) disagree with the gateway; supervisors notified"
        )
    if report.over_refunds:
        out.append(
            f"ALERT: {len(report.over_refunds)} order(s) got back more than they paid; "
            "supervisors notified"
        )
    return out


def claim_lines(claims: list[SupplierClaims]) -> list[str]:
    """Per supplier: claims open (ours or at the supplier), recovered (what it credited) and
    written off (refused or past the deadline), each a count and an amount."""
    out = []
    for s in claims:
        line = (
            f"claims {s.supplier:<16} open {s.open.count} ({yuan(s.open.amount)})"
            f"  recovered {s.recovered.count} ({yuan(s.recovered.amount)})"
            f"  written off {s.written_off.count} ({yuan(s.written_off.amount)})"
        )
        if s.duplicate_credits:
            line += f"  duplicate credits {s.duplicate_credits} (not booked)"
        out.append(line)
    return out
