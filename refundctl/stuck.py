"""`refundctl stuck`: the refunds past their stage's limit, each with why and the one command
that moves it on (README, "Stuck refunds: the runbook"). `--start-missing` starts the
workflows of refunds stored but never started. Exit 0 when nothing is stuck, 1 otherwise."""

from __future__ import annotations

import argparse
import asyncio
import sys

from config.settings import Settings, get_settings
from config.temporal import connect
from ops.stuck import StuckReport, find_stuck, start_missing
from store.db import make_engine, make_read_session_factory, make_session_factory
from store.figures import stage_limits


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--limit", type=int, default=100, help="list at most this many (100)")
    parser.add_argument(
        "--refunding-minutes",
        type=float,
        default=None,
        help="refunding longer than this is stuck (STUCK_REFUNDING_MINUTES, 30)",
    )
    parser.add_argument(
        "--stage-minutes",
        type=float,
        default=None,
        help="submitted, checking or approved longer than this (STUCK_STAGE_MINUTES, 10)",
    )
    parser.add_argument(
        "--unstarted-seconds",
        type=float,
        default=None,
        help="stored this long with no workflow (STUCK_UNSTARTED_SECONDS, 120)",
    )
    parser.add_argument(
        "--start-missing",
        action="store_true",
        help="start the workflow of every refund stored but never started, then list",
    )


async def stuck(settings: Settings, args: argparse.Namespace) -> StuckReport:
    overrides = {
        "stuck_refunding_minutes": args.refunding_minutes,
        "stuck_stage_minutes": args.stage_minutes,
        "stuck_unstarted_seconds": args.unstarted_seconds,
    }
    limits = stage_limits(
        settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    )
    temporal = await connect(settings)
    engine = make_engine(settings.database_url)
    try:
        if args.start_missing:
            started = await start_missing(
                make_session_factory(engine),
                temporal,
                task_queue=settings.task_queue,
                limits=limits,
            )
            for refund_id in started:
                print(f"started the workflow of {refund_id}", file=sys.stderr)
        return await find_stuck(
            make_read_session_factory(engine), temporal, limits=limits, limit=args.limit
        )
    finally:
        await engine.dispose()


def render(report: StuckReport) -> str:
    if not report.refunds:
        return f"no stuck refunds ({report.checked_at.isoformat()})"
    lines = [f"{len(report.refunds)} stuck refund(s) at {report.checked_at.isoformat()}:"]
    for s in report.refunds:
        since = s.since.isoformat() if s.since else "?"
        lines += [
            "",
            f"{s.refund_id or s.workflow_id}  {s.kind}  ({s.status or 'no stored refund'}, "
            f"last moved {since})",
            f"  why: {s.why}",
            f"  fix: {s.fix}",
        ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    report = asyncio.run(stuck(get_settings(), args))
    print(report.model_dump_json(indent=2) if args.json else render(report))
    return 1 if report.refunds else 0
