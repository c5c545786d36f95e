"""Readiness checks: is a port open, does a URL answer, does a worker poll its task queue.

Each takes the process it waits for, if any, and fails fast when that process dies meanwhile
instead of waiting out the timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import httpx

from refundctl.procs import ChildProcess, ProcessExited

__all__ = ["wait_for_http", "wait_for_poller", "wait_for_port"]


def _check_alive(process: ChildProcess | None) -> None:
    if process is not None and process.returncode is not None:
        raise ProcessExited(process)


async def wait_for_port(
    host: str,
    port: int,
    *,
    timeout_seconds: float = 30.0,
    process: ChildProcess | None = None,
    interval: float = 0.1,
) -> None:
    """Wait until host:port accepts TCP connections; fail fast if `process` dies meanwhile."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        _check_alive(process)
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout=1.0)
        except (OSError, TimeoutError):
            pass
        else:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return
        if time.monotonic() >= deadline:
            who = f" ({process.name})" if process is not None else ""
            raise TimeoutError(
                f"nothing listens on {host}:{port}{who} after {timeout_seconds:.0f}s"
            )
        await asyncio.sleep(interval)


async def wait_for_http(
    url: str,
    *,
    timeout_seconds: float = 30.0,
    process: ChildProcess | None = None,
    interval: float = 0.2,
    ready: Callable[[int], bool] = lambda status: status < 500,
) -> None:
    """Wait until GET url answers with a status `ready` accepts (default: anything but 5xx)."""
    deadline = time.monotonic() + timeout_seconds
    last_error = "no answer"
    async with httpx.AsyncClient(timeout=2.0) as client:
        while True:
            _check_alive(process)
            try:
                response = await client.get(url)
            except httpx.HTTPError as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            else:
                if ready(response.status_code):
                    return
                last_error = f"HTTP {response.status_code}"
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{url} not ready after {timeout_seconds:.0f}s ({last_error})")
            await asyncio.sleep(interval)


async def wait_for_poller(
    address: str,
    *,
    pid: int,
    since: float,
    task_queue: str = "refunds",
    namespace: str = "default",
    timeout_seconds: float = 60.0,
    process: ChildProcess | None = None,
) -> None:
    """Wait until the worker with `pid` polls `task_queue` for workflow tasks.

    A killed worker stays listed as a poller for a while, so "someone polls" is not enough after
    a restart: this waits for a poller whose identity carries the pid (the SDK's default
    identity is `<pid>@<host>`) or, for custom identities, one seen since `since` (time.time()
    of the start). `process`, if given, must stay alive meanwhile.
    """
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
    from temporalio.client import Client

    client = await Client.connect(address, namespace=namespace)
    request = DescribeTaskQueueRequest(
        namespace=namespace,
        task_queue=TaskQueue(name=task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    deadline = time.monotonic() + timeout_seconds
    while True:
        _check_alive(process)
        response = await client.workflow_service.describe_task_queue(request)
        for poller in response.pollers:
            if poller.identity.startswith(f"{pid}@"):
                return
            if poller.last_access_time.ToSeconds() >= since:
                return
        if time.monotonic() >= deadline:
            who = process.name if process is not None else "the worker"
            tail = "\n".join(process.tail(40)) if process is not None else ""
            raise TimeoutError(
                f"{who} (pid {pid}) is not polling {task_queue!r} after "
                f"{timeout_seconds:.0f}s; last output:\n{tail}"
            )
        await asyncio.sleep(0.2)
