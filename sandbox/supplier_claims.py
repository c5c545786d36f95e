"""The sandbox supplier's claims: the protocol `peers/supplier_claims.py` speaks, added to the
supplier's app (`add_claim_routes`, from `sandbox/supplier.py`) with its signature check and
its own armed faults (`POST /sandbox/claims/faults`: `timeout` answers after the claim is
taken, `error_5xx` before).

Claims are taken idempotently by claim id and wait (`pending`) until a test decides:
`POST /sandbox/claims/{id}/credit` credits it — call it twice for a supplier that credits
twice —, `POST /sandbox/claims/{id}/reject` refuses it; `GET /sandbox/claims/{id}` shows it
with how often it was submitted and asked about. `PUT /sandbox/claims-answer` makes new
claims credited or rejected on arrival (the demo's), `hold` (the default) leaves them pending.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from sandbox.faults import FaultPlan, add_fault_routes

__all__ = ["CLAIM_FAULT_MODES", "add_claim_routes"]

CLAIM_FAULT_MODES = frozenset({"timeout", "error_5xx"})

Authenticated = Callable[[Request, bytes], Awaitable[bool]]


@dataclass
class SandboxClaim:
    submitted: dict[str, Any]
    state: str = "pending"
    credits: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""
    submissions: int = 0

    def document(self, claim_id: str) -> dict[str, Any]:
        return {
            "claim_id": claim_id,
            "state": self.state,
            "credits": list(self.credits),
            "reason": self.reason,
        }

    def credit(self, claim_id: str, amount: int | None) -> None:
        self.state = "credited"
        n = len(self.credits) + 1
        self.credits.append(
            {
                "credit_id": f"CR-{claim_id[-8:]}-{n}",
                "amount": self.submitted.get("amount", 0) if amount is None else amount,
            }
        )


class CreditRequest(BaseModel):
    amount: int | None = Field(default=None, ge=0)  # default: the amount claimed


class RejectRequest(BaseModel):
    reason: str = "key_was_valid"


class AnswerRequest(BaseModel):
    answer: Literal["hold", "credit", "reject"]


def add_claim_routes(app: FastAPI, authenticated: Authenticated, fault_delay: float) -> None:
    """The claim API and its control endpoints on the sandbox supplier's `app`. Claims have
    faults of their own (`POST /sandbox/claims/faults`): the worker's claims loop polls in the
    background and must not take a fault a test armed for a key query, nor the reverse."""
    faults = FaultPlan(CLAIM_FAULT_MODES)
    claims: dict[str, SandboxClaim] = {}
    asked: dict[str, int] = {}  # GETs per claim id, also of ids not held (a miss is asked too)
    answer: dict[str, str] = {"on_arrival": "hold"}
    lock = asyncio.Lock()
    app.state.claims = claims

    async def admitted(request: Request, body: bytes) -> tuple[JSONResponse | None, str | None]:
        """A refusal (bad signature, an armed 5xx) or None, and the armed fault taken."""
        if not await authenticated(request, body):
            return JSONResponse({"error": "invalid_signature"}, status_code=401), None
        fault = await faults.take()
        if fault == "error_5xx":
            return JSONResponse({"error": "internal"}, status_code=503), fault
        return None, fault

    @app.post("/v1/claims")
    async def submit_claim(request: Request) -> JSONResponse:
        body = await request.body()
        refused, fault = await admitted(request, body)
        if refused is not None:
            return refused
        claim_id = request.headers.get("Idempotency-Key", "")
        try:
            submitted = await request.json()
        except ValueError:
            submitted = None
        if not isinstance(submitted, dict) or not claim_id:
            return JSONResponse({"error": "bad_claim"}, status_code=400)
        if submitted.get("claim_id") != claim_id:
            return JSONResponse({"error": "claim_id_mismatch"}, status_code=400)
        async with lock:
            claim = claims.get(claim_id)
            if claim is None:
                claim = claims[claim_id] = SandboxClaim(submitted=submitted)
                if answer["on_arrival"] == "credit":
                    claim.credit(claim_id, None)
                elif answer["on_arrival"] == "reject":
                    claim.state, claim.reason = "rejected", "key_was_valid"
            elif claim.submitted != submitted:
                return JSONResponse({"error": "claim_conflict"}, status_code=409)
            claim.submissions += 1
            document = claim.document(claim_id)
        if fault == "timeout":  # taken, but answered too late: the caller cannot know
            await asyncio.sleep(fault_delay)
        return JSONResponse(document)

    @app.get("/v1/claims/{claim_id}")
    async def query_claim(claim_id: str, request: Request) -> JSONResponse:
        refused, fault = await admitted(request, await request.body())
        if refused is not None:
            return refused
        async with lock:
            asked[claim_id] = asked.get(claim_id, 0) + 1
            claim = claims.get(claim_id)
            if claim is None:
                return JSONResponse({"error": "claim_not_found"}, status_code=404)
            document = claim.document(claim_id)
        if fault == "timeout":
            await asyncio.sleep(fault_delay)
        return JSONResponse(document)

    control = APIRouter(prefix="/sandbox", tags=["sandbox"])

    def held(claim_id: str) -> SandboxClaim:
        claim = claims.get(claim_id)
        if claim is None:
            raise HTTPException(status_code=404, detail="claim_not_found")
        return claim

    def shown(claim_id: str) -> dict[str, Any]:
        claim = held(claim_id)
        return {
            **claim.document(claim_id),
            "submitted": claim.submitted,
            "submissions": claim.submissions,
            "queries": asked.get(claim_id, 0),
        }

    # Before `/claims/{claim_id}`, which would take "faults" for a claim id.
    claim_faults = APIRouter(prefix="/claims")
    add_fault_routes(claim_faults, faults)
    control.include_router(claim_faults)

    @control.get("/claims/{claim_id}")
    async def show_claim(claim_id: str) -> dict[str, Any]:
        async with lock:
            return shown(claim_id)

    @control.post("/claims/{claim_id}/credit")
    async def credit_claim(claim_id: str, body: CreditRequest | None = None) -> dict[str, Any]:
        async with lock:
            held(claim_id).credit(claim_id, body.amount if body else None)
            return shown(claim_id)

    @control.post("/claims/{claim_id}/reject")
    async def reject_claim(claim_id: str, body: RejectRequest | None = None) -> dict[str, Any]:
        async with lock:
            claim = held(claim_id)
            if claim.state == "credited":
                raise HTTPException(status_code=409, detail="claim_credited")
            claim.state, claim.reason = "rejected", (body.reason if body else "key_was_valid")
            return shown(claim_id)

    @control.put("/claims-answer")
    async def answer_on_arrival(body: AnswerRequest) -> dict[str, str]:
        answer["on_arrival"] = body.answer
        return dict(answer)

    app.include_router(control)
