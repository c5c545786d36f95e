"""`refundctl worker`: runs RefundWorkflow and its activities on the `refunds` task queue,
and beside them the webhook dispatcher, the sweeper and the driver of claims against
suppliers (`workers.supplier_claims`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from datetime import timedelta
from typing import TYPE_CHECKING

from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from config.heap import settle_heap
from config.settings import Settings, get_settings
from config.temporal import connect
from domain.policy import CurrentPolicy
from peers.from_settings import supplier_claims_client
from store.db import make_engine, make_read_session_factory, make_session_factory
from telemetry.logs import configure_logging
from workers.operations import WorkerOperations
from workers.outbox import OutboxDispatcher
from workers.processes import worker_children
from workers.supplier_claims import ClaimsDriver
from workers.sweeper import sweep_unstarted
from workers.wiring import build_activities, buyer_messenger
from workflows.incident import IncidentWorkflow
from workflows.refund import RefundWorkflow

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger("refundctl.worker")

# The sandbox still guards every module a workflow imports, but the refund's own modules
# (workflows/) pass through instead of being executed again for each new refund: measured,
# re-running workflows/refund.py and its `@workflow.defn` was 6 % of the worker's CPU. They
# are held deterministic by other means: import contracts (no I/O) and
# tests/test_workflow_determinism.py (no clock, randomness or environment outside
# `workflow.*`), and they keep no module-level state.
WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules("workflows")
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-dispatcher",
        action="store_true",
        help="do not deliver the outbox (webhooks, buyer SMS and e-mail)",
    )
    parser.add_argument(
        "--no-sweeper",
        action="store_true",
        help="do not start refunds the API did not start, nor drive claims against suppliers",
    )
    parser.add_argument(
        "--no-claims",
        action="store_true",
        help="do not drive claims against suppliers (a second stack on a shared database "
        "whose supplier is another: its claims loop would submit the first one's claims there)",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=None,
        help="worker processes on this host, one event loop and GIL each (default "
        "WORKER_PROCESSES, 1); this one runs the dispatcher and sweeper, the rest poll only",
    )


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    configure_logging(settings, process="worker")
    # The workflow sandbox imports the workflow module afresh for every new refund; without
    # cached bytecode each of those imports compiles it from source (measured: 8 % of the
    # worker's CPU under load). Write the .pyc even where PYTHONDONTWRITEBYTECODE says not
    # to; a read-only install should ship compiled (`python -m compileall`).
    sys.dont_write_bytecode = False
    processes = args.processes or settings.worker_processes
    if processes < 1:
        print("refundctl worker: --processes must be at least 1", file=sys.stderr)
        return 2
    with worker_children(processes - 1):
        asyncio.run(
            serve(
                settings,
                dispatch_webhooks=not args.no_dispatcher,
                sweep=not args.no_sweeper,
                drive_claims=not args.no_claims,
                freeze_heap=True,
            )
        )
    return 0


async def serve(
    settings: Settings,
    *,
    dispatch_webhooks: bool = True,
    sweep: bool = True,
    drive_claims: bool = True,
    stop: asyncio.Event | None = None,
    tracer_provider: TracerProvider | None = None,
    freeze_heap: bool = False,
) -> None:
    """The worker until `stop` (or SIGINT/SIGTERM). `freeze_heap`: this process is the
    worker's alone (`refundctl worker`), so start-up's objects may be frozen (config.heap)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    # Metrics, traces and the worker's version (workers/operations.py).
    ops = WorkerOperations.from_settings(settings, tracer_provider=tracer_provider)
    client = await connect(settings, runtime=ops.runtime, tracer_provider=ops.tracer_provider)
    reads = make_read_session_factory(engine)
    async with ops.http_client() as http:
        acts = build_activities(settings, sessions, http, reads=reads, temporal=client)
        worker = Worker(
            client,
            task_queue=settings.task_queue,
            workflows=[RefundWorkflow, IncidentWorkflow],
            activities=acts.activities(),
            max_concurrent_activities=100,
            max_cached_workflows=settings.worker_max_cached_workflows,
            workflow_runner=WORKFLOW_RUNNER,
            # A worker that died holds its refunds' next workflow tasks on its sticky queue
            # until this passes; the default 10 s is most of a crashed refund's recovery time.
            sticky_queue_schedule_to_start_timeout=timedelta(seconds=4),
            interceptors=ops.interceptors(),
            deployment_config=ops.deployment_config(),
        )
        await ops.start(reads)
        if freeze_heap:
            log.info("start-up heap frozen: %d objects", settle_heap())
        tasks = [asyncio.create_task(worker.run())]
        if sweep:
            tasks.append(
                asyncio.create_task(
                    sweep_unstarted(sessions, client, task_queue=settings.task_queue)
                )
            )
        if (
            sweep and drive_claims
        ):  # one per host, like the sweeper: the worker's children run neither
            claims = ClaimsDriver(
                sessions,
                supplier_claims_client(settings, http),
                policy=CurrentPolicy(settings.policy_path or None).get,
            )
            tasks.append(asyncio.create_task(claims.run_forever()))
        if dispatch_webhooks:
            dispatcher = OutboxDispatcher(
                sessions,
                http,
                secret=settings.platform_webhook_secret,
                messenger=buyer_messenger(settings, reads, http),
            )
            tasks.append(asyncio.create_task(dispatcher.run_forever()))
        log.info(
            "worker polling task queue %r in namespace %r",
            settings.task_queue,
            client.namespace,
        )
        await stop.wait()
        log.info("worker stopping")
        await worker.shutdown()
        for t in tasks[1:]:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await ops.stop()
    await engine.dispose()
