"""The `/sandbox` control surface both sandbox gateways share (CONTRACT "Sandbox peers").

No authentication, by design: these servers exist for dev, demos and tests only.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from sandbox.faults import FaultPlan, add_fault_routes
from sandbox.ledger import Ledger, PaymentRecord

__all__ = ["PaymentRequest", "RefundStatusRequest", "gateway_control_router"]


class PaymentRequest(BaseModel):
    amount: Annotated[int, Field(gt=0, strict=True)]
    channel: str | None = None
    out_trade_no: str | None = None  # the merchant's number, when refunds name the trade by it


class RefundStatusRequest(BaseModel):
    status: Literal["SUCCESS", "PROCESSING", "CLOSED", "ABNORMAL"]
    # Needed only when two payments have refunds under the same number (Alipay's
    # out_request_no is unique per trade, not per app).
    transaction_id: str | None = None


def gateway_control_router(ledger: Ledger, faults: FaultPlan) -> APIRouter:
    router = APIRouter(prefix="/sandbox", tags=["sandbox"])

    @router.put("/payments/{transaction_id}")
    async def register_payment(transaction_id: str, body: PaymentRequest) -> dict[str, Any]:
        """Make the gateway know a payment's total so that over-refunds are refused."""
        async with ledger.lock:
            ledger.payments[transaction_id] = PaymentRecord(
                transaction_id=transaction_id,
                amount=body.amount,
                channel=body.channel,
                out_trade_no=body.out_trade_no,
            )
        return {
            "transaction_id": transaction_id,
            "amount": body.amount,
            "channel": body.channel,
            "out_trade_no": body.out_trade_no,
        }

    @router.get("/refunds")
    async def list_refunds(
        transaction_id: Annotated[str | None, Query()] = None,
    ) -> dict[str, Any]:
        async with ledger.lock:
            return {"refunds": ledger.listing(transaction_id)}

    @router.put("/refunds/{out_refund_no}")
    async def set_refund_status(out_refund_no: str, body: RefundStatusRequest) -> dict[str, Any]:
        """Play the gateway's back office: settle a refund a fault left in progress (Alipay
        `no_status`), close one, or mark it ABNORMAL. Final statuses are announced (WeChat
        notifies) exactly as if the gateway had settled the refund itself."""
        async with ledger.lock:
            found = ledger.find(out_refund_no, body.transaction_id)
            if not found:
                raise HTTPException(status_code=404, detail=f"no refund {out_refund_no!r}")
            if len(found) > 1:
                raise HTTPException(
                    status_code=409, detail="several payments have this refund: name one"
                )
            [record] = found
            ledger.force(record, body.status)
            return record.public()

    add_fault_routes(router, faults)

    @router.post("/reset")
    async def reset() -> dict[str, Any]:
        await faults.clear()
        await ledger.reset()
        return {"reset": True}

    return router
