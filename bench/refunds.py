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

By default the services run as subprocesses (`python -m refundctl.cli worker|api|sandbox`,
`python -m bench.empty`), as in production: each has its own interpreter and GIL, and the load
generator does not steal their CPU. `--mode inprocess` runs them all in this process instead,
as the test suite does, to compare. Everything stops by itself: each phase has a deadline and
`--timeout` bounds the whole run. See bench/README.md for how to read the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # heavy imports stay out of `refundctl --help` and of the other commands
    import httpx
    from temporalio.client import Client

    from config.settings import Settings
    from refundctl.procs import ChildProcess

LOCAL = "127.0.0.1"
EMPTY_TASK_QUEUE = "bench-empty"
PLATFORM_KEY_PREFIX = "pk_bench_"
MERCHANT = "M-BENCH"
# A refund that has not reached `refunded` after this long counts as failed.
REFUND_DEADLINE_SECONDS = 120.0
EMPTY_DEADLINE_SECONDS = 60.0
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", ""}


class BenchError(RuntimeError):
    """The bench could not set up its stack or could not measure what it was asked to."""


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
        "--timeout",
        type=float,
        default=1200.0,
        help="hard limit for the whole run in seconds (default 1200)",
    )


# --- figures -----------------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation): a value that was actually observed."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, int(-(-pct * len(ordered) // 100)))  # ceil(pct/100 * n)
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Batch:
    """One measured batch: latencies in seconds and the wall time it took."""

    name: str
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0

    @property
    def wall(self) -> float:
        return max(self.finished - self.started, 1e-9)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall

    def summary(self) -> dict[str, Any]:
        ms = [v * 1000 for v in self.latencies]
        return {
            "count": len(ms),
            "errors": len(self.errors),
            "wall_seconds": round(self.wall, 3),
            "rate_per_second": round(self.rate, 3),
            "p50_ms": round(percentile(ms, 50), 1),
            "p95_ms": round(percentile(ms, 95), 1),
            "p99_ms": round(percentile(ms, 99), 1),
            "max_ms": round(max(ms), 1) if ms else float("nan"),
            "mean_ms": round(sum(ms) / len(ms), 1) if ms else float("nan"),
            "first_errors": self.errors[:5],
        }


async def run_closed_loop(
    n: int, concurrency: int, one: Callable[[int], Awaitable[float]], batch: Batch
) -> Batch:
    """Run `one(i)` for i in range(n) with `concurrency` in flight; each returns its latency."""
    counter = itertools.count()

    async def slot() -> None:
        while (i := next(counter)) < n:
            try:
                batch.latencies.append(await one(i))
            except Exception as exc:
                batch.errors.append(f"#{i}: {type(exc).__name__}: {exc}"[:300])

    batch.started = time.monotonic()
    await asyncio.gather(*(slot() for _ in range(max(1, min(concurrency, n)))))
    batch.finished = time.monotonic()
    return batch


# --- CPU accounting ------------------------------------------------------------------------------


def _cpu_seconds(pid: int | None) -> float | None:
    """user+system CPU seconds of a process and its waited-for children (Linux /proc)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    # After the ")" : state is field 3, so utime/stime (14/15) are at 11/12 here.
    return (int(fields[11]) + int(fields[12])) / ticks


class CpuMeter:
    """CPU seconds each process of the stack spends during a phase."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = {"bench (this process)": os.getpid(), **pids}
        self._start: dict[str, float | None] = {}
        self.used: dict[str, float] = {}

    def start(self) -> None:
        self._start = {name: _cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self) -> dict[str, float]:
        for name, pid in self.pids.items():
            now, before = _cpu_seconds(pid), self._start.get(name)
            if now is not None and before is not None:
                self.used[name] = now - before
        return self.used


# --- the stack ---------------------------------------------------------------------------------


def _free_port() -> int:
    from refundctl.procs import free_port

    return free_port(LOCAL)


def _check_local_database(url: str) -> None:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return
    host = parsed.host or ""
    if host not in LOOPBACK_HOSTS:
        raise BenchError(
            f"--database-url points at {host!r}: the bench only targets this host (127.0.0.1)"
        )


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def bench_settings(tmp: Path, database_url: str, temporal_address: str, api_key: str) -> Settings:
    """Settings of the services under test; the sandbox URLs are filled in once they listen."""
    from config.settings import Settings

    keys = tmp / "keys"
    return Settings(
        environment="dev",
        database_url=database_url,
        temporal_address=temporal_address,
        api_keys=f"{api_key}:platform",
        policy_path="",
        supplier_urls="",
        alipay_private_key_path=str(keys / "alipay_app_private.pem"),
        alipay_public_key_path=str(keys / "alipay_platform_public.pem"),
        wechat_private_key_path=str(keys / "wechat_merchant_private.pem"),
        wechat_platform_certs=str(keys / "wechat_platform_cert.pem"),
        wechat_public_key_path=str(keys / "wechat_pubkey_public.pem"),
        http_timeout_seconds=5.0,
    )


def settings_env(settings: Settings) -> dict[str, str]:
    """Every setting as an environment variable, so nothing leaks in from ours."""
    env = {name.upper(): str(value) for name, value in settings.model_dump().items()}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class LogFile:
    """A child's output, to a file in the run's temp dir; counts the lines that look bad."""

    BAD = ("Traceback", " ERROR ", "ERROR:", "CRITICAL")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.bad_lines = 0
        self.first_bad: list[str] = []
        self._fh = path.open("a", encoding="utf-8")

    def __call__(self, line: str) -> None:
        self._fh.write(line + "\n")
        if any(b in line for b in self.BAD):
            self.bad_lines += 1
            if len(self.first_bad) < 3:
                self.first_bad.append(line[:300])

    def close(self) -> None:
        self._fh.close()


@dataclass
class Stack:
    mode: str
    temporal_address: str
    api_url: str
    api_key: str
    database_url: str
    settings: Settings
    pids: dict[str, int | None]
    logs: dict[str, LogFile]
    temporal_version: str


@contextlib.asynccontextmanager
async def running_stack(args: argparse.Namespace, tmp: Path) -> AsyncIterator[Stack]:
    """Temporal, database, sandboxes, refund worker, API and EmptyWorkflow worker."""
    from peers.signing import ensure_sandbox_keys
    from refundctl.devserver import start_dev_server, temporal_binary
    from store.migrate import upgrade

    logs: dict[str, LogFile] = {}

    def log(name: str) -> LogFile:
        logs[name] = LogFile(tmp / f"{name}.log")
        return logs[name]

    await asyncio.to_thread(ensure_sandbox_keys, tmp / "keys")
    if args.database_url:
        _check_local_database(args.database_url)
        database_url = args.database_url
    else:
        database_url = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    # Alembic's env runs its own event loop: keep it off this one.
    await asyncio.to_thread(upgrade, database_url)

    version = (
        await asyncio.to_thread(
            subprocess.run,
            [temporal_binary(), "--version"],
            capture_output=True,
            text=True,
            check=False,
        )
    ).stdout.strip()
    api_key = PLATFORM_KEY_PREFIX + secrets.token_hex(12)
    api_port = _free_port()
    try:
        async with start_dev_server(
            port=_free_port(),
            db_file=tmp / "temporal.db",
            headless=True,
            output=log("temporal"),
        ) as temporal:
            settings = bench_settings(tmp, database_url, temporal.address, api_key)
            starter = _start_subprocesses if args.mode == "subprocess" else _start_inprocess
            async with starter(settings, tmp, api_port, log) as (settings, pids):
                yield Stack(
                    mode=args.mode,
                    temporal_address=temporal.address,
                    api_url=f"http://{LOCAL}:{api_port}",
                    api_key=api_key,
                    database_url=database_url,
                    settings=settings,
                    pids={"temporal": temporal.process.pid, **pids},
                    logs=logs,
                    temporal_version=version,
                )
    finally:
        for f in logs.values():
            f.close()


def _with_sandboxes(settings: Settings, ports: dict[str, int], api_port: int) -> Settings:
    return settings.model_copy(
        update={
            "supplier_url": f"http://{LOCAL}:{ports['supplier']}",
            "alipay_url": f"http://{LOCAL}:{ports['alipay']}/gateway.do",
            "wechat_url": f"http://{LOCAL}:{ports['wechat']}",
            "platform_webhook_url": f"http://{LOCAL}:{ports['platform']}/webhooks/refunds",
            "public_base_url": f"http://{LOCAL}:{api_port}",
        }
    )


@contextlib.asynccontextmanager
async def _start_subprocesses(
    settings: Settings, tmp: Path, api_port: int, log: Callable[[str], LogFile]
) -> AsyncIterator[tuple[Settings, dict[str, int | None]]]:
    from refundctl.devserver import PROJECT_ROOT, wait_for_poller
    from refundctl.procs import Supervisor, refundctl_argv, wait_for_http, wait_for_port

    ports = {name: _free_port() for name in ("supplier", "alipay", "wechat", "platform")}
    settings = _with_sandboxes(settings, ports, api_port)
    env = settings_env(settings)
    async with Supervisor(grace_seconds=10.0) as sup:
        sandbox = await sup.start(
            "sandbox",
            refundctl_argv(
                "sandbox",
                "--host",
                LOCAL,
                *(f"--{name}-port={port}" for name, port in ports.items()),
                f"--keys-dir={tmp / 'keys'}",
            ),
            env=env,
            cwd=PROJECT_ROOT,
            output=log("sandbox"),
        )
        for port in ports.values():
            await wait_for_port(LOCAL, port, timeout_seconds=60, process=sandbox)
        worker = await sup.start(
            "worker", refundctl_argv("worker"), env=env, cwd=PROJECT_ROOT, output=log("worker")
        )
        await wait_for_poller(settings.temporal_address, worker, timeout_seconds=60)
        api = await sup.start(
            "api",
            refundctl_argv("api", "--host", LOCAL, "--port", str(api_port)),
            env=env,
            cwd=PROJECT_ROOT,
            output=log("api"),
        )
        await wait_for_http(f"http://{LOCAL}:{api_port}/healthz", timeout_seconds=60, process=api)
        empty = await sup.start(
            "empty-worker",
            [
                sys.executable,
                "-m",
                "bench.empty",
                "--address",
                settings.temporal_address,
                "--task-queue",
                EMPTY_TASK_QUEUE,
            ],
            env=env,
            cwd=PROJECT_ROOT,
            output=log("empty-worker"),
        )
        await wait_for_poller(
            settings.temporal_address, empty, task_queue=EMPTY_TASK_QUEUE, timeout_seconds=60
        )
        children: list[ChildProcess] = [sandbox, worker, api, empty]
        try:
            yield settings, {c.name: c.pid for c in children}
        finally:
            dead = [c for c in children if c.returncode is not None]
            if dead:
                print(
                    "WARNING: "
                    + ", ".join(f"{c.name} exited with {c.returncode}" for c in dead)
                    + " during the run",
                    file=sys.stderr,
                )


@contextlib.asynccontextmanager
async def _start_inprocess(
    settings: Settings, tmp: Path, api_port: int, log: Callable[[str], LogFile]
) -> AsyncIterator[tuple[Settings, dict[str, int | None]]]:
    import uvicorn

    from api.app import create_app
    from bench.empty import serve_empty
    from sandbox.run import SandboxConfig, running_sandboxes
    from workers.main import serve

    config = SandboxConfig(
        supplier_port=0, alipay_port=0, wechat_port=0, platform_port=0, keys_dir=tmp / "keys"
    )
    async with running_sandboxes(config, settings=settings) as urls:
        settings = settings.model_copy(
            update={
                "supplier_url": urls.supplier,
                "alipay_url": urls.alipay,
                "wechat_url": urls.wechat,
                "platform_webhook_url": urls.platform_webhook,
                "public_base_url": f"http://{LOCAL}:{api_port}",
            }
        )
        stop = asyncio.Event()
        worker = asyncio.create_task(serve(settings, stop=stop))
        empty = asyncio.create_task(
            serve_empty(settings.temporal_address, task_queue=EMPTY_TASK_QUEUE, stop=stop)
        )
        # serve() takes over SIGINT/SIGTERM to stop the worker; give them back to the bench.
        _install_signal_handlers()

        class QuietServer(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield

        server = QuietServer(
            uvicorn.Config(
                create_app(settings),
                host=LOCAL,
                port=api_port,
                log_level="warning",
                lifespan="on",
                access_log=False,
            )
        )
        api = asyncio.create_task(server.serve())
        try:
            while not server.started:
                for task in (api, worker, empty):
                    if task.done():
                        task.result()
                        raise BenchError("a service stopped while starting")
                await asyncio.sleep(0.02)
            await _wait_for_pollers(settings.temporal_address)
            yield settings, {}
        finally:
            server.should_exit = True
            stop.set()
            await asyncio.gather(api, worker, empty, return_exceptions=True)


async def _wait_for_pollers(address: str, timeout_seconds: float = 60.0) -> None:
    """In-process workers have no pid of their own: wait until both queues have a poller."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
    from temporalio.client import Client

    client = await Client.connect(address)
    deadline = time.monotonic() + timeout_seconds
    for queue in ("refunds", EMPTY_TASK_QUEUE):
        request = DescribeTaskQueueRequest(
            namespace="default",
            task_queue=TaskQueue(name=queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
        while not (await client.workflow_service.describe_task_queue(request)).pollers:
            if time.monotonic() > deadline:
                raise BenchError(f"no worker polls {queue!r} after {timeout_seconds:.0f}s")
            await asyncio.sleep(0.2)


# --- phase 1: the empty workflow -----------------------------------------------------------------


async def bench_empty(
    client: Client, n: int, concurrency: int, warmup: int, run_id: str
) -> tuple[Batch, str]:
    from bench.empty import EmptyWorkflow

    async def one(i: int, prefix: str) -> float:
        t0 = time.monotonic()
        async with asyncio.timeout(EMPTY_DEADLINE_SECONDS):
            result = await client.execute_workflow(
                EmptyWorkflow.run, i, id=f"{prefix}-{i}", task_queue=EMPTY_TASK_QUEUE
            )
        if result != i:
            raise BenchError(f"EmptyWorkflow returned {result!r}, not {i}")
        return time.monotonic() - t0

    if warmup:
        await run_closed_loop(
            warmup, concurrency, lambda i: one(i, f"empty-warm-{run_id}"), Batch("warmup")
        )
    batch = await run_closed_loop(
        n, concurrency, lambda i: one(i, f"empty-{run_id}"), Batch("empty workflow")
    )
    return batch, f"empty-{run_id}-0"


# --- phase 2: refunds through the API ------------------------------------------------------------


def bench_order(serial: int, run_id: str) -> dict[str, Any]:
    """A paid card-key order whose key is unredeemed: the rules approve it without a person.

    Every order has a buyer, device and client address of its own so the risk checks see
    unrelated buyers (as tests/system.py's `card_key_order` / `unique_ip` do); channels alternate
    between Alipay and WeChat Pay."""
    channel = "alipay" if serial % 2 == 0 else "wechat"
    tag = f"{run_id}-{serial}"
    at = (datetime.now(UTC) - timedelta(minutes=30)).isoformat()
    amount = 5000
    return {
        "order_id": f"O-bench-{tag}",
        "merchant_id": MERCHANT,
        "buyer_id": f"U-bench-{tag}",
        "status": "paid",
        "currency": "CNY",
        "amount": amount,
        "created_at": at,
        "paid_at": at,
        "payments": [
            {
                "payment_id": "P-1",
                "channel": channel,
                "transaction_id": f"T-bench-{tag}",
                "amount": amount,
                "paid_at": at,
            }
        ],
        "items": [
            {
                "item_id": "I-1",
                "sku": "steam-50",
                "title": "Steam wallet 50",
                "product_type": "card_key",
                "quantity": 1,
                "unit_price": amount,
                "card_keys": [
                    {"card_key_id": f"K-bench-{tag}", "supplier": "sup-a", "delivered_at": at}
                ],
                "usage": {"key_revealed": False, "progress_pct": 0, "downloaded": False},
            }
        ],
        "client": {
            "ip": f"2001:db8:{run_id[:4]}::{serial:x}",
            "device_id": f"dev-bench-{tag}",
        },
        "commissions": [{"beneficiary_id": f"U-ref-{tag}", "level": 1, "amount": amount // 10}],
    }


@dataclass
class RefundTrace:
    refund_id: str
    post_seconds: float  # POST -> 202
    latency: float  # POST sent -> GET saw `refunded`
    server_seconds: float | None  # timeline: submitted -> money_arrived
    polls: int


async def record_orders(
    http: httpx.AsyncClient, stack: Stack, orders: list[dict[str, Any]], concurrency: int
) -> Batch:
    headers = {"Authorization": f"Bearer {stack.api_key}"}

    async def one(i: int) -> float:
        t0 = time.monotonic()
        r = await http.post(f"{stack.api_url}/v1/orders", json=orders[i], headers=headers)
        if r.status_code != 201:
            raise BenchError(f"POST /v1/orders: {r.status_code} {r.text[:200]}")
        return time.monotonic() - t0

    batch = await run_closed_loop(len(orders), concurrency, one, Batch("record order"))
    if batch.errors:
        raise BenchError("recording orders failed: " + "; ".join(batch.errors[:3]))
    return batch


async def bench_refunds(
    http: httpx.AsyncClient,
    stack: Stack,
    orders: list[dict[str, Any]],
    concurrency: int,
    poll_interval: float,
    name: str,
) -> tuple[Batch, list[RefundTrace]]:
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    traces: list[RefundTrace] = []

    async def one(i: int) -> float:
        order = orders[i]
        body = {
            "order_id": order["order_id"],
            "buyer_id": order["buyer_id"],
            "reason": "invalid_key",
        }
        t0 = time.monotonic()
        r = await http.post(
            f"{stack.api_url}/v1/refunds",
            json=body,
            headers={**headers, "Idempotency-Key": f"idem-{order['order_id']}"},
        )
        posted = time.monotonic() - t0
        if r.status_code != 202:
            raise BenchError(f"POST /v1/refunds: {r.status_code} {r.text[:200]}")
        refund_id = str(r.json()["refund_id"])
        polls = 0
        while True:
            await asyncio.sleep(poll_interval)
            polls += 1
            g = await http.get(f"{stack.api_url}/v1/refunds/{refund_id}", headers=headers)
            if g.status_code != 200:
                raise BenchError(f"GET /v1/refunds/{refund_id}: {g.status_code} {g.text[:200]}")
            now = time.monotonic()
            refund = g.json()
            status = refund["status"]
            if status == "refunded":
                break
            if status in ("rejected", "failed", "cancelled", "redirected_to_support"):
                raise BenchError(f"{refund_id} ended {status}: {refund.get('decision')}")
            if status == "pending_review":
                raise BenchError(f"{refund_id} went to review: {refund.get('decision')}")
            if now - t0 > REFUND_DEADLINE_SECONDS:
                raise BenchError(f"{refund_id} still {status} after {REFUND_DEADLINE_SECONDS}s")
        latency = now - t0
        traces.append(RefundTrace(refund_id, posted, latency, _server_seconds(refund), polls))
        return latency

    batch = await run_closed_loop(len(orders), concurrency, one, Batch(name))
    return batch, traces


def _server_seconds(body: dict[str, Any]) -> float | None:
    """submitted -> money_arrived from the refund's own timeline (workflow clock)."""
    at = {e["stage"]: e["at"] for e in body.get("timeline", [])}
    if "submitted" not in at or "money_arrived" not in at:
        return None
    start = datetime.fromisoformat(at["submitted"])
    end = datetime.fromisoformat(at["money_arrived"])
    return (end - start).total_seconds()


# --- phase 3: histories --------------------------------------------------------------------------


def _event_name(event_type: int) -> str:
    from temporalio.api.enums.v1 import EventType

    return EventType.Name(event_type).removeprefix("EVENT_TYPE_")  # type: ignore[arg-type]


def _ts(event: Any) -> float:
    return float(event.event_time.ToMicroseconds()) / 1e6


@dataclass
class HistoryShape:
    workflow_id: str
    events: int
    by_type: dict[str, int]
    workflow_tasks: int
    activities: dict[str, int]
    local_activities: dict[str, int]
    # Durations in seconds, one list entry per occurrence in this history.
    spans: dict[str, list[float]]
    total_seconds: float
    task_failures: list[str] = field(default_factory=list)


def _local_activity(event: Any) -> tuple[str, float | None] | None:
    """(activity type, completion time) of a local activity marker; None for other markers.

    The SDK core writes `{"activity_type": ..., "complete_time": {"seconds", "nanos"}, ...}`
    into the marker's `data`; the marker event itself is stamped when the task completes."""
    attrs = event.marker_recorded_event_attributes
    if attrs.marker_name != "core_local_activity":
        return None
    payloads = attrs.details.get("data")
    if payloads is None or not payloads.payloads:
        return "local activity", None
    try:
        data = json.loads(payloads.payloads[0].data)
    except ValueError:
        return "local activity", None
    done = data.get("complete_time")
    at = done["seconds"] + done.get("nanos", 0) / 1e9 if isinstance(done, dict) else None
    return str(data.get("activity_type") or "local activity"), at


def analyse_history(workflow_id: str, events: Sequence[Any]) -> HistoryShape:
    """Count a history's events and measure its spans from the event timestamps.

    - `workflow task queued`: WorkflowTaskScheduled -> Started, waiting for a worker poll.
    - `workflow task run`: Started -> Completed, the worker running workflow code, including
      the local activities it awaits inside that task (they leave only a marker behind).
    - `<activity> queued` / `<activity> run`: the same for each (remote) activity.
    - `between`: from a task's completion to the next thing the server schedules.
    """
    by_type = Counter(_event_name(e.event_type) for e in events)
    spans: dict[str, list[float]] = defaultdict(list)
    activity_types: dict[int, str] = {}
    scheduled_at: dict[int, float] = {}
    started_at: dict[int, float] = {}
    activities: Counter[str] = Counter()
    local: Counter[str] = Counter()
    failures: list[str] = []
    task_started: float | None = None
    previous_done = in_local = 0.0
    task_run: float | None = None

    def close_task() -> None:
        # A task's markers follow its WORKFLOW_TASK_COMPLETED event, so its split into local
        # activities and the rest is known only when the next task starts (or at the end).
        nonlocal task_run, in_local
        if task_run is not None:
            spans["  of which workflow code, SDK"].append(max(task_run - in_local, 0.0))
        task_run, in_local = None, 0.0

    for e in events:
        kind = _event_name(e.event_type)
        t = _ts(e)
        if kind == "WORKFLOW_TASK_SCHEDULED":
            scheduled_at[e.event_id] = t
        elif kind == "WORKFLOW_TASK_STARTED":
            sid = e.workflow_task_started_event_attributes.scheduled_event_id
            spans["workflow task queued"].append(t - scheduled_at.get(sid, t))
            started_at[e.event_id] = t
            close_task()
            task_started = previous_done = t
        elif kind == "WORKFLOW_TASK_COMPLETED":
            sid = e.workflow_task_completed_event_attributes.started_event_id
            task_run = t - started_at.get(sid, t)
            spans["workflow task run"].append(task_run)
        elif kind in ("WORKFLOW_TASK_FAILED", "WORKFLOW_TASK_TIMED_OUT"):
            failures.append(_task_failure(e, kind))
        elif kind == "ACTIVITY_TASK_SCHEDULED":
            name = e.activity_task_scheduled_event_attributes.activity_type.name
            activity_types[e.event_id] = name
            activities[name] += 1
            scheduled_at[e.event_id] = t
        elif kind == "ACTIVITY_TASK_STARTED":
            sid = e.activity_task_started_event_attributes.scheduled_event_id
            name = activity_types.get(sid, "activity")
            spans[f"{name} queued"].append(t - scheduled_at.get(sid, t))
            started_at[e.event_id] = t
        elif kind == "ACTIVITY_TASK_COMPLETED":
            attrs = e.activity_task_completed_event_attributes
            name = activity_types.get(attrs.scheduled_event_id, "activity")
            spans[f"{name} run"].append(t - started_at.get(attrs.started_event_id, t))
        elif kind == "MARKER_RECORDED":
            la = _local_activity(e)
            if la is not None:
                name, done_at = la
                local[name] += 1
                # Local activities of one task run one after another: each took from the end
                # of the previous one (or the task's start) to its own completion.
                if done_at is not None and task_started is not None:
                    took = max(done_at - previous_done, 0.0)
                    spans[f"  of which local {name}"].append(took)
                    in_local += took
                    previous_done = max(done_at, previous_done)
    close_task()
    total = _ts(events[-1]) - _ts(events[0]) if events else 0.0
    return HistoryShape(
        workflow_id=workflow_id,
        events=len(events),
        by_type=dict(by_type),
        workflow_tasks=by_type.get("WORKFLOW_TASK_COMPLETED", 0),
        activities=dict(activities),
        local_activities=dict(local),
        spans=dict(spans),
        total_seconds=total,
        task_failures=failures,
    )


def _task_failure(event: Any, kind: str) -> str:
    if kind == "WORKFLOW_TASK_TIMED_OUT":
        return "workflow task timed out"
    attrs = event.workflow_task_failed_event_attributes
    from temporalio.api.enums.v1 import WorkflowTaskFailedCause

    cause = WorkflowTaskFailedCause.Name(attrs.cause).removeprefix("WORKFLOW_TASK_FAILED_CAUSE_")
    return f"{cause}: {attrs.failure.message[:200]}"


async def fetch_shape(client: Client, workflow_id: str) -> HistoryShape:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return analyse_history(workflow_id, list(history.events))


def time_breakdown(shapes: Sequence[HistoryShape]) -> list[dict[str, Any]]:
    """Per span kind: how often per workflow and mean total ms per workflow, largest first."""
    totals: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    all_values: dict[str, list[float]] = defaultdict(list)
    for s in shapes:
        for name, values in s.spans.items():
            totals[name] += sum(values)
            counts[name] += len(values)
            all_values[name] += values
    k = max(len(shapes), 1)
    mean_total = sum(s.total_seconds for s in shapes) / k
    rows: list[dict[str, Any]] = [
        {
            "span": name,
            "per_workflow": round(counts[name] / k, 2),
            "ms_per_workflow": round(totals[name] / k * 1000, 1),
            "share_of_workflow": round(totals[name] / k / mean_total, 3) if mean_total else None,
            "p50_ms_each": round(percentile([v * 1000 for v in all_values[name]], 50), 1),
            "p95_ms_each": round(percentile([v * 1000 for v in all_values[name]], 95), 1),
        }
        for name in totals
    ]
    top = sorted(
        (r for r in rows if not r["span"].startswith(" ")), key=lambda r: -r["ms_per_workflow"]
    )
    sub = sorted(
        (r for r in rows if r["span"].startswith(" ")), key=lambda r: -r["ms_per_workflow"]
    )
    ordered: list[dict[str, Any]] = []
    for row in top:
        ordered.append(row)
        if row["span"] == "workflow task run":
            ordered += sub
    return ordered


# --- report --------------------------------------------------------------------------------------


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
        f"mode={cfg['mode']} poll={cfg['poll_interval']}s",
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


# --- main ----------------------------------------------------------------------------------------


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    import httpx
    from temporalio.client import Client

    run_id = secrets.token_hex(4)
    with tempfile.TemporaryDirectory(prefix="kami-bench-") as tmp_name:
        tmp = Path(tmp_name)
        _say(f"starting the stack ({args.mode}) in {tmp} ...")
        t_setup = time.monotonic()
        async with running_stack(args, tmp) as stack:
            _say(
                f"stack up in {time.monotonic() - t_setup:.1f}s: temporal {stack.temporal_address}"
                f", api {stack.api_url}, database {_redact(stack.database_url)}"
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
                meter = CpuMeter(stack.pids)
                meter.start()
                refund, traces = await bench_refunds(
                    http,
                    stack,
                    orders[args.warmup :],
                    args.concurrency,
                    args.poll_interval,
                    "refund",
                )
                cpu_refund = meter.stop()
                _say(f"  {refund.rate:.1f}/s, {len(refund.errors)} errors")

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
            report = _report(
                args, stack, empty, refund, traces, list(shapes), empty_shape, cpu_empty, cpu_refund
            )
    return report


def _report(
    args: argparse.Namespace,
    stack: Stack,
    empty: Batch,
    refund: Batch,
    traces: list[RefundTrace],
    shapes: list[HistoryShape],
    empty_shape: HistoryShape,
    cpu_empty: dict[str, float],
    cpu_refund: dict[str, float],
) -> dict[str, Any]:
    e, r = empty.summary(), refund.summary()
    db = "sqlite (fresh temp file)" if not args.database_url else _redact(stack.database_url)
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


def _json_ready(report: dict[str, Any]) -> dict[str, Any]:
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


def _say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


_main_task: asyncio.Task[Any] | None = None


def _install_signal_handlers() -> None:
    """Ctrl-C / SIGTERM cancel the bench, whose `async with` blocks then stop everything."""
    loop = asyncio.get_running_loop()

    def cancel() -> None:
        if _main_task is not None and not _main_task.done():
            _say("interrupted; stopping the stack ...")
            _main_task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, cancel)


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    global _main_task
    _main_task = asyncio.current_task()
    _install_signal_handlers()
    async with asyncio.timeout(args.timeout):
        return await bench(args)


def run(args: argparse.Namespace) -> int:
    if args.n < 1 or args.concurrency < 1 or args.warmup < 0 or args.poll_interval <= 0:
        print("refundctl bench: --n and --concurrency must be >= 1, --warmup >= 0", file=sys.stderr)
        return 2
    from refundctl.devserver import DevServerError
    from refundctl.procs import ProcessExited

    try:
        report = asyncio.run(_run(args))
    except asyncio.CancelledError:
        return 130
    except TimeoutError:
        print(
            f"refundctl bench: did not finish within --timeout {args.timeout:.0f}s", file=sys.stderr
        )
        return 1
    except (BenchError, DevServerError, ProcessExited) as exc:
        print(f"refundctl bench: {exc}", file=sys.stderr)
        return 1
    print(render(report))
    if args.json is not None:
        args.json.write_text(json.dumps(_json_ready(report), indent=2) + "\n", encoding="utf-8")
        _say(f"figures written to {args.json}")
    failed = report["empty"]["errors"] + report["refund"]["errors"]
    return 1 if failed else 0
