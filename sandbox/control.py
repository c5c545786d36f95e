"""The `/sandbox` control surface both sandbox gateways share (CONTRACT "Sandbox peers").

No authentication, by design: these servers exist for dev, demos and tests only.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from sandbox.faults import FaultPlan, add_fault_routes
from sandbox.ledger import Ledger, PaymentRecord

__all__ = ["PaymentRequest", "gateway_control_router"]


class PaymentRequest(BaseModel):
    amount: Annotated[int, Field(gt=0, strict=True)]
    channel: str | None = None


def gateway_control_router(ledger: Ledger, faults: FaultPlan) -> APIRouter:
    router = APIRouter(prefix="/sandbox", tags=["sandbox"])

    @router.put("/payments/{transaction_id}")
    async def register_payment(transaction_id: str, body: PaymentRequest) -> dict[str, Any]:
        """Make the gateway know a payment's total so that over-refunds are refused."""
        async with ledger.lock:
            ledger.payments[transaction_id] = PaymentRecord(
                transaction_id=transaction_id, amount=body.amount, channel=body.channel
            )
        return {"transaction_id": transaction_id, "amount": body.amount, "channel": body.channel}

    @router.get("/refunds")
    async def list_refunds(
        transaction_id: Annotated[str | None, Query()] = None,
    ) -> dict[str, Any]:
        async with ledger.lock:
            return {"refunds": ledger.listing(transaction_id)}

    add_fault_routes(router, faults)

    @router.post("/reset")
    async def reset() -> dict[str, Any]:
        await faults.clear()
        await ledger.reset()
        return {"reset": True}

    return router
