"""`refundctl chaos`: N automatic refunds while the worker is SIGKILLed at random (and the API
once), then every refund checked against the gateways' records and the books.

```
refundctl chaos                                   # n=100, 10 worker kills, 1 API kill
refundctl chaos --n 1000 --kills 100 --seed 7     # the README's run
```

It starts a throwaway stack through `refundctl.stack` (the dev server of temporal-dev.yml, a
fresh SQLite database or `--database-url`, the sandboxes, the worker and the API, each a
subprocess it can kill), fires the refunds (`workload.py`), kills (`killer.py`), follows every
refund until it ends, checks (`verify.py`), reads why the slowest recoveries were slow
(`diagnose.py`) and prints the figures (`report.py`). Exit 1 on any double or missing payout,
stuck refund, refund that ended otherwise, or failed reconciliation, audit or admin check.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "run"]

# Histories read to explain recovery times (the slowest first).
DIAGNOSED = 600


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=100, help="refunds to fire (default 100)")
    parser.add_argument("--kills", type=int, default=10, help="worker SIGKILLs (default 10)")
    parser.add_argument("--api-kills", type=int, default=1, help="API SIGKILLs (default 1)")
    parser.add_argument(
        "--graceful",
        action="store_true",
        help="stop the worker with SIGTERM (its graceful shutdown) instead of SIGKILL",
    )
    parser.add_argument(
        "--concurrency", type=int, default=20, help="refunds in flight at once (default 20)"
    )
    parser.add_argument(
        "--processing-share",
        type=float,
        default=0.5,
        help="share of the WeChat refunds armed to settle as 'processing' (default 0.5)",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    parser.add_argument(
        "--poll-interval", type=float, default=0.5, help="seconds between status GETs (0.5)"
    )
    parser.add_argument(
        "--settle-timeout",
        type=float,
        default=180.0,
        help="after the last kill, how long unfinished refunds may take to end (default 180 s)",
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="database for the API and worker (default: a fresh SQLite file); must be on this "
        "host and is written to",
    )
    parser.add_argument(
        "--log-dir",
        type=Path,
        default=None,
        help="keep every process's log here (default: a temp dir, kept only if the run fails)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")


def chaos_spec(tmp: Path, database_url: str, api_keys: str) -> Any:
    from config.settings import Settings
    from refundctl.stack import (
        ApiSpec,
        DevServerSpec,
        LogSpec,
        SandboxSpec,
        StackSpec,
        WorkerSpec,
    )
    from sandbox.run import SandboxConfig

    return StackSpec(
        settings=Settings(
            environment="dev",
            database_url=database_url,
            api_keys=api_keys,
            policy_path="",
            supplier_urls="",
            http_timeout_seconds=5.0,
        ),
        temporal=DevServerSpec(headless=True, db_file=tmp / "temporal.db"),
        sandboxes=SandboxSpec(
            SandboxConfig.on_free_ports(
                tmp / "keys",
            )
        ),
        workers=[WorkerSpec()],
        apis=[ApiSpec()],
        migrate=True,
        logs=LogSpec(dir=tmp / "logs"),
    )


def _say(message: str) -> None:
    print(f"chaos: {message}", file=sys.stderr, flush=True)


async def _progress(workload: Any, killer: Any, n: int, every: float = 30.0) -> None:
    while True:
        await asyncio.sleep(every)
        ended = sum(r.done for r in workload.refunds)
        _say(f"  fired {workload.fired}/{n}, ended {ended}, kills {len(killer.kills)}")


async def chaos(args: argparse.Namespace, tmp: Path, seed: int) -> tuple[str, dict[str, Any], bool]:
    import httpx
    from temporalio.client import Client

    from bench.stack import check_local_database
    from domain.refund import workflow_id_for
    from refundctl.chaos import diagnose, verify
    from refundctl.chaos.killer import Killer
    from refundctl.chaos.report import recovery, render
    from refundctl.chaos.workload import Workload, plan
    from refundctl.stack import start_stack

    rng = random.Random(seed)
    run_id = secrets.token_hex(4)
    platform_key, admin_key = f"pk_chaos_{run_id}", f"ak_chaos_{secrets.token_hex(8)}"
    if args.database_url:
        check_local_database(args.database_url)
    database_url = args.database_url or f"sqlite+aiosqlite:///{tmp / 'chaos.db'}"
    spec = chaos_spec(tmp, database_url, f"{platform_key}:platform,{admin_key}:admin")
    _say(f"seed {seed}; starting the stack in {tmp} ...")
    async with start_stack(spec) as stack:
        assert stack.sandboxes is not None
        limits = httpx.Limits(max_connections=args.concurrency * 2 + 10)
        async with httpx.AsyncClient(timeout=30.0, limits=limits) as http:
            workload = Workload(
                http,
                api_url=stack.api_url,
                api_key=platform_key,
                wechat_url=stack.sandboxes.wechat,
                refunds=plan(args.n, run_id, rng, args.processing_share),
                concurrency=args.concurrency,
                poll_interval=args.poll_interval,
                follow_seconds=args.settle_timeout,
            )
            _say(f"recording {args.n} orders ...")
            await workload.record_orders()
            killer = Killer(
                stack,
                rng,
                fired=lambda: workload.fired,
                running=lambda: not load.done(),
                in_flight=workload.in_flight,
                n=args.n,
                worker_kills=args.kills,
                api_kills=args.api_kills,
                graceful=args.graceful,
            )
            # Refunds may run ahead of a late kill by a few batches, so kills still find
            # refunds in flight, but not further (else kills end up hitting an idle system).
            workload.may_fire = lambda i: killer.may_fire(i, slack=3 * args.concurrency)
            _say(f"firing {args.n} refunds, {args.concurrency} at a time, killing as we go ...")
            started = time.monotonic()
            load = asyncio.ensure_future(workload.run())
            progress = asyncio.create_task(_progress(workload, killer, args.n))
            try:
                await asyncio.gather(load, killer.run())
            finally:
                progress.cancel()
            _say(f"{len(killer.kills)} kills done; letting unfinished refunds end ...")
            await workload.settle(args.settle_timeout)
            wall = time.monotonic() - started
            _say("checking every refund against the gateways and the books ...")
            verdicts = await verify.check(
                workload, stack, admin_key=admin_key, log_dir=tmp / "logs"
            )
            rec = recovery(workload.refunds, killer.kills)
            client = await Client.connect(stack.temporal_address)
            ranked = sorted(rec.seconds.items(), key=lambda kv: -kv[1])[:DIAGNOSED]
            _say(f"reading the histories of {len(ranked)} refunds a kill caught ...")
            found = await diagnose.causes(client, [workflow_id_for(rid) for rid, _ in ranked])
            causes = diagnose.by_cause(found, rec.seconds)[:10]
            slowest = [(rid, secs, found[workflow_id_for(rid)]) for rid, secs in ranked[:5]]
    settings = {
        "n": args.n,
        "kills": args.kills,
        "api_kills": args.api_kills,
        "worker_signal": "SIGTERM" if args.graceful else "SIGKILL",
        "concurrency": args.concurrency,
        "processing_share": args.processing_share,
        "seed": seed,
        "database": "sqlite (fresh temp file)" if not args.database_url else "--database-url",
    }
    text = render(
        settings=settings,
        refunds=workload.refunds,
        kills=killer.kills,
        verdicts=verdicts,
        rec=rec,
        causes=causes,
        slowest=slowest,
        wall_seconds=wall,
        api_retries=workload.api_retries,
    )
    figures = {
        "settings": settings,
        "fired": sum(r.posted_at is not None for r in workload.refunds),
        "worker_kills": sum(k.target == "worker" for k in killer.kills),
        "api_kills": sum(k.target == "api" for k in killer.kills),
        "refunded": len(verdicts.refunded),
        "processing_settled": verdicts.processing_settled,
        "double_payouts": len(verdicts.double),
        "missing_payouts": len(verdicts.missing),
        "stuck": len(verdicts.stuck),
        "ended_otherwise": len(verdicts.other),
        "recovery_seconds": {
            "count": len(rec.seconds),
            "several_kills": rec.several_kills,
            "p50": round(rec.p(50), 2),
            "p99": round(rec.p(99), 2),
            "max": round(rec.p(100), 2),
        },
        "waited_on": [
            {"cause": c, "refunds": n, "p50": round(p50, 2), "max": round(mx, 2)}
            for c, n, p50, mx in causes
        ],
        "commands": [c.__dict__ for c in verdicts.commands],
        "checks": {
            k: verdicts.checks.get(k) for k in ("ledger_balanced", "audit_ok", "money_conserved")
        },
        "wall_seconds": round(wall, 1),
        "ok": verdicts.ok,
    }
    return text, figures, verdicts.ok


def run(args: argparse.Namespace) -> int:
    if args.n < 1 or args.kills < 0 or args.api_kills < 0 or args.concurrency < 1:
        print("refundctl chaos: --n and --concurrency >= 1, kills >= 0", file=sys.stderr)
        return 2
    from refundctl.devserver import DevServerError
    from refundctl.procs import ProcessExited
    from refundctl.stack import ServiceStopped, run_once_until_signalled

    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    tmp = args.log_dir or Path(tempfile.mkdtemp(prefix="kami-chaos-"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        result = run_once_until_signalled(
            lambda: chaos(args, tmp, seed),
            on_interrupt=lambda: _say("interrupted; stopping the stack ..."),
        )
    except (DevServerError, ProcessExited, ServiceStopped, TimeoutError, RuntimeError) as exc:
        print(f"refundctl chaos: {exc}\n(logs in {tmp})", file=sys.stderr)
        return 1
    if result is None:
        return 130
    text, figures, ok = result
    print(text)
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    if ok and args.log_dir is None:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        _say(f"logs in {tmp}")
    return 0 if ok else 1
