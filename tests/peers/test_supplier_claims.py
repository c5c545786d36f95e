"""SupplierClaims against the sandbox supplier: signed like the key API, taken idempotently
by claim id, credited (twice, by a careless supplier) or rejected, and "unknown" on a
timeout or 5xx — the claim found by its id afterwards, never taken twice."""

from __future__ import annotations

import httpx
import pytest

from peers.supplier import SupplierRejected, SupplierUnavailable
from peers.supplier_claims import ClaimSubmission, SupplierClaims, SupplierClaimState
from sandbox.run import SandboxURLs
from tests.peers.conftest import SUPPLIER_KEY, SUPPLIER_SECRET

SUPPLIER = "http://supplier.test"


def claim(claim_id: str, amount: int = 5000) -> ClaimSubmission:
    return ClaimSubmission(
        claim_id=claim_id,
        refund_id=f"rf-{claim_id}",
        card_key_ids=("K-1",),
        amount=amount,
        currency="CNY",
    )


@pytest.fixture
def claims(supplier_http: httpx.AsyncClient) -> SupplierClaims:
    return SupplierClaims(
        supplier_http, url_for=lambda _: SUPPLIER, api_key=SUPPLIER_KEY, secret=SUPPLIER_SECRET
    )


async def test_a_claim_is_taken_once_however_often_it_is_sent(
    claims: SupplierClaims, supplier_http: httpx.AsyncClient
) -> None:
    assert await claims.query("sup-a", "clm_1") is None
    first = await claims.submit("sup-a", claim("clm_1"))
    again = await claims.submit("sup-a", claim("clm_1"))
    assert first == again
    assert first.claim_id == "clm_1" and first.state is SupplierClaimState.PENDING
    shown = (await supplier_http.get("/sandbox/claims/clm_1")).json()
    assert shown["submissions"] == 2 and shown["submitted"]["amount"] == 5000
    assert shown["submitted"]["card_key_ids"] == ["K-1"]

    # The same id for a different claim is refused, not taken as a second claim.
    with pytest.raises(SupplierRejected) as refused:
        await claims.submit("sup-a", claim("clm_1", amount=9999))
    assert refused.value.status == 409 and refused.value.code == "claim_conflict"


async def test_credit_duplicate_credit_and_rejection_are_answers(
    claims: SupplierClaims, supplier_http: httpx.AsyncClient
) -> None:
    await claims.submit("sup-a", claim("clm_c"))
    await supplier_http.post("/sandbox/claims/clm_c/credit", json={})
    credited = await claims.query("sup-a", "clm_c")
    assert credited is not None and credited.state is SupplierClaimState.CREDITED
    assert [c.amount for c in credited.credits] == [5000]

    await supplier_http.post("/sandbox/claims/clm_c/credit", json={})  # the supplier again
    twice = await claims.query("sup-a", "clm_c")
    assert twice is not None and len(twice.credits) == 2
    assert twice.credits[0] == credited.credits[0]  # the first credit is the same one
    assert len({c.credit_id for c in twice.credits}) == 2

    await claims.submit("sup-a", claim("clm_r"))
    await supplier_http.post("/sandbox/claims/clm_r/reject", json={"reason": "key_was_valid"})
    rejected = await claims.query("sup-a", "clm_r")
    assert rejected is not None and rejected.state is SupplierClaimState.REJECTED
    assert rejected.reason == "key_was_valid" and rejected.credits == ()


async def test_a_forged_signature_is_refused(supplier_http: httpx.AsyncClient) -> None:
    forger = SupplierClaims(
        supplier_http, url_for=lambda _: SUPPLIER, api_key=SUPPLIER_KEY, secret="not-it"
    )
    with pytest.raises(SupplierRejected) as refused:
        await forger.submit("sup-a", claim("clm_f"))
    assert refused.value.status == 401
    assert (await supplier_http.get("/sandbox/claims/clm_f")).status_code == 404


async def test_5xx_on_submit_is_unknown_and_takes_nothing(
    claims: SupplierClaims, supplier_http: httpx.AsyncClient
) -> None:
    await supplier_http.post("/sandbox/claims/faults", json={"mode": "error_5xx", "count": 1})
    with pytest.raises(SupplierUnavailable):
        await claims.submit("sup-a", claim("clm_5"))
    assert await claims.query("sup-a", "clm_5") is None  # asked first: not there, send it
    assert (await claims.submit("sup-a", claim("clm_5"))).state is SupplierClaimState.PENDING


async def test_timeout_on_submit_is_unknown_and_the_claim_is_found_by_id(
    servers: SandboxURLs, network_http: httpx.AsyncClient
) -> None:
    claims = SupplierClaims(
        network_http,
        url_for=lambda _: servers.supplier,
        api_key=SUPPLIER_KEY,
        secret=SUPPLIER_SECRET,
    )
    await network_http.post(f"{servers.supplier}/sandbox/claims/faults", json={"mode": "timeout"})
    with pytest.raises(SupplierUnavailable):
        await claims.submit("sup-a", claim("clm_t"))
    # The supplier took it though the answer never came: asking finds it, nothing resent.
    found = await claims.query("sup-a", "clm_t")
    assert found is not None and found.state is SupplierClaimState.PENDING
    shown = (await network_http.get(f"{servers.supplier}/sandbox/claims/clm_t")).json()
    assert shown["submissions"] == 1


async def test_new_claims_can_be_answered_on_arrival(
    claims: SupplierClaims, supplier_http: httpx.AsyncClient
) -> None:
    await supplier_http.put("/sandbox/claims-answer", json={"answer": "reject"})
    rejected = await claims.submit("sup-a", claim("clm_on_r"))
    await supplier_http.put("/sandbox/claims-answer", json={"answer": "credit"})
    credited = await claims.submit("sup-a", claim("clm_on_c", amount=1234))
    await supplier_http.put("/sandbox/claims-answer", json={"answer": "hold"})
    assert rejected.state is SupplierClaimState.REJECTED and rejected.reason == "key_was_valid"
    assert credited.state is SupplierClaimState.CREDITED
    assert [c.amount for c in credited.credits] == [1234]
    # Answered claims keep their answer; the control refuses a rejection after a credit.
    refused = await supplier_http.post("/sandbox/claims/clm_on_c/reject", json={})
    assert refused.status_code == 409
    assert (
        await claims.submit("sup-a", claim("clm_on_c", amount=1234))
    ).credits == credited.credits
