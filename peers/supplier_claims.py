"""Claims at the card-key supplier: the money back for keys it confirmed invalid.

The protocol (the sandbox in `sandbox/supplier_claims.py` serves the same one), signed and
addressed like the key API of `peers/supplier.py` (same headers, same HMAC, same base URL):

* `POST /v1/claims` with header `Idempotency-Key: {claim_id}` and body `{"claim_id",
  "refund_id", "card_key_ids", "amount", "currency", "reason"}` -> 200 the claim document;
  the same claim again answers the same document (the claim id is the idempotency key); 409
  `{"error": "claim_conflict"}` when that id was used for a different claim.
* `GET /v1/claims/{claim_id}` -> 200 the claim document; 404 `{"error": "claim_not_found"}`.
* The claim document: `{"claim_id", "state": "pending" | "credited" | "rejected", "credits":
  [{"credit_id", "amount"}], "reason"}`; `reason` says why a claim was rejected. A supplier
  that credits twice lists two credits.

A timeout or 5xx on submit is *unknown*, not refused: the supplier may hold the claim. The
driver asks for it by id (`query`) before it submits again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import quote

from peers.supplier import SupplierClient, SupplierUnavailable, _json

__all__ = ["ClaimAnswer", "ClaimSubmission", "Credit", "SupplierClaimState", "SupplierClaims"]


class SupplierClaimState(StrEnum):
    PENDING = "pending"
    CREDITED = "credited"
    REJECTED = "rejected"


@dataclass(frozen=True)
class ClaimSubmission:
    claim_id: str
    refund_id: str
    card_key_ids: tuple[str, ...]
    amount: int
    currency: str

    def document(self) -> dict[str, Any]:
        return {
            "claim_id": self.claim_id,
            "refund_id": self.refund_id,
            "card_key_ids": list(self.card_key_ids),
            "amount": self.amount,
            "currency": self.currency,
            "reason": "invalid_key",
        }


@dataclass(frozen=True)
class Credit:
    credit_id: str
    amount: int


@dataclass(frozen=True)
class ClaimAnswer:
    claim_id: str
    state: SupplierClaimState
    credits: tuple[Credit, ...] = ()
    reason: str = ""


def _answer(document: dict[str, Any]) -> ClaimAnswer:
    """The supplier's claim document, or SupplierUnavailable for one we cannot read (never
    taken as a refusal: a garbled answer proves nothing)."""
    try:
        state = SupplierClaimState(str(document.get("state")))
        credits = tuple(
            Credit(credit_id=str(c["credit_id"]), amount=int(c["amount"]))
            for c in document.get("credits") or []
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise SupplierUnavailable(f"supplier answered an unreadable claim: {exc}") from exc
    if state is SupplierClaimState.CREDITED and not credits:
        raise SupplierUnavailable("supplier answered a credited claim without a credit")
    return ClaimAnswer(
        claim_id=str(document.get("claim_id", "")),
        state=state,
        credits=credits,
        reason=str(document.get("reason") or ""),
    )


class SupplierClaims(SupplierClient):
    """Submits and follows claims; signs and sends like `SupplierClient` (it is one)."""

    async def submit(self, supplier: str, claim: ClaimSubmission) -> ClaimAnswer:
        """Hand the claim to the supplier. Raises SupplierUnavailable when the answer is
        unknown (timeout, 5xx), SupplierRejected when the supplier refused the request."""
        response = await self._send(
            supplier,
            "POST",
            "/v1/claims",
            body=json.dumps(claim.document()).encode(),
            headers={"Idempotency-Key": claim.claim_id},
        )
        self._raise_for_status(response)
        return _answer(_json(response))

    async def query(self, supplier: str, claim_id: str) -> ClaimAnswer | None:
        """The claim as the supplier holds it; None when it holds no claim under this id."""
        response = await self._send(supplier, "GET", f"/v1/claims/{quote(claim_id, safe='')}")
        if response.status_code == 404:
            return None
        self._raise_for_status(response)
        return _answer(_json(response))
