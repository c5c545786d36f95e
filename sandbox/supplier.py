"""A local card-key supplier serving the protocol `peers/supplier.py` speaks.

Keys nobody set answer `unredeemed`, so the demo shop's orders refund without preparation;
tests set `redeemed` or `invalid` through `PUT /sandbox/keys/{id}`, and read back through
`GET /sandbox/keys/{id}` whether (and how often) the service locked a key. Stock and
reservations of fresh keys (for replacements) are in `sandbox/supplier_stock.py`.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from peers.supplier import SIGNATURE_MAX_SKEW_SECONDS, supplier_signature
from sandbox.faults import FaultPlan, add_fault_routes
from sandbox.supplier_claims import add_claim_routes
from sandbox.supplier_stock import add_stock_routes

__all__ = ["FAULT_MODES", "create_supplier_app"]

FAULT_MODES = frozenset({"timeout", "error_5xx"})
KeyStateWord = Literal["unredeemed", "redeemed", "invalid", "locked", "voided"]


@dataclass
class SandboxKey:
    state: str = "unredeemed"
    lock_calls: int = 0
    queries: int = 0
    lock_ids: dict[str, str] = field(default_factory=dict)  # idempotency key -> lock id

    def public(self, card_key_id: str) -> dict[str, Any]:
        return {
            "card_key_id": card_key_id,
            "state": self.state,
            "lock_calls": self.lock_calls,
            "queries": self.queries,
            "idempotency_keys": sorted(self.lock_ids),
        }


class KeyStateRequest(BaseModel):
    state: KeyStateWord


def create_supplier_app(*, api_key: str, secret: str, fault_delay: float = 15.0) -> FastAPI:
    """The sandbox supplier; `fault_delay` is how long a "timeout" fault hangs."""
    keys: dict[str, SandboxKey] = {}
    lock = asyncio.Lock()
    faults = FaultPlan(FAULT_MODES)
    app = FastAPI(title="Sandbox card-key supplier")
    app.state.keys = keys
    app.state.faults = faults

    async def authenticated(request: Request, body: bytes) -> bool:
        timestamp = request.headers.get("X-Timestamp", "")
        try:
            if abs(time.time() - int(timestamp)) > SIGNATURE_MAX_SKEW_SECONDS:
                return False
        except ValueError:
            return False
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        query = request.scope.get("query_string") or b""
        path = raw_path.decode("ascii") + (f"?{query.decode('ascii')}" if query else "")
        expected = supplier_signature(
            secret, method=request.method, path=path, timestamp=timestamp, body=body
        )
        key_ok = hmac.compare_digest(request.headers.get("X-Api-Key", ""), api_key)
        signature_ok = hmac.compare_digest(request.headers.get("X-Signature", ""), expected)
        return key_ok and signature_ok

    def unauthorized() -> JSONResponse:
        return JSONResponse({"error": "invalid_signature"}, status_code=401)

    @app.get("/v1/keys/{card_key_id}")
    async def query_key(card_key_id: str, request: Request) -> JSONResponse:
        if not await authenticated(request, await request.body()):
            return unauthorized()
        fault = await faults.take()
        if fault == "error_5xx":
            return JSONResponse({"error": "internal"}, status_code=503)
        async with lock:
            key = keys.setdefault(card_key_id, SandboxKey())
            key.queries += 1
            document = {"card_key_id": card_key_id, "state": key.state}
        if fault == "timeout":  # answered late, after the fact: like a slow supplier
            await asyncio.sleep(fault_delay)
        return JSONResponse(document)

    @app.post("/v1/keys/{card_key_id}/lock")
    async def lock_key(card_key_id: str, request: Request) -> JSONResponse:
        body = await request.body()
        if not await authenticated(request, body):
            return unauthorized()
        idempotency_key = request.headers.get("Idempotency-Key", "")
        if not idempotency_key:
            return JSONResponse({"error": "idempotency_key_required"}, status_code=400)
        fault = await faults.take()
        if fault == "error_5xx":
            return JSONResponse({"error": "internal"}, status_code=503)
        async with lock:
            key = keys.setdefault(card_key_id, SandboxKey())
            key.lock_calls += 1
            if key.state in ("unredeemed", "locked", "voided"):
                # Locking a locked key is a no-op: whoever locked it, it is out of reach.
                if key.state == "unredeemed":
                    key.state = "locked"
                lock_id = key.lock_ids.setdefault(idempotency_key, f"LCK-{len(key.lock_ids) + 1}")
                status = 200
                document: dict[str, Any] = {
                    "card_key_id": card_key_id,
                    "state": key.state,
                    "lock_id": lock_id,
                }
            else:
                status = 409
                document = {"error": f"key_{key.state}", "state": key.state}
        if fault == "timeout":
            await asyncio.sleep(fault_delay)
        return JSONResponse(document, status_code=status)

    control = APIRouter(prefix="/sandbox", tags=["sandbox"])

    @control.put("/keys/{card_key_id}")
    async def set_key(card_key_id: str, body: KeyStateRequest) -> dict[str, Any]:
        async with lock:
            key = keys.setdefault(card_key_id, SandboxKey())
            key.state = body.state
            return key.public(card_key_id)

    @control.get("/keys/{card_key_id}")
    async def show_key(card_key_id: str) -> dict[str, Any]:
        async with lock:
            return keys.get(card_key_id, SandboxKey()).public(card_key_id)

    add_fault_routes(control, faults)
    # Fresh keys to replace one reported invalid: stock and reservations.
    stock = add_stock_routes(
        app, control, lock=lock, authenticated=authenticated, fault_delay=fault_delay
    )

    @control.post("/reset")
    async def reset() -> dict[str, Any]:
        await faults.clear()
        async with lock:
            keys.clear()
            await stock.clear()
        return {"reset": True}

    app.include_router(control)
    add_claim_routes(app, authenticated, fault_delay)  # claims for invalid keys
    return app
