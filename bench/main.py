"""`refundctl bench`: automatic refunds per second and their latency, next to an empty workflow.

It starts a throwaway stack of its own, all on 127.0.0.1 and free ports: the Temporal dev server
of temporal-dev.yml on a temporary database file, a fresh SQLite database (or `--database-url`),
the sandbox peers, the refund worker and the API, and an EmptyWorkflow worker. Then, on the same
server and in the same run:

1. N EmptyWorkflow executions, C at a time: start -> result latency, workflows/second.
2. N automatic card-key refunds through the HTTP API, C at a time: POST /v1/refunds, then
   GET /v1/refunds/{id} until `refunded`: POST -> refunded latency, refunds/second.
3. A table of both, their ratio, and what one refund costs in workflow tasks, activities and
   local activities (from the workflow histories), with where the time goes.
4. Optionally the refunds again with `--backlog N` refunds waiting for review
   (bench/backlog.py) and during an incident of `--incident N` orders (bench/incident.py).

By default the services run as subprocesses (`python -m refundctl.cli worker|api|sandbox`,
`python -m bench.empty`), as in production: each has its own interpreter and GIL, and the load
generator does not steal their CPU. `--mode inprocess` runs them all in this process instead,
as the test suite does, to compare. Everything stops by itself: each phase has a deadline and
`--timeout` bounds the whole run. See bench/README.md for how to read the figures.

The stack is `bench/stack.py` (started by `refundctl.stack`, as `refundctl dev` and the tests
start theirs), the load `bench/load.py`, the history analysis `bench/history.py` and the
table `bench/report.py`; this module runs the phases in order.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.history import fetch_shape
from bench.load import (
    CpuMeter,
    bench_empty,
    bench_order,
    bench_refunds,
    measured_refunds,
    record_orders,
)
from bench.report import build_report, json_ready, render
from bench.stack import BenchError, redact, running_stack

PLATFORM_KEY_PREFIX = "pk_bench_"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=200, help="measured executions (default 200)")
    parser.add_argument(
        "--concurrency", type=int, default=20, help="executions in flight at once (default 20)"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=10,
        help="unmeasured executions of each kind before measuring (default 10)",
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="database for the API and worker (default: a fresh SQLite file in a temp dir); "
        "migrated, then written to. Must be on this host.",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="run the stack in this directory and keep it (database, every process's log) "
        "instead of a temporary one removed at the end",
    )
    parser.add_argument(
        "--mode",
        choices=("subprocess", "inprocess"),
        default="subprocess",
        help="run worker, API and sandboxes as subprocesses (default, like production) or in "
        "this process (like the test suite)",
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=0.5,
        help="seconds between GET /v1/refunds/{id} while waiting for `refunded` (default 0.5, "
        "the cadence of the API's own SSE stream; every GET takes SQLite's write lock, so "
        "faster polling slows the refunds it watches)",
    )
    parser.add_argument(
        "--history-sample",
        type=int,
        default=50,
        help="refund histories analysed for the time breakdown (default 50)",
    )
    parser.add_argument(
        "--worker-processes",
        type=int,
        default=min(2, len(os.sched_getaffinity(0))),
        help="`refundctl worker --processes N` for the refund worker (default: 2, or 1 on a "
        "single core); its CPU is summed over them",
    )
    parser.add_argument(
        "--backlog",
        type=int,
        default=0,
        help="after the refunds, put this many refunds into pending_review (their workflows "
        "waiting on their review timers), then measure the refunds again, the review queue's "
        "reads and the worker's memory; the backlog is terminated at the end (default 0: off)",
    )
    parser.add_argument(
        "--incident",
        type=int,
        default=0,
        help="then declare an incident of this many orders of one bad card-key batch through "
        "the API, read its dry run, confirm it as a second person, and measure the refunds "
        "again while it runs; report its rate, total time and the refunds' p99 against the "
        "refunds phase's (bench/incident.py; default 0: off)",
    )
    parser.add_argument(
        "--incident-rate",
        type=float,
        default=None,
        help="the incident's refunds started per second (default: the policy's default, 5; "
        "it allows up to 50)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="hard limit for the whole run in seconds (default 1200, plus twice the time "
        "--incident takes at its rate)",
    )


# --- main ----------------------------------------------------------------------------------------


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    import httpx
    from temporalio.client import Client

    run_id = secrets.token_hex(4)
    api_key = PLATFORM_KEY_PREFIX + secrets.token_hex(12)
    if args.keep is not None:  # the stack's files and logs, left for a look afterwards
        args.keep.mkdir(parents=True, exist_ok=True)
    place = (
        contextlib.nullcontext(str(args.keep))
        if args.keep is not None
        else tempfile.TemporaryDirectory(prefix="kami-bench-")
    )
    with place as tmp_name:
        tmp = Path(tmp_name)
        _say(f"starting the stack ({args.mode}) in {tmp} ...")
        t_setup = time.monotonic()
        async with running_stack(args, tmp, api_key) as stack:
            _say(
                f"stack up in {time.monotonic() - t_setup:.1f}s: temporal {stack.temporal_address}"
                f", api {stack.api_url}, database {redact(stack.database_url)}"
            )
            client = await Client.connect(stack.temporal_address)
            meter = CpuMeter(stack.pids)

            _say(f"empty workflows: {args.warmup} warm-up, then {args.n} x{args.concurrency} ...")
            meter.start()
            empty, empty_id = await bench_empty(
                client, args.n, args.concurrency, args.warmup, run_id
            )
            cpu_empty = meter.stop()
            _say(f"  {empty.rate:.1f}/s, {len(empty.errors)} errors")

            orders = [bench_order(i, run_id) for i in range(args.warmup + args.n)]
            limits = httpx.Limits(max_connections=args.concurrency * 2 + 10)
            async with httpx.AsyncClient(timeout=30.0, limits=limits) as http:
                _say(f"recording {len(orders)} orders ...")
                await record_orders(http, stack, orders, args.concurrency)
                if args.warmup:
                    _say(f"refunds: {args.warmup} warm-up ...")
                    warm, _ = await bench_refunds(
                        http,
                        stack,
                        orders[: args.warmup],
                        args.concurrency,
                        args.poll_interval,
                        "warmup",
                    )
                    if warm.errors:
                        raise BenchError("warm-up refunds failed: " + "; ".join(warm.errors[:3]))
                _say(f"refunds: {args.n} x{args.concurrency} ...")
                refund, traces, cpu_refund = await measured_refunds(
                    http, stack, orders[args.warmup :], args, "refund"
                )
                _say(f"  {refund.rate:.1f}/s, {len(refund.errors)} errors")

                backlog = None
                if args.backlog:
                    backlog = await with_backlog(args, stack, client, http, run_id)
                incident = None
                if args.incident:
                    from bench.incident import with_incident

                    incident = await with_incident(args, stack, http, run_id, refund.summary())

            if not traces:
                raise BenchError(
                    "no refund reached `refunded`: " + "; ".join(refund.errors[:3] or ["?"])
                )
            _say(f"reading {min(len(traces), args.history_sample)} refund histories ...")
            from domain.refund import workflow_id_for

            sample = traces[: max(1, args.history_sample)]
            shapes = await asyncio.gather(
                *(fetch_shape(client, workflow_id_for(t.refund_id)) for t in sample)
            )
            empty_shape = await fetch_shape(client, empty_id)
            report = build_report(
                args, stack, empty, refund, traces, list(shapes), empty_shape, cpu_empty, cpu_refund
            )
            report["backlog"] = backlog
            report["incident"] = incident
    return report


async def with_backlog(
    args: argparse.Namespace, stack: Any, client: Any, http: Any, run_id: str
) -> dict[str, Any]:
    """The refunds again, with `--backlog` refunds waiting for review (bench/backlog.py)."""
    from bench.backlog import build_backlog, read_review_queue, rss_megabytes, terminate_backlog

    worker_pid = stack.pids.get("worker")
    rss_before = rss_megabytes(worker_pid)
    _say(f"backlog: {args.backlog} refunds into pending_review ...")
    try:
        took = await build_backlog(stack, client, args.backlog, run_id)
        _say(f"  backlog ready in {took:.0f}s")
        orders = [bench_order(i, run_id + "b") for i in range(args.n)]
        await record_orders(http, stack, orders, args.concurrency)
        _say(f"refunds with the backlog: {args.n} x{args.concurrency} ...")
        again, _, cpu = await measured_refunds(http, stack, orders, args, "refund-backlog")
        _say(f"  {again.rate:.1f}/s, {len(again.errors)} errors")
        reads = await read_review_queue(http, stack, 200)
        return {
            "pending": args.backlog,
            "setup_seconds": round(took, 1),
            "refund": again.summary(),
            "reviews_read": reads.summary(),
            "worker_rss_mb_before": rss_before,
            "worker_rss_mb": rss_megabytes(worker_pid),
            "cpu_seconds": cpu,
            "errors": again.errors + reads.errors,
        }
    finally:
        await terminate_backlog(client, run_id)


def _say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    if args.n < 1 or args.concurrency < 1 or args.warmup < 0 or args.poll_interval <= 0:
        print("refundctl bench: --n and --concurrency must be >= 1, --warmup >= 0", file=sys.stderr)
        return 2
    from domain.policy import IncidentPolicy

    policy = IncidentPolicy()  # the bench's stack runs the default policy
    top_rate = policy.max_rate_per_second
    if args.incident_rate is None:
        args.incident_rate = policy.default_rate_per_second
    if args.incident < 0 or not 0 < args.incident_rate <= top_rate:
        print(
            f"refundctl bench: --incident must be >= 0, --incident-rate in (0, {top_rate:g}]",
            file=sys.stderr,
        )
        return 2
    if args.timeout is None:
        args.timeout = 1200.0 + 2 * args.incident / args.incident_rate
    from refundctl.devserver import DevServerError
    from refundctl.procs import ProcessExited
    from refundctl.stack import ServiceStopped, run_once_until_signalled

    async def timed_bench() -> dict[str, Any]:
        async with asyncio.timeout(args.timeout):
            return await bench(args)

    try:
        # Ctrl-C / SIGTERM cancel the bench, whose `async with` blocks then stop everything.
        report = run_once_until_signalled(
            timed_bench, on_interrupt=lambda: _say("interrupted; stopping the stack ...")
        )
    except TimeoutError:
        print(
            f"refundctl bench: did not finish within --timeout {args.timeout:.0f}s", file=sys.stderr
        )
        return 1
    except (BenchError, DevServerError, ProcessExited, ServiceStopped) as exc:
        print(f"refundctl bench: {exc}", file=sys.stderr)
        return 1
    if report is None:
        return 130
    print(render(report))
    if args.json is not None:
        args.json.write_text(json.dumps(json_ready(report), indent=2) + "\n", encoding="utf-8")
        _say(f"figures written to {args.json}")
    failed = report["empty"]["errors"] + report["refund"]["errors"]
    for phase in ("backlog", "incident"):
        errors = (report.get(phase) or {}).get("errors", [])
        failed += len(errors)
        for error in errors[:10]:
            print(f"refundctl bench: with the {phase}: {error}", file=sys.stderr)
    return 1 if failed else 0
