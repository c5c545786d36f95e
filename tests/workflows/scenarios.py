"""RefundWorkflow end to end on the time-skipping test server, against in-memory fakes of
its activities: the worlds the tests run in (`FakeBackend`s built at the server's time) and
what buyers and reviewers send into them, shared by the test modules of this package. Every
test states what the buyer, reviewer or SRE can observe (the final body, the `status` query)
and what the workflow asked the outside world to do."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from domain.refund import ApproveRequest, Evidence, EvidenceRequest, RefundBody, RejectRequest
from domain.types import EvidenceKind, KeyState, PayoutState
from tests.workflows.fakes import FakeBackend
from tests.workflows.support import KEY_ID, Refund, card_key_order
from workflows.messages import CommissionAction
from workflows.refund import RefundWorkflow

FREEZE = CommissionAction.FREEZE
CLAW_BACK = CommissionAction.CLAW_BACK
RELEASE = CommissionAction.RELEASE
BUYER = "U-42"
# Under the default policy (domain/default_policy.yaml) a revealed card key goes to a person;
# 15 CNY is above the fast lane (10 CNY) but within the review-expiry limit (20 CNY), 50 CNY
# is above it.
SMALL, LARGE = 1500, 5000

Scenario = Callable[[datetime], FakeBackend]


def unredeemed(amount: int = LARGE) -> Scenario:
    """An unredeemed, unrevealed card key: the rules refund it automatically."""
    return lambda now: FakeBackend(order=card_key_order(now, amount=amount))


def revealed(amount: int = LARGE) -> Scenario:
    """A card key the buyer revealed: the rules send the refund to a person."""
    return lambda now: FakeBackend(order=card_key_order(now, amount=amount, key_revealed=True))


def processing(*queries: PayoutState) -> Scenario:
    """The gateway answers "processing" to the refund call, then `queries` to the
    settlement queries (succeeded once they are used up)."""

    def make(now: datetime) -> FakeBackend:
        backend = unredeemed(LARGE)(now)
        backend.send_states = {1: PayoutState.PROCESSING}
        backend.query_states = list(queries)
        return backend

    return make


def redeemed_at_lock(amount: int = LARGE) -> Scenario:
    def make(now: datetime) -> FakeBackend:
        backend = unredeemed(amount)(now)
        backend.lock_states = {KEY_ID: KeyState.REDEEMED}
        return backend

    return make


def approve(reviewer: str = "alice", amount: int | None = None) -> ApproveRequest:
    return ApproveRequest(reviewer=reviewer, note="ok", amount=amount)


def reject() -> RejectRequest:
    return RejectRequest(reviewer="alice", reason="key already revealed")


def evidence(text: str = "the key shows an error") -> EvidenceRequest:
    return EvidenceRequest(evidence=[Evidence(kind=EvidenceKind.TEXT, text=text)])


def stages(body: RefundBody) -> list[str]:
    return [entry.stage for entry in body.timeline]


async def signals_processed(refund: Refund, marker: str) -> RefundBody:
    """Signals are handled in order: once an evidence signal sent after others shows in the
    `status` query, the ones before it were handled too (and ignored, if they changed
    nothing)."""
    await refund.handle.signal(RefundWorkflow.on_evidence, evidence(marker))
    return await refund.wait_for(lambda b: any(e.text == marker for e in b.evidence))


def assert_paid_once(backend: FakeBackend, amount: int) -> None:
    assert [(p.attempt, p.amount) for p in backend.payouts] == [(1, amount)]
