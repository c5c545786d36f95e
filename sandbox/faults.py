"""Armed misbehaviour for the sandbox peers: "make the next N calls fail this way".

Tests and demos arm a fault through `POST /sandbox/faults`; each affected call consumes one.
Counting calls (rather than switching a mode on and off) keeps a test deterministic even when
the service retries: three armed 5xx answers mean exactly three failed attempts.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

__all__ = ["FaultPlan", "FaultRequest"]


class FaultRequest(BaseModel):
    mode: str
    count: Annotated[int, Field(ge=0, le=1000)] = 1


@dataclass
class _Armed:
    mode: str
    remaining: int


class FaultPlan:
    """A queue of (mode, remaining) pairs; the first one armed is served first."""

    def __init__(self, modes: frozenset[str]) -> None:
        self.modes = modes
        self._armed: list[_Armed] = []
        self._lock = asyncio.Lock()

    async def arm(self, mode: str, count: int) -> None:
        if mode not in self.modes:
            raise ValueError(f"unknown fault mode {mode!r}; expected one of {sorted(self.modes)}")
        async with self._lock:
            if count > 0:
                self._armed.append(_Armed(mode, count))

    async def take(self) -> str | None:
        """The fault for this call, if any, consuming it."""
        async with self._lock:
            if not self._armed:
                return None
            armed = self._armed[0]
            armed.remaining -= 1
            if armed.remaining <= 0:
                self._armed.pop(0)
            return armed.mode

    def pending(self) -> list[dict[str, str | int]]:
        return [{"mode": a.mode, "count": a.remaining} for a in self._armed]

    async def clear(self) -> None:
        async with self._lock:
            self._armed.clear()


def add_fault_routes(router: APIRouter, faults: FaultPlan) -> None:
    """`POST /faults` (arm the next N calls) and `GET /faults` on a sandbox's control router."""

    @router.post("/faults")
    async def arm_fault(body: FaultRequest) -> dict[str, Any]:
        try:
            await faults.arm(body.mode, body.count)
        except ValueError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc
        return {"armed": faults.pending()}

    @router.get("/faults")
    async def show_faults() -> dict[str, Any]:
        return {"armed": faults.pending(), "modes": sorted(faults.modes)}
