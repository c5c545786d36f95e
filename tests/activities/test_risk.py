"""RiskChecks: the facts come from the database, the level and signals from the policy."""

from __future__ import annotations

import pytest

from activities.risk import RiskChecks
from domain.model import utcnow
from domain.order import ClientInfo, Order
from domain.policy import CurrentPolicy
from domain.types import RiskLevel
from store.models import BlacklistRow
from tests.activities.conftest import run_activity
from tests.scratch import Scratch, an_order, stored_order, stored_refund, unique
from workflows.messages import RiskRequest


@pytest.fixture
def risk(scratch: Scratch) -> RiskChecks:
    return RiskChecks(scratch.reads, policy=CurrentPolicy().get)


def request_for(order: Order, *, refund_id: str | None = None) -> RiskRequest:
    return RiskRequest(
        refund_id=refund_id or unique("rf"),
        order_id=order.order_id,
        buyer_id=order.buyer_id,
        client=order.client,
        card_key_ids=[k.card_key_id for i in order.items for k in i.card_keys],
        skus=[i.sku for i in order.items],
        at=utcnow(),
    )


async def test_a_first_refund_from_a_clean_buyer_is_low_risk(
    scratch: Scratch, risk: RiskChecks
) -> None:
    order = await stored_order(scratch, an_order(device_id=unique("dev"), ip="198.51.100.7"))
    refund_id = await stored_refund(scratch, order)

    assessed = await run_activity(risk.assess_risk, request_for(order, refund_id=refund_id))

    assert assessed.level is RiskLevel.LOW
    # New to the shop (first order an hour ago), and nothing else: its own refund never counts.
    assert [s.code for s in assessed.signals] == ["buyer.new_account"]


async def test_repeated_refunds_by_buyer_and_device_are_counted(
    scratch: Scratch, risk: RiskChecks
) -> None:
    buyer, device = unique("U"), unique("dev")
    for _ in range(3):
        earlier = await stored_order(scratch, an_order(buyer_id=buyer, device_id=device))
        await stored_refund(scratch, earlier)
    order = await stored_order(scratch, an_order(buyer_id=buyer, device_id=device))

    assessed = await run_activity(risk.assess_risk, request_for(order))

    codes = {s.code for s in assessed.signals}
    assert {"buyer.daily_limit", "device.burst"} <= codes
    assert assessed.level is not RiskLevel.LOW


async def test_a_card_key_refunded_before_is_a_signal(scratch: Scratch, risk: RiskChecks) -> None:
    order = await stored_order(scratch)
    await stored_refund(scratch, order)

    assessed = await run_activity(risk.assess_risk, request_for(order))

    assert "card_key.repeat" in {s.code for s in assessed.signals}


async def test_a_blacklisted_device_blocks(scratch: Scratch, risk: RiskChecks) -> None:
    device = unique("dev")
    async with scratch.sessions.begin() as session:
        session.add(
            BlacklistRow(kind="device", value=device, reason="chargebacks", created_at=utcnow())
        )
    order = await stored_order(scratch, an_order(device_id=device))

    assessed = await run_activity(risk.assess_risk, request_for(order))

    assert assessed.level is RiskLevel.BLOCKED
    assert "blacklist.device" in {s.code for s in assessed.signals}


async def test_the_client_of_the_request_is_what_counts(scratch: Scratch, risk: RiskChecks) -> None:
    device = unique("dev")
    async with scratch.sessions.begin() as session:
        session.add(BlacklistRow(kind="device", value=device, reason="", created_at=utcnow()))
    order = await stored_order(scratch)  # bought without a device; the refund names one

    req = request_for(order).model_copy(update={"client": ClientInfo(device_id=device)})
    assessed = await run_activity(risk.assess_risk, req)

    assert assessed.level is RiskLevel.BLOCKED
