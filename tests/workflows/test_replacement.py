"""RefundWorkflow replacing a key reported invalid (补发), against the fakes: the old key is
voided first, a fresh one reserved and confirmed under the refund's idempotency key, and the
refund ends `replaced` with nothing paid; out of stock it pays as before; a confirmation
that fails for good sends it to a person (the buyer may hold the key: no money on top). The first two
are saved histories (tests/histories/replaced.json, replacement_out_of_stock.json)."""

from __future__ import annotations

from datetime import datetime

from temporalio.testing import WorkflowEnvironment

from domain.types import CommissionState, Outcome, RefundReason, RefundStatus, Remedy
from tests.workflows.fakes import FakeBackend
from tests.workflows.scenarios import LARGE, assert_paid_once, stages
from tests.workflows.support import card_key_order, running_refund
from workflows.messages import ReservationAnswer


def in_stock(now: datetime) -> FakeBackend:
    return FakeBackend(order=card_key_order(now, amount=LARGE))


def out_of_stock(now: datetime) -> FakeBackend:
    backend = in_stock(now)
    backend.reservation = ReservationAnswer(state="out_of_stock")
    return backend


def never_confirmed(now: datetime) -> FakeBackend:
    backend = in_stock(now)
    backend.confirm_fails = True
    return backend


def reserve_refused(now: datetime) -> FakeBackend:
    backend = in_stock(now)
    backend.reserve_fails = True
    return backend


INVALID = RefundReason.INVALID_KEY


async def test_a_fresh_key_replaces_the_old_one_and_nothing_is_paid(
    env: WorkflowEnvironment,
) -> None:
    async with running_refund(
        env, in_stock, name="replaced", reason=INVALID, remedy=Remedy.REPLACEMENT
    ) as refund:
        body = await refund.result()
        backend = refund.backend

        assert body.status is RefundStatus.REPLACED
        assert body.replacement is not None
        assert (body.replacement.card_key_id, body.replacement.replaced_card_key_id) == (
            "RK-1",
            "K-1",
        )
        assert backend.payouts == []
        names = backend.names()
        assert names.index("lock_card_keys") < names.index("reserve_replacement_key")
        (reserved,) = backend.called("reserve_replacement_key")
        (confirmed,) = backend.called("confirm_replacement_key")
        assert reserved.idempotency_key == f"{body.refund_id}-replace"
        assert confirmed.reservation_id == "RSV-1"
        assert stages(body)[-2:] == ["replacement_requested", "replacement_delivered"]
        assert all(c.state is not CommissionState.CLAWED_BACK for c in body.commissions)
        # Written once, at the end, with the fresh key: the database records it from there.
        (report,) = backend.reports
        assert report.body.replacement == body.replacement and report.release_claims


async def test_out_of_stock_pays_as_before(env: WorkflowEnvironment) -> None:
    async with running_refund(
        env,
        out_of_stock,
        name="replacement_out_of_stock",
        reason=INVALID,
        remedy=Remedy.REPLACEMENT,
    ) as refund:
        body = await refund.result()

        assert body.status is RefundStatus.REFUNDED and body.replacement is None
        assert refund.backend.called("confirm_replacement_key") == []
        assert_paid_once(refund.backend, LARGE)
        assert "replacement_unavailable" in stages(body)


async def test_a_confirmation_that_fails_for_good_goes_to_a_person(
    env: WorkflowEnvironment,
) -> None:
    async with running_refund(
        env,
        never_confirmed,
        name="replacement_unconfirmed",
        reason=INVALID,
        remedy=Remedy.REPLACEMENT,
    ) as refund:
        body = await refund.wait_for_status(RefundStatus.PENDING_REVIEW)

        assert body.decision is not None and body.decision.outcome is Outcome.REVIEW
        assert body.decision.rule == "replacement.unconfirmed"
        assert refund.backend.payouts == []
        assert "replacement_unconfirmed" in stages(body)


async def test_a_refused_reservation_is_looked_up_and_then_refunded(
    env: WorkflowEnvironment,
) -> None:
    """A final "no" to the reservation call: before deciding, the reservation is looked up by
    its idempotency key; none was made, so the refund pays and nothing is confirmed."""
    async with running_refund(
        env, reserve_refused, name="replacement_refused", reason=INVALID, remedy=Remedy.REPLACEMENT
    ) as refund:
        body = await refund.result()

        assert body.status is RefundStatus.REFUNDED
        names = refund.backend.names()
        assert names.index("reserve_replacement_key") < names.index("find_replacement_key")
        assert refund.backend.called("confirm_replacement_key") == []
        assert_paid_once(refund.backend, LARGE)
