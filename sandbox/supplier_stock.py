"""The sandbox supplier's stock and reservations: fresh keys for replacing one reported
invalid (补发), served as `peers/supplier.py` speaks them.

A SKU has no stock until a test or demo sets some (`PUT /sandbox/stock/{sku}`
`{"available": 3}`); a reservation takes a key from it, a release puts it back, a
confirmation hands it over for good. Reservations honour their idempotency key, so a
repeated call (after a timeout) is the same reservation, and `GET /sandbox/stock/{sku}` shows
every reservation made, for tests to count. `POST /sandbox/reservations/faults` arms faults
for the reservation calls only: `timeout` (reserved, answered late), `error_5xx` (nothing
done) and `out_of_stock` (the last key went to someone else meanwhile).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from sandbox.faults import FaultPlan, add_fault_routes

__all__ = ["RESERVATION_FAULT_MODES", "Stock", "add_stock_routes"]

RESERVATION_FAULT_MODES = frozenset({"timeout", "error_5xx", "out_of_stock"})


@dataclass
class SandboxReservation:
    reservation_id: str
    idempotency_key: str
    sku: str
    card_key_id: str
    order_id: str
    replaces: str
    state: str = "reserved"  # reserved | confirmed | released
    confirm_calls: int = 0
    buyer_id: str | None = None

    def public(self) -> dict[str, Any]:
        return {
            "reservation_id": self.reservation_id,
            "idempotency_key": self.idempotency_key,
            "sku": self.sku,
            "card_key_id": self.card_key_id,
            "order_id": self.order_id,
            "replaces": self.replaces,
            "state": self.state,
            "confirm_calls": self.confirm_calls,
            "buyer_id": self.buyer_id,
        }


@dataclass
class Stock:
    faults: FaultPlan = field(default_factory=lambda: FaultPlan(RESERVATION_FAULT_MODES))
    available: dict[str, int] = field(default_factory=dict)
    reservations: dict[str, SandboxReservation] = field(default_factory=dict)  # by id
    by_key: dict[str, str] = field(default_factory=dict)  # idempotency key -> reservation id
    reserve_calls: int = 0

    async def clear(self) -> None:
        await self.faults.clear()
        self.available.clear()
        self.reservations.clear()
        self.by_key.clear()
        self.reserve_calls = 0

    def of_sku(self, sku: str) -> dict[str, Any]:
        return {
            "sku": sku,
            "available": self.available.get(sku, 0),
            "reservations": [r.public() for r in self.reservations.values() if r.sku == sku],
        }


class StockRequest(BaseModel):
    available: Annotated[int, Field(ge=0, le=1_000_000)]


Authenticated = Callable[[Request, bytes], Awaitable[bool]]


def add_stock_routes(
    app: FastAPI,
    control: APIRouter,
    *,
    lock: asyncio.Lock,
    authenticated: Authenticated,
    fault_delay: float,
) -> Stock:
    """The reservation endpoints on `app`, the stock controls on `control` (`/sandbox`)."""
    stock = Stock()
    faults = stock.faults
    app.state.stock = stock

    def refused(status: int, error: str, **more: Any) -> JSONResponse:
        return JSONResponse({"error": error, **more}, status_code=status)

    @app.post("/v1/reservations")
    async def reserve(request: Request) -> JSONResponse:
        body = await request.body()
        if not await authenticated(request, body):
            return refused(401, "invalid_signature")
        idempotency_key = request.headers.get("Idempotency-Key", "")
        if not idempotency_key:
            return refused(400, "idempotency_key_required")
        try:
            asked = StockAsk.model_validate_json(body)
        except ValueError:
            return refused(400, "malformed")
        fault = await faults.take()
        if fault == "error_5xx":
            return refused(503, "internal")
        async with lock:
            stock.reserve_calls += 1
            known = stock.by_key.get(idempotency_key)
            if known is not None:
                document = stock.reservations[known].public()
            elif fault == "out_of_stock" or stock.available.get(asked.sku, 0) <= 0:
                return refused(409, "out_of_stock")
            else:
                stock.available[asked.sku] -= 1
                n = len(stock.reservations) + 1
                made = SandboxReservation(
                    reservation_id=f"RSV-{n}",
                    idempotency_key=idempotency_key,
                    sku=asked.sku,
                    card_key_id=f"RK-{asked.sku}-{n}",
                    order_id=asked.order_id,
                    replaces=asked.replaces,
                )
                stock.reservations[made.reservation_id] = made
                stock.by_key[idempotency_key] = made.reservation_id
                document = made.public()
        if fault == "timeout":  # reserved, but answered after the caller gave up
            await asyncio.sleep(fault_delay)
        return JSONResponse(document)

    @app.get("/v1/reservations")
    async def find(request: Request, idempotency_key: str = "") -> JSONResponse:
        if not await authenticated(request, b""):
            return refused(401, "invalid_signature")
        async with lock:
            known = stock.by_key.get(idempotency_key)
            if known is None:
                return refused(404, "reservation_not_found")
            return JSONResponse(stock.reservations[known].public())

    @app.post("/v1/reservations/{reservation_id}/confirm")
    async def confirm(reservation_id: str, request: Request) -> JSONResponse:
        body = await request.body()
        if not await authenticated(request, body):
            return refused(401, "invalid_signature")
        try:
            to = ConfirmAsk.model_validate_json(body)
        except ValueError:
            return refused(400, "malformed")
        async with lock:
            made = stock.reservations.get(reservation_id)
            if made is None:
                return refused(404, "reservation_not_found")
            made.confirm_calls += 1
            if made.state == "released":
                return refused(409, "reservation_released", **made.public())
            made.state, made.buyer_id = "confirmed", to.buyer_id
            return JSONResponse(made.public())

    @app.post("/v1/reservations/{reservation_id}/release")
    async def release(reservation_id: str, request: Request) -> JSONResponse:
        if not await authenticated(request, await request.body()):
            return refused(401, "invalid_signature")
        async with lock:
            made = stock.reservations.get(reservation_id)
            if made is None:
                return refused(404, "reservation_not_found")
            if made.state == "confirmed":
                return refused(409, "reservation_confirmed", **made.public())
            if made.state == "reserved":
                made.state = "released"
                stock.available[made.sku] = stock.available.get(made.sku, 0) + 1
            return JSONResponse(made.public())

    @control.put("/stock/{sku}")
    async def set_stock(sku: str, body: StockRequest) -> dict[str, Any]:
        async with lock:
            stock.available[sku] = body.available
            return stock.of_sku(sku)

    @control.get("/stock/{sku}")
    async def show_stock(sku: str) -> dict[str, Any]:
        async with lock:
            return stock.of_sku(sku)

    reservation_faults = APIRouter(prefix="/reservations")
    add_fault_routes(reservation_faults, faults)
    control.include_router(reservation_faults)
    return stock


class StockAsk(BaseModel):
    sku: Annotated[str, Field(min_length=1, max_length=128)]
    order_id: Annotated[str, Field(min_length=1, max_length=128)]
    replaces: Annotated[str, Field(min_length=1, max_length=128)]


class ConfirmAsk(BaseModel):
    order_id: Annotated[str, Field(min_length=1, max_length=128)]
    buyer_id: Annotated[str, Field(min_length=1, max_length=128)]
