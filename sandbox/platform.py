"""A stand-in for the shop platform's webhook receiver (CONTRACT "Platform notifications").

It checks `X-Refund-Signature` exactly as an integrator should (401 on a mismatch, so a
signing bug in the service is loud) and keeps every delivery for tests and the demo to read.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse

from peers.webhooks import SIGNATURE_HEADER, verify_webhook
from sandbox.faults import FaultPlan, add_fault_routes

__all__ = ["FAULT_MODES", "create_platform_app"]

FAULT_MODES = frozenset({"error_5xx"})


def create_platform_app(*, secret: str) -> FastAPI:
    deliveries: list[dict[str, Any]] = []
    lock = asyncio.Lock()
    faults = FaultPlan(FAULT_MODES)
    app = FastAPI(title="Sandbox shop platform")
    app.state.deliveries = deliveries
    app.state.faults = faults

    @app.post("/webhooks/refunds")
    async def receive(request: Request) -> JSONResponse:
        body = await request.body()
        if not verify_webhook(secret, body, request.headers.get(SIGNATURE_HEADER)):
            return JSONResponse({"error": "invalid_signature"}, status_code=401)
        if await faults.take() == "error_5xx":
            return JSONResponse({"error": "unavailable"}, status_code=503)
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        payload = document if isinstance(document, dict) else {}
        async with lock:
            deliveries.append(
                {
                    "sequence": len(deliveries) + 1,
                    "received_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                    "refund_id": payload.get("refund_id"),
                    "status": payload.get("status"),
                    "body": document,
                }
            )
        return JSONResponse({"received": True})

    control = APIRouter(prefix="/sandbox", tags=["sandbox"])

    @control.get("/webhooks")
    async def list_webhooks(
        refund_id: Annotated[str | None, Query()] = None,
    ) -> dict[str, Any]:
        async with lock:
            return {
                "deliveries": [
                    d for d in deliveries if refund_id is None or d["refund_id"] == refund_id
                ]
            }

    add_fault_routes(control, faults)

    @control.post("/reset")
    async def reset() -> dict[str, Any]:
        await faults.clear()
        async with lock:
            deliveries.clear()
        return {"reset": True}

    app.include_router(control)
    return app
