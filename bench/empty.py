"""EmptyWorkflow: the floor `refundctl bench` compares refunds against.

It returns at once: one workflow task, no activities, no timers. What it costs is what any
workflow costs on this server and machine (start, one task round trip, completion, the
client's result long-poll), so "refund / empty" says how much the refund path adds on top.

Run its worker as a process of its own, as `refundctl bench` does:

    python -m bench.empty --address 127.0.0.1:7233 --task-queue bench-empty
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from temporalio import workflow

DEFAULT_TASK_QUEUE = "bench-empty"


@workflow.defn(name="EmptyWorkflow")
class EmptyWorkflow:
    @workflow.run
    async def run(self, n: int) -> int:
        return n


async def serve_empty(
    address: str,
    *,
    task_queue: str = DEFAULT_TASK_QUEUE,
    namespace: str = "default",
    stop: asyncio.Event | None = None,
) -> None:
    """Run an EmptyWorkflow worker until `stop` is set (or SIGINT/SIGTERM when run as main)."""
    from temporalio.client import Client
    from temporalio.worker import Worker

    stop = stop or asyncio.Event()
    client = await Client.connect(address, namespace=namespace)
    worker = Worker(client, task_queue=task_queue, workflows=[EmptyWorkflow])
    running = asyncio.create_task(worker.run())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not running.done():
        await worker.shutdown()
    await running


def main() -> int:
    parser = argparse.ArgumentParser(description="an EmptyWorkflow worker for `refundctl bench`")
    parser.add_argument("--address", required=True, help="Temporal host:port")
    parser.add_argument("--task-queue", default=DEFAULT_TASK_QUEUE)
    parser.add_argument("--namespace", default="default")
    args = parser.parse_args()

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        print(f"EmptyWorkflow worker polling {args.task_queue!r} at {args.address}", flush=True)
        await serve_empty(
            args.address, task_queue=args.task_queue, namespace=args.namespace, stop=stop
        )

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
