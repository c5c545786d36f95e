"""Watching a running stack: restart crashed subprocesses with back-off, or report the first
death. `refundctl dev` restarts (a crashed worker should not end a dev session); the bench and
the chaos run do not (a death there is a finding, or their own doing)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from refundctl.procs import ProcessExited
from refundctl.stack.services import ProcessService, Service
from refundctl.stack.spec import RestartPolicy

if TYPE_CHECKING:
    from refundctl.stack.launch import Stack

__all__ = ["supervise"]


async def supervise(
    stack: Stack, policy: RestartPolicy | None, say: Callable[[str], None]
) -> Service:
    """Return the first service that ends and is not restarted.

    Under `policy`, a subprocess that dies is started again after the policy's delay and must
    pass its readiness check again; `say` gets one line per crash naming the service, its exit
    code and the delay, and one when it is back. In-process services are never restarted.
    """
    restarting: dict[str, asyncio.Task[None]] = {}
    crashes: dict[str, int] = {}
    try:
        while True:
            for name, task in list(restarting.items()):
                if task.done():
                    del restarting[name]
                    task.result()
            for service in stack.services.values():
                if service.exit_code is None or service.name in restarting:
                    continue
                if (
                    policy is None
                    or not isinstance(service, ProcessService)
                    or not service.restartable
                ):
                    return service
                restarting[service.name] = asyncio.create_task(
                    _restart(stack, service, policy, say, crashes)
                )
            await asyncio.sleep(0.2)
    finally:
        for task in restarting.values():
            task.cancel()
        await asyncio.gather(*restarting.values(), return_exceptions=True)


async def _restart(
    stack: Stack,
    service: ProcessService,
    policy: RestartPolicy,
    say: Callable[[str], None],
    crashes: dict[str, int],
) -> None:
    while True:
        up_for = time.time() - (service.started_at or 0.0)
        count = 1 if up_for >= policy.reset_after else crashes.get(service.name, 0) + 1
        crashes[service.name] = count
        delay = policy.delay(count)
        say(f"{service.name} exited with code {service.exit_code}; restarting it in {delay:g}s")
        await asyncio.sleep(delay)
        await service.start()
        service.restarts += 1
        try:
            await service.wait_ready()
        except ProcessExited:
            continue
        except TimeoutError as exc:
            say(f"{service.name} did not get ready after its restart ({exc}); stopping it")
            await service.stop(hurry=stack.hurry)
            continue
        say(f"{service.name} is back (pid {service.pid})")
        return
