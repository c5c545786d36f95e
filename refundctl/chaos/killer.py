"""Killing the worker (SIGKILL) at random points of the run, and the API once.

Kills are placed by progress, not by the clock, so each one lands while refunds are in flight
however fast the machine is: a kill is due when a drawn number of refunds has been fired, then
waits a random fraction of a second more (so it hits a random step of the refunds in flight),
and only once the previous worker has been up for a little while. After a kill the worker
stays down for a random moment, is started again and must poll its task queue; the time it is
back is what the recovery figures count from.

One worker kill at a time: the next one waits until every refund the previous one caught in
flight has ended (at most `max_recovery_seconds`). Otherwise a refund stalled by a long timeout
would be hit again by the next kill, and its recovery, counted from either kill, would be wrong.
So that kills do not fall behind the load (and end up hitting an idle system), the workload
asks `may_fire(i)` before firing refund i: it waits while a kill due `slack` refunds ago has
not happened yet.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from refundctl.stack import Stack

__all__ = ["Kill", "Killer"]


class InFlight(Protocol):
    @property
    def done(self) -> bool: ...


@dataclass
class Kill:
    target: str  # the service killed
    at: float  # time.time() of the SIGKILL
    fired: int  # refunds fired by then
    caught: Sequence[InFlight] = field(default_factory=list)  # refunds in flight at the kill
    back_at: float | None = None  # time.time() its successor passed its readiness check

    @property
    def in_flight(self) -> int:
        return len(self.caught)


class Killer:
    def __init__(
        self,
        stack: Stack,
        rng: random.Random,
        *,
        fired: Callable[[], int],
        running: Callable[[], bool],
        in_flight: Callable[[], Sequence[InFlight]],
        n: int,
        worker_kills: int,
        api_kills: int,
        graceful: bool = False,
        max_recovery_seconds: float = 120.0,
        max_down_seconds: float = 1.0,
        max_jitter_seconds: float = 1.0,
        min_up_seconds: tuple[float, float] = (0.5, 2.0),
    ) -> None:
        self.stack = stack
        self.rng = rng
        self.fired = fired
        self.running = running
        self.in_flight = in_flight
        self.graceful = graceful
        self.max_recovery = max_recovery_seconds
        self.max_down = max_down_seconds
        self.max_jitter = max_jitter_seconds
        self.min_up = min_up_seconds
        # Refund counts at which each kill is due (drawn with replacement: kills may outnumber
        # refunds). The API dies somewhere in the middle third.
        self.worker_due = sorted(rng.randrange(1, max(n, 2)) for _ in range(worker_kills))
        lo, hi = n // 3, max(2 * n // 3, n // 3 + 1)
        self.api_due = sorted(rng.randrange(lo, hi) for _ in range(api_kills))
        self.kills: list[Kill] = []
        self._done = {"worker": 0, "api": 0}  # kills performed, per target

    async def may_fire(self, i: int, slack: int) -> None:
        """Wait until every worker kill due at or before refund `i - slack` has happened."""
        while True:
            done = self._done["worker"]
            if done >= len(self.worker_due) or self.worker_due[done] > i - slack:
                return
            await asyncio.sleep(0.05)

    async def run(self) -> None:
        await asyncio.gather(
            self._kill_at("worker", self.worker_due), self._kill_at("api", self.api_due)
        )

    async def _kill_at(self, name: str, due: list[int]) -> None:
        service = self.stack.process(name)
        previous: Kill | None = None
        for target in due:
            while self.fired() < target:
                if not self.running():
                    return  # the workload ended early (its refunds failed): nothing to hit
                await asyncio.sleep(0.05)
            if previous is not None and name == "worker":
                await self._recovered(previous)
            up_since = service.ready_at or time.time()
            settle = self.rng.uniform(*self.min_up) - (time.time() - up_since)
            await asyncio.sleep(max(settle, 0.0) + self.rng.uniform(0, self.max_jitter))
            kill = Kill(name, time.time(), self.fired(), list(self.in_flight()))
            if self.graceful and name == "worker":
                await service.stop()  # SIGTERM: the worker's own shutdown, SIGKILL after 10 s
            else:
                await service.kill()
            self.kills.append(kill)
            await asyncio.sleep(self.rng.uniform(0, self.max_down))
            await service.start()
            await service.wait_ready()
            kill.back_at = service.ready_at
            self._done[name] += 1
            previous = kill

    async def _recovered(self, kill: Kill) -> None:
        """Wait until the refunds `kill` caught have ended (or the patience runs out)."""
        deadline = time.monotonic() + self.max_recovery
        while not all(r.done for r in kill.caught):
            if time.monotonic() >= deadline:
                return
            await asyncio.sleep(0.1)

    @property
    def worker_kills(self) -> list[Kill]:
        return [k for k in self.kills if k.target == "worker"]
