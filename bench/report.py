"""The bench's figures: collected into one report (also written as JSON) and printed as a table."""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.history import HistoryShape, time_breakdown
from bench.load import Batch, RefundTrace, percentile
from bench.stack import EMPTY_TASK_QUEUE, BenchStack, redact


def machine() -> dict[str, Any]:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "usable_cores": affinity,
        "cpu": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def _fmt_row(name: str, s: dict[str, Any]) -> str:
    return (
        f"  {name:<34} {s['count']:>6} {s['errors']:>4} {s['rate_per_second']:>9.1f} "
        f"{s['p50_ms']:>8.0f} {s['p95_ms']:>8.0f} {s['p99_ms']:>8.0f} {s['max_ms']:>8.0f}"
    )


def _dist_row(name: str, values_s: Sequence[float]) -> str:
    ms = [v * 1000 for v in values_s]
    if not ms:
        return f"  {name:<34} {'-':>6}"
    return (
        f"  {name:<34} {len(ms):>6} {'':>4} {'':>9} {percentile(ms, 50):>8.0f} "
        f"{percentile(ms, 95):>8.0f} {percentile(ms, 99):>8.0f} {max(ms):>8.0f}"
    )


def render_backlog(report: dict[str, Any]) -> list[str]:
    b = report.get("backlog")
    if not b:
        return []
    base, again = report["refund"], b["refund"]
    ratio = again["rate_per_second"] / base["rate_per_second"] if base["rate_per_second"] else 0
    n = max(again["count"], 1)
    cpu = b["cpu_seconds"]
    return [
        "",
        f"  with {b['pending']} refunds pending review (set up in {b['setup_seconds']:.0f}s):",
        _fmt_row("refund (POST->GET sees refunded)", again),
        _fmt_row("GET /v1/reviews?state=pending", b["reviews_read"]),
        f"  refunds with the backlog / without: rate x{ratio:.2f}",
        f"  worker RSS {b['worker_rss_mb_before'] or 0:.0f} MiB before the backlog, "
        f"{b['worker_rss_mb'] or 0:.0f} MiB with it; CPU per refund with it: "
        + ", ".join(f"{k} {v * 1000 / n:.0f} ms" for k, v in cpu.items() if v is not None),
    ]


def render_incident(report: dict[str, Any]) -> list[str]:
    i = report.get("incident")
    if not i:
        return []
    rep, base, during = i["report"], report["refund"], i["refund"]
    first, last = i["started_during"]
    verdict = "under" if i["p99_under_2x"] else "NOT under"
    return [
        "",
        f"  an incident of {i['orders']} orders (recorded in {i['setup_seconds']:.0f}s, "
        f"dry run {i['dry_run_seconds']:.0f}s):",
        f"    rate {i['rate_configured']:g}/s configured, {i['rate_achieved']:.2f}/s achieved "
        f"(all started in {i['start_seconds']:.0f}s)",
        f"    confirm -> last money arrived {i['to_last_money_seconds']:.0f}s, "
        f"-> final report {i['to_final_report_seconds']:.0f}s",
        f"    report: {rep['refunded']} refunded, {rep['failed']} failed, {rep['skipped']} "
        f"skipped, {rep['waiting_for_a_person']} waiting for a person "
        f"(matched {rep['matched']}, started {rep['started']})",
        f"  {'':<34} {'count':>6} {'err':>4} {'per sec':>9} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8} {'max ms':>8}",
        _fmt_row("refund, alone (above)", base),
        _fmt_row("refund, during the incident", during),
        f"  p99 during / alone x{i['p99_ratio']:.2f}: {verdict} 2x "
        f"(the incident started refunds {first} -> {last} meanwhile, {i['state_after']} after)",
    ]


def render(report: dict[str, Any]) -> str:
    m, cfg = report["machine"], report["settings"]
    empty, refund = report["empty"], report["refund"]
    out = [
        "",
        "=" * 96,
        "kami-refunds bench",
        f"  machine   {m['cores']} cores ({m['usable_cores']} usable) {m['cpu']}",
        f"            {m['platform']}, Python {m['python']}",
        f"  temporal  {cfg['temporal']}",
        f"  settings  n={cfg['n']} concurrency={cfg['concurrency']} warmup={cfg['warmup']} "
        f"mode={cfg['mode']} poll={cfg['poll_interval']}s "
        f"worker-processes={cfg.get('worker_processes', 1)}",
        f"            database {cfg['database']}",
        "",
        f"  {'':<34} {'count':>6} {'err':>4} {'per sec':>9} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8} {'max ms':>8}",
        _fmt_row("empty workflow (start->result)", empty),
        _fmt_row("refund (POST->GET sees refunded)", refund),
    ]
    out.append(_dist_row("  of which POST /v1/refunds ->202", report["refund_post_seconds"]))
    out.append(_dist_row("  server: submitted->money_arrived", report["refund_server_seconds"]))
    out.append(_dist_row("  workflow: started->completed", report["refund_workflow_seconds"]))
    r = report["ratio"]
    out += [
        "",
        f"  refund / empty: rate x{r['rate']:.3f} (empty is {1 / r['rate']:.1f}x faster), "
        f"p50 x{r['p50']:.1f}",
        "",
    ]
    shape, eshape = report["refund_history"], report["empty_history"]
    la = ", ".join(f"{k} x{v}" for k, v in sorted(shape["local_activities"].items()))
    act = ", ".join(f"{k} x{v}" for k, v in sorted(shape["activities"].items()))
    out += [
        f"  one refund ({shape['workflow_id']}): {shape['events']} history events, "
        f"{shape['workflow_tasks']} workflow tasks,",
        f"    {sum(shape['activities'].values())} activities ({act}),",
        f"    {sum(shape['local_activities'].values())} local activities ({la})",
        f"  one empty workflow: {eshape['events']} history events, "
        f"{eshape['workflow_tasks']} workflow task, {sum(eshape['activities'].values())} "
        "activities",
        "  refund events by type (mean over the sample): "
        + ", ".join(
            f"{k} {v:g}"
            for k, v in sorted(report["events_per_refund_mean"].items(), key=lambda x: -x[1])
        ),
        *(
            f"  workflow task failures in the sample: {n} x {why}"
            for why, n in report["workflow_task_failures"].items()
        ),
        "",
        f"  where a refund's workflow time goes (mean over {report['history_sample']} "
        f"histories, workflow started->completed {report['history_mean_ms']:.0f} ms):",
        f"    {'span':<36} {'n/wf':>5} {'ms/wf':>8} {'share':>6} {'p50 each':>9} {'p95 each':>9}",
    ]
    for row in report["breakdown"]:
        share = row["share_of_workflow"]
        out.append(
            f"    {row['span']:<36} {row['per_workflow']:>5} {row['ms_per_workflow']:>8.1f} "
            f"{(share * 100 if share is not None else float('nan')):>5.0f}% "
            f"{row['p50_ms_each']:>9.1f} {row['p95_ms_each']:>9.1f}"
        )
    out += ["", "  CPU seconds per process during the measured phases:"]
    out.append(f"    {'process':<24} {'empty':>8} {'refunds':>8} {'refunds, % of 1 core':>22}")
    cpu_e, cpu_r = report["cpu_empty"], report["cpu_refund"]
    wall_r = refund["wall_seconds"]
    for name in cpu_r:
        out.append(
            f"    {name:<24} {cpu_e.get(name, float('nan')):>8.1f} {cpu_r[name]:>8.1f} "
            f"{cpu_r[name] / wall_r * 100:>21.0f}%"
        )
    n_refund, n_empty = max(refund["count"], 1), max(empty["count"], 1)
    worker_empty = cpu_e.get("empty-worker", float("nan"))
    out += [
        "",
        f"  cost per execution:{'refund':>22} {'empty workflow':>16}",
        f"    {'worker CPU ms':<26} {cpu_r.get('worker', float('nan')) * 1000 / n_refund:>10.1f} "
        f"{worker_empty * 1000 / n_empty:>16.1f}",
        f"    {'Temporal server CPU ms':<26} "
        f"{cpu_r.get('temporal', float('nan')) * 1000 / n_refund:>10.1f} "
        f"{cpu_e.get('temporal', float('nan')) * 1000 / n_empty:>16.1f}",
        f"    {'API CPU ms':<26} {cpu_r.get('api', float('nan')) * 1000 / n_refund:>10.1f} "
        f"{'-':>16}",
        f"    {'history events':<26} {shape['events']:>10} {eshape['events']:>16}",
    ]
    out += render_backlog(report)
    out += render_incident(report)
    bad = {k: v for k, v in report["log_problems"].items() if v["lines"]}
    if bad:
        out += ["", "  log lines that look like errors:"]
        for name, v in bad.items():
            out.append(f"    {name}: {v['lines']}  e.g. {v['first'][0] if v['first'] else ''}")
    if empty["first_errors"] or refund["first_errors"]:
        out += ["", "  first errors:"]
        out += [f"    {e}" for e in empty["first_errors"] + refund["first_errors"]]
    out += ["=" * 96, ""]
    return "\n".join(out)


def build_report(
    args: argparse.Namespace,
    stack: BenchStack,
    empty: Batch,
    refund: Batch,
    traces: list[RefundTrace],
    shapes: list[HistoryShape],
    empty_shape: HistoryShape,
    cpu_empty: dict[str, float],
    cpu_refund: dict[str, float],
) -> dict[str, Any]:
    e, r = empty.summary(), refund.summary()
    db = "sqlite (fresh temp file)" if not args.database_url else redact(stack.database_url)
    k = max(len(shapes), 1)

    def round_all(d: dict[str, float]) -> dict[str, float]:
        return {name: round(v, 2) for name, v in d.items()}

    shape = asdict(shapes[0])
    shape.pop("spans")
    eshape = asdict(empty_shape)
    eshape.pop("spans")
    return {
        "machine": machine(),
        "settings": {
            "n": args.n,
            "concurrency": args.concurrency,
            "warmup": args.warmup,
            "mode": stack.mode,
            "poll_interval": args.poll_interval,
            "worker_processes": args.worker_processes,
            "database": db,
            "temporal": stack.temporal_version,
            "task_queues": {"refund": stack.settings.task_queue, "empty": EMPTY_TASK_QUEUE},
            "sandbox": "defaults (no faults armed: gateways answer SUCCESS at once)",
        },
        "empty": e,
        "refund": r,
        "refund_post_seconds": [t.post_seconds for t in traces],
        "refund_server_seconds": [t.server_seconds for t in traces if t.server_seconds],
        "refund_workflow_seconds": [s.total_seconds for s in shapes],
        "polls_per_refund": round(sum(t.polls for t in traces) / len(traces), 1),
        "ratio": {
            "rate": r["rate_per_second"] / e["rate_per_second"] if e["rate_per_second"] else 0,
            "p50": r["p50_ms"] / e["p50_ms"] if e["p50_ms"] else 0,
        },
        "refund_history": shape,
        "empty_history": eshape,
        "history_sample": len(shapes),
        "workflow_task_failures": dict(
            Counter(f for x in shapes for f in x.task_failures).most_common(5)
        ),
        "events_per_refund_mean": {
            name: round(sum(x.by_type.get(name, 0) for x in shapes) / k, 2)
            for name in sorted({n for x in shapes for n in x.by_type})
        },
        "history_mean_ms": sum(s.total_seconds for s in shapes) / k * 1000,
        "breakdown": time_breakdown(shapes),
        "cpu_empty": round_all(cpu_empty),
        "cpu_refund": round_all(cpu_refund),
        "log_problems": {
            name: {"lines": f.bad_lines, "first": f.first_bad} for name, f in stack.logs.items()
        },
    }


def json_ready(report: dict[str, Any]) -> dict[str, Any]:
    """The figures without the raw per-refund lists, plus their percentiles."""
    out = dict(report)
    for key in ("refund_post_seconds", "refund_server_seconds", "refund_workflow_seconds"):
        ms = [v * 1000 for v in out.pop(key)]
        out[key.replace("_seconds", "_ms")] = {
            "count": len(ms),
            "p50": round(percentile(ms, 50), 1),
            "p95": round(percentile(ms, 95), 1),
            "p99": round(percentile(ms, 99), 1),
        }
    return out
