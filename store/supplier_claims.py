"""Claims against suppliers as rows and ledger postings (`domain.supplier_claims` says which
keys and how much; `workers.supplier_claims` talks to the supplier).

The books, per claim (txn ids name the step, so posting a step twice changes nothing):
- opened: the supplier owes the amount (`supplier:{s}:claims`), which the merchant will get
  back (`merchant:{m}:recovery`);
- recovered: the supplier's credit arrives (`clearing:supplier:{s}`) and clears the claim;
  the merchant's recovery becomes its settlement (a short credit: only what came);
- written off: the claim and the merchant's recovery are reversed.

Every state change is a compare-and-set from the states it may come from, so two drivers
(or a driver and a late answer) never settle or write off one claim twice."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.refund import RefundBody
from domain.supplier_claims import ClaimState, SoldKey, confirmed_invalid, plan_claims
from store import ledger
from store.claim_rows import SupplierClaimRow
from store.models import CardKeyRow
from store.upsert import insert_ignore

ACTIVE = (ClaimState.OPEN, ClaimState.SUBMITTED)


@dataclass(frozen=True)
class Claim:
    """One claim, read out of its session."""

    claim_id: str
    refund_id: str
    merchant_id: str
    supplier: str
    card_key_ids: tuple[str, ...]
    currency: str
    amount: int
    state: ClaimState
    attempts: int
    opened_at: datetime

    @classmethod
    def of(cls, row: SupplierClaimRow) -> Claim:
        return cls(
            claim_id=row.claim_id,
            refund_id=row.refund_id,
            merchant_id=row.merchant_id,
            supplier=row.supplier,
            card_key_ids=tuple(row.card_key_ids),
            currency=row.currency,
            amount=row.amount,
            state=row.state,
            attempts=row.attempts,
            opened_at=row.opened_at,
        )


async def open_claims(session: AsyncSession, body: RefundBody, *, now: datetime) -> list[str]:
    """Open the claims a refund stored `refunded` gives rise to, in the caller's transaction
    (the one that stores the refund). Returns the claims opened now (none on a repeat)."""
    if not confirmed_invalid(body):
        return []  # most refunds: no key the supplier called invalid, nothing to read
    rows = await session.execute(
        select(CardKeyRow.item_id, CardKeyRow.card_key_id, CardKeyRow.supplier).where(
            CardKeyRow.order_id == body.order_id
        )
    )
    plans = plan_claims(body, [SoldKey(*r) for r in rows.all()])
    opened = []
    for plan in plans:
        new = await insert_ignore(
            session,
            SupplierClaimRow,
            [
                {
                    "claim_id": plan.claim_id,
                    "refund_id": body.refund_id,
                    "order_id": body.order_id,
                    "merchant_id": body.merchant_id,
                    "supplier": plan.supplier,
                    "card_key_ids": list(plan.card_key_ids),
                    "currency": body.currency,
                    "amount": plan.amount,
                    "state": ClaimState.OPEN,
                    "recovered": 0,
                    "duplicate_credits": 0,
                    "attempts": 0,
                    "opened_at": now,
                    "next_attempt_at": now,
                    "updated_at": now,
                }
            ],
        )
        if not new:
            continue
        await ledger.post(
            session,
            f"supplier-claim:{plan.claim_id}:opened",
            {
                ledger.supplier_claims(plan.supplier): -plan.amount,
                ledger.merchant_recovery(body.merchant_id): plan.amount,
            },
            currency=body.currency,
            now=now,
            refund_id=body.refund_id,
            memo=f"claim on {plan.supplier} for invalid key(s) {', '.join(plan.card_key_ids)}",
        )
        opened.append(plan.claim_id)
    return opened


async def due(
    session: AsyncSession, states: Collection[ClaimState], *, now: datetime, limit: int = 50
) -> list[Claim]:
    """Claims in these states whose next attempt is due, the longest waiting first."""
    rows = await session.scalars(
        select(SupplierClaimRow)
        .where(SupplierClaimRow.state.in_(list(states)), SupplierClaimRow.next_attempt_at <= now)
        .order_by(SupplierClaimRow.next_attempt_at, SupplierClaimRow.claim_id)
        .limit(limit)
    )
    return [Claim.of(r) for r in rows]


async def past_deadline(
    session: AsyncSession, *, opened_before: datetime, limit: int = 50
) -> list[Claim]:
    """Claims still unpaid that were opened before `opened_before` (the write-off deadline)."""
    rows = await session.scalars(
        select(SupplierClaimRow)
        .where(SupplierClaimRow.state.in_(ACTIVE), SupplierClaimRow.opened_at < opened_before)
        .order_by(SupplierClaimRow.opened_at, SupplierClaimRow.claim_id)
        .limit(limit)
    )
    return [Claim.of(r) for r in rows]


async def get(session: AsyncSession, claim_id: str) -> SupplierClaimRow | None:
    return await session.get(SupplierClaimRow, claim_id)


async def _move(
    session: AsyncSession, claim_id: str, came_from: Collection[ClaimState], **values: object
) -> bool:
    result = await session.execute(
        update(SupplierClaimRow)
        .where(SupplierClaimRow.claim_id == claim_id, SupplierClaimRow.state.in_(list(came_from)))
        .values(**values)
    )
    return bool(getattr(result, "rowcount", 0))


async def note_attempt(
    session: AsyncSession, claim_id: str, *, error: str | None, retry_at: datetime, now: datetime
) -> None:
    """A submission or query that got no answer we can act on: try again at `retry_at`."""
    await session.execute(
        update(SupplierClaimRow)
        .where(SupplierClaimRow.claim_id == claim_id, SupplierClaimRow.state.in_(ACTIVE))
        .values(
            attempts=SupplierClaimRow.attempts + 1,
            last_error=(error or "")[:500] or None,
            next_attempt_at=retry_at,
            updated_at=now,
        )
    )


async def poll_later(session: AsyncSession, claim_id: str, *, at: datetime, now: datetime) -> None:
    """The supplier still holds the claim unanswered: ask again at `at`."""
    await _move(
        session,
        claim_id,
        (ClaimState.SUBMITTED,),
        next_attempt_at=at,
        last_error=None,
        updated_at=now,
    )


async def mark_submitted(
    session: AsyncSession, claim_id: str, *, poll_at: datetime, now: datetime
) -> bool:
    """The supplier holds the claim: poll it from `poll_at`."""
    return await _move(
        session,
        claim_id,
        (ClaimState.OPEN,),
        state=ClaimState.SUBMITTED,
        submitted_at=now,
        attempts=SupplierClaimRow.attempts + 1,
        last_error=None,
        next_attempt_at=poll_at,
        updated_at=now,
    )


async def recover(
    session: AsyncSession,
    claim: Claim,
    *,
    credit_id: str,
    credited: int,
    duplicates: int,
    now: datetime,
) -> bool:
    """The supplier credited the claim: settle it once. A claim already settled only learns
    of the supplier's duplicate credits (counted for reconciliation, never posted)."""
    got = max(0, min(credited, claim.amount))
    moved = await _move(
        session,
        claim.claim_id,
        ACTIVE,
        state=ClaimState.RECOVERED,
        recovered=got,
        credit_id=credit_id,
        duplicate_credits=duplicates,
        settled_at=now,
        updated_at=now,
        last_error=None,
    )
    if not moved:
        await session.execute(
            update(SupplierClaimRow)
            .where(
                SupplierClaimRow.claim_id == claim.claim_id,
                SupplierClaimRow.state == ClaimState.RECOVERED,
                SupplierClaimRow.duplicate_credits < duplicates,
            )
            .values(duplicate_credits=duplicates, updated_at=now)
        )
        return False
    await ledger.post(
        session,
        f"supplier-claim:{claim.claim_id}:recovered",
        {
            ledger.supplier_claims(claim.supplier): claim.amount,
            ledger.supplier_clearing(claim.supplier): -got,
            ledger.merchant_recovery(claim.merchant_id): -claim.amount,
            ledger.merchant_settlement(claim.merchant_id): got,
        },
        currency=claim.currency,
        now=now,
        refund_id=claim.refund_id,
        memo=f"claim credited by {claim.supplier} ({credit_id})",
    )
    return True


async def write_off(session: AsyncSession, claim: Claim, *, why: str, now: datetime) -> bool:
    """Give the claim up (the supplier refused it, or the deadline passed): once."""
    moved = await _move(
        session,
        claim.claim_id,
        ACTIVE,
        state=ClaimState.WRITTEN_OFF,
        outcome_note=why[:500],
        settled_at=now,
        updated_at=now,
    )
    if moved:
        await ledger.post(
            session,
            f"supplier-claim:{claim.claim_id}:written-off",
            {
                ledger.supplier_claims(claim.supplier): claim.amount,
                ledger.merchant_recovery(claim.merchant_id): -claim.amount,
            },
            currency=claim.currency,
            now=now,
            refund_id=claim.refund_id,
            memo=f"claim written off: {why}"[:200],
        )
    return moved


# --- figures --------------------------------------------------------------------------------


@dataclass
class ClaimTally:
    count: int = 0
    amount: int = 0


@dataclass
class SupplierClaims:
    """One supplier's claims: open (ours or at the supplier), recovered, written off."""

    supplier: str
    open: ClaimTally = field(default_factory=ClaimTally)
    recovered: ClaimTally = field(default_factory=ClaimTally)
    written_off: ClaimTally = field(default_factory=ClaimTally)
    duplicate_credits: int = 0


async def per_supplier(session: AsyncSession) -> list[SupplierClaims]:
    """Every supplier's claims; amounts are what was claimed, except `recovered`: what came."""
    rows = await session.execute(
        select(
            SupplierClaimRow.supplier,
            SupplierClaimRow.state,
            func.count(),
            func.sum(SupplierClaimRow.amount),
            func.sum(SupplierClaimRow.recovered),
            func.sum(SupplierClaimRow.duplicate_credits),
        ).group_by(SupplierClaimRow.supplier, SupplierClaimRow.state)
    )
    out: dict[str, SupplierClaims] = {}
    for supplier, state, count, claimed, recovered, duplicates in rows.all():
        s = out.setdefault(supplier, SupplierClaims(supplier))
        s.duplicate_credits += int(duplicates or 0)
        if state is ClaimState.RECOVERED:
            tally, amount = s.recovered, int(recovered or 0)
        elif state is ClaimState.WRITTEN_OFF:
            tally, amount = s.written_off, int(claimed or 0)
        else:
            tally, amount = s.open, int(claimed or 0)
        tally.count += int(count)
        tally.amount += amount
    return [out[k] for k in sorted(out)]


async def count_by_state(session: AsyncSession) -> dict[ClaimState, int]:
    counts: dict[ClaimState, int] = defaultdict(int)
    for state, n in (
        await session.execute(
            select(SupplierClaimRow.state, func.count()).group_by(SupplierClaimRow.state)
        )
    ).all():
        counts[state] = int(n)
    return {s: counts[s] for s in ClaimState}
