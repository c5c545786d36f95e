"""Drives claims against suppliers (`store.supplier_claims`) to an end: submits the open ones,
polls the submitted ones, settles those the supplier credited, writes off those it refused
or left unpaid past the policy's `claims.write_off_days`.

A worker component beside the outbox dispatcher and the sweeper, not a workflow: a claim is
a row whose every move is one compare-and-set transaction, and waiting weeks for a supplier
is a timestamp in that row (`next_attempt_at`), not a timer in a history. Several drivers may
run at once: a claim moves from the state it was read in or not at all, and the supplier
takes a claim idempotently by its id.

Unknown is not refused: a submission that timed out or got a 5xx leaves the claim open with
its attempt counted, and the next try first asks the supplier for the claim by its id — it
is resubmitted only when the supplier says it holds none."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.model import utcnow
from domain.policy import Policy
from domain.supplier_claims import ClaimState
from peers.supplier import SupplierRejected, SupplierUnavailable
from peers.supplier_claims import ClaimAnswer, ClaimSubmission, SupplierClaims, SupplierClaimState
from store import supplier_claims as claim_rows
from store.db import SessionFactory
from store.supplier_claims import Claim

log = logging.getLogger(__name__)

# A fresh claim is polled every few seconds, an old one about hourly: a supplier answers
# most claims at once or in days, and 1,000 open claims must not mean 100 requests a second.
MIN_POLL = timedelta(seconds=2)
MAX_POLL = timedelta(hours=1)
# After a failed call: 1 s, 2 s, 4 s ... up to 10 minutes.
MAX_BACKOFF = timedelta(minutes=10)


@dataclass
class Round:
    """What one round did, for logs and tests."""

    submitted: int = 0
    recovered: int = 0
    written_off: int = 0
    failed: int = 0


def poll_after(claim: Claim, now: datetime) -> datetime:
    age = now - claim.opened_at
    return now + min(max(MIN_POLL, age / 10), MAX_POLL)


def retry_after(claim: Claim, now: datetime) -> datetime:
    return now + min(timedelta(seconds=2 ** min(claim.attempts, 20)), MAX_BACKOFF)


class ClaimsDriver:
    def __init__(
        self,
        sessions: SessionFactory,
        supplier: SupplierClaims,
        *,
        policy: Callable[[], Policy],
        every_seconds: float = 1.0,
    ) -> None:
        self.sessions = sessions
        self.supplier = supplier
        self.policy = policy
        self.every_seconds = every_seconds

    async def run_forever(self) -> None:
        while True:
            try:
                await self.round()
            except Exception:  # the database may be away for a while: keep the loop alive
                log.exception("supplier claims round failed")
            await asyncio.sleep(self.every_seconds)

    async def round(self, now: datetime | None = None) -> Round:
        """One pass over the claims due at `now` (default: the clock)."""
        now = now or utcnow()
        done = Round()
        # Claims not yet at the supplier first, then the polls: a new claim must not wait
        # behind a page of old ones the supplier has been sitting on.
        for state in (ClaimState.OPEN, ClaimState.SUBMITTED):
            async with self.sessions() as session:
                due = await claim_rows.due(session, (state,), now=now)
            for claim in due:
                await self._advance(claim, now, done)
        await self._write_off_overdue(now, done)
        return done

    async def _advance(self, claim: Claim, now: datetime, done: Round) -> None:
        try:
            answer = None
            if claim.state is ClaimState.SUBMITTED or claim.attempts > 0:
                # Submitted, or a submission whose answer we never got: ask first.
                answer = await self.supplier.query(claim.supplier, claim.claim_id)
            if answer is None:
                answer = await self.supplier.submit(claim.supplier, _submission(claim))
                if claim.state is ClaimState.OPEN:
                    done.submitted += 1
        except (SupplierUnavailable, SupplierRejected) as err:
            done.failed += 1
            log.warning("claim %s at %s: %s", claim.claim_id, claim.supplier, err)
            async with self.sessions.begin() as session:
                await claim_rows.note_attempt(
                    session,
                    claim.claim_id,
                    error=str(err),
                    retry_at=retry_after(claim, now),
                    now=now,
                )
            return
        await self._apply(claim, answer, now, done)

    async def _apply(self, claim: Claim, answer: ClaimAnswer, now: datetime, done: Round) -> None:
        async with self.sessions.begin() as session:
            if answer.state is SupplierClaimState.CREDITED:
                first = answer.credits[0]
                if await claim_rows.recover(
                    session,
                    claim,
                    credit_id=first.credit_id,
                    credited=first.amount,
                    duplicates=len(answer.credits) - 1,
                    now=now,
                ):
                    done.recovered += 1
                if len(answer.credits) > 1:
                    log.warning(
                        "supplier %s credited claim %s %d times; settled once",
                        claim.supplier,
                        claim.claim_id,
                        len(answer.credits),
                    )
            elif answer.state is SupplierClaimState.REJECTED:
                why = f"rejected by the supplier: {answer.reason or 'no reason given'}"
                if await claim_rows.write_off(session, claim, why=why, now=now):
                    done.written_off += 1
            elif claim.state is ClaimState.OPEN:
                await claim_rows.mark_submitted(
                    session, claim.claim_id, poll_at=poll_after(claim, now), now=now
                )
            else:
                await claim_rows.poll_later(
                    session, claim.claim_id, at=poll_after(claim, now), now=now
                )

    async def _write_off_overdue(self, now: datetime, done: Round) -> None:
        """Claims unpaid past the deadline: asked one last time (a credit that came in time
        is taken), then written off — an unreachable supplier does not hold a deadline."""
        days = self.policy().claims.write_off_days
        async with self.sessions() as session:
            overdue = await claim_rows.past_deadline(
                session, opened_before=now - timedelta(days=days)
            )
        for claim in overdue:
            try:
                answer = await self.supplier.query(claim.supplier, claim.claim_id)
            except (SupplierUnavailable, SupplierRejected):
                answer = None
            if answer is not None and answer.state is not SupplierClaimState.PENDING:
                await self._apply(claim, answer, now, done)
                continue
            async with self.sessions.begin() as session:
                if await claim_rows.write_off(
                    session, claim, why=f"not credited within {days} days", now=now
                ):
                    done.written_off += 1


def _submission(claim: Claim) -> ClaimSubmission:
    return ClaimSubmission(
        claim_id=claim.claim_id,
        refund_id=claim.refund_id,
        card_key_ids=claim.card_key_ids,
        amount=claim.amount,
        currency=claim.currency,
    )
