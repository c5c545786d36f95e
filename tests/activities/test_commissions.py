"""Commissions: frozen while a refund is open, clawed back pro rata or released, every move
posted to the ledger once and told to the distributor."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from activities.commissions import Commissions
from domain.model import utcnow
from domain.order import Order
from domain.types import CommissionState
from store import ledger
from store.models import NotificationRow
from tests.activities.conftest import run_activity
from tests.scratch import Scratch, an_order, stored_order, stored_refund
from workflows.messages import CommissionAction, CommissionRequest

FREEZE, CLAW_BACK, RELEASE = (
    CommissionAction.FREEZE,
    CommissionAction.CLAW_BACK,
    CommissionAction.RELEASE,
)


@pytest.fixture
def commissions(scratch: Scratch) -> Commissions:
    return Commissions(scratch.sessions)


async def refund_of(scratch: Scratch) -> tuple[Order, str, str]:
    """A stored order of 5000 with a commission of 500, a refund on it, the distributor."""
    order = await stored_order(scratch)
    return order, await stored_refund(scratch, order), order.commissions[0].beneficiary_id


def move(order: Order, refund_id: str, action: CommissionAction, amount: int) -> CommissionRequest:
    return CommissionRequest(
        refund_id=refund_id,
        order_id=order.order_id,
        merchant_id=order.merchant_id,
        currency=order.currency,
        action=action,
        refund_amount=amount,
        order_amount=order.amount,
    )


async def books(scratch: Scratch, distributor: str, order: Order) -> tuple[int, int, int]:
    """(available, frozen, merchant's settlement)."""
    async with scratch.reads() as session:
        return (
            await ledger.balance(session, ledger.commission_available(distributor)),
            await ledger.balance(session, ledger.commission_frozen(distributor)),
            await ledger.balance(session, ledger.merchant_settlement(order.merchant_id)),
        )


async def test_frozen_then_clawed_back_pro_rata(scratch: Scratch, commissions: Commissions) -> None:
    order, refund_id, who = await refund_of(scratch)
    _, _, owed = await books(scratch, who, order)

    frozen = await run_activity(commissions.move_commissions, move(order, refund_id, FREEZE, 5000))
    again = await run_activity(commissions.move_commissions, move(order, refund_id, FREEZE, 5000))
    assert [(c.amount, c.state) for c in frozen.commissions] == [(500, CommissionState.FROZEN)]
    assert again == frozen
    assert await books(scratch, who, order) == (0, 500, owed)

    # A reviewer approved 3000 of 5000: 300 of the 500 goes back to the merchant.
    clawed = await run_activity(
        commissions.move_commissions, move(order, refund_id, CLAW_BACK, 3000)
    )
    assert [(c.amount, c.state) for c in clawed.commissions] == [(300, CommissionState.CLAWED_BACK)]
    assert await books(scratch, who, order) == (200, 0, owed + 300)

    async with scratch.reads() as session:
        told = (
            await session.scalars(
                select(NotificationRow.status)
                .where(NotificationRow.refund_id == refund_id)
                .order_by(NotificationRow.id)
            )
        ).all()
    assert told == ["frozen", "clawed_back"]


async def test_released_and_frozen_again_on_appeal(
    scratch: Scratch, commissions: Commissions
) -> None:
    order, refund_id, who = await refund_of(scratch)

    await run_activity(commissions.move_commissions, move(order, refund_id, FREEZE, 5000))
    released = await run_activity(
        commissions.move_commissions, move(order, refund_id, RELEASE, 5000)
    )
    assert released.commissions[0].state is CommissionState.RELEASED
    assert (await books(scratch, who, order))[:2] == (500, 0)

    # The buyer appeals: frozen again, under a ledger transaction of its own.
    refrozen = await run_activity(
        commissions.move_commissions, move(order, refund_id, FREEZE, 5000)
    )
    assert refrozen.commissions[0].state is CommissionState.FROZEN
    assert (await books(scratch, who, order))[:2] == (0, 500)


async def test_clawing_back_withdrawn_commission_is_a_debt(
    scratch: Scratch, commissions: Commissions
) -> None:
    order, refund_id, who = await refund_of(scratch)
    async with scratch.sessions.begin() as session:
        await ledger.post(
            session,
            f"withdrawal:{who}:W-1",
            {ledger.commission_available(who): -500, ledger.clearing("withdrawals"): 500},
            currency="CNY",
            now=utcnow(),
        )

    await run_activity(commissions.move_commissions, move(order, refund_id, FREEZE, 5000))
    clawed = await run_activity(
        commissions.move_commissions, move(order, refund_id, CLAW_BACK, 5000)
    )

    assert [(c.amount, c.state) for c in clawed.commissions] == [(500, CommissionState.DEBT)]
    assert (await books(scratch, who, order))[:2] == (-500, 0)


async def test_an_order_without_commissions_moves_nothing(
    scratch: Scratch, commissions: Commissions
) -> None:
    order = await stored_order(scratch, an_order(commission=None))
    refund_id = await stored_refund(scratch, order)

    answer = await run_activity(commissions.move_commissions, move(order, refund_id, FREEZE, 5000))

    assert answer.commissions == []
