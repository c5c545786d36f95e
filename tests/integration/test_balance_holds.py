"""Balance holds through the whole system (API → Temporal → worker → database): while a
refund of a balance-paid order is decided its amount is held from the merchant's settlement
and cannot be withdrawn; the balance payout spends the hold, an end without that payout
releases it (`store.holds`)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from store import ledger
from store.models import LedgerEntryRow
from tests.integration.bad_input import problem
from tests.integration.test_money import _session
from tests.system import System, card_key_order, course_order, unique

pytestmark = pytest.mark.integration


def of_merchant(order: dict[str, Any], merchant: str) -> dict[str, Any]:
    """The order sold by a merchant of the test's own, without commissions (so the merchant's
    settlement is exactly what the buyer paid)."""
    return {**order, "merchant_id": merchant, "commissions": []}


def split(order: dict[str, Any], *, from_balance: int) -> dict[str, Any]:
    """The order paid through its gateway, but `from_balance` of it from the platform balance."""
    [paid] = order["payments"]
    rest = {**paid, "amount": paid["amount"] - from_balance}
    balance = {
        **paid,
        "payment_id": "P-2",
        "channel": "balance",
        "transaction_id": unique("T"),
        "amount": from_balance,
    }
    return {**order, "payments": [rest, balance]}


async def merchant_balance(system: System, merchant: str) -> dict[str, Any]:
    r = await system.get(f"/v1/merchants/{merchant}/balance")
    assert r.status_code == 200, r.text
    return dict(r.json())


def figures(found: dict[str, Any]) -> tuple[int, int, int]:
    return found["settlement"], found["held"], found["available"]


async def entries(system: System, txn_id: str) -> dict[str, int]:
    async with _session(system) as session:
        rows = await session.execute(
            select(LedgerEntryRow.account, LedgerEntryRow.amount).where(
                LedgerEntryRow.txn_id == txn_id
            )
        )
        return {account: amount for account, amount in rows.all()}


async def buyer_balance(system: System, order: dict[str, Any]) -> int:
    async with _session(system) as session:
        return await ledger.balance(session, ledger.buyer_balance(order["buyer_id"]))


async def in_review(system: System, order: dict[str, Any]) -> str:
    refund_id = await system.refund_id(order, reason="changed_mind")
    await system.wait_status(refund_id, "pending_review")
    return refund_id


async def test_an_automatic_balance_refund_spends_its_hold_and_debits_the_merchant_once(
    system: System,
) -> None:
    merchant = unique("M")
    order = await system.record(of_merchant(card_key_order(channel="balance"), merchant))
    assert figures(await merchant_balance(system, merchant)) == (5000, 0, 5000)

    refund_id = await system.refund_id(order)
    body = await system.wait_status(refund_id, "refunded")

    assert [(p["channel"], p["state"]) for p in body["payouts"]] == [("balance", "succeeded")]
    settlement = ledger.merchant_settlement(merchant)
    held = ledger.merchant_held(merchant)
    assert await entries(system, f"refund:{refund_id}:hold") == {settlement: -5000, held: 5000}
    # The payout takes the held money: the settlement is not debited a second time.
    assert await entries(system, f"refund:{refund_id}:payout:1") == {
        held: -5000,
        ledger.buyer_balance(order["buyer_id"]): 5000,
    }
    assert await entries(system, f"refund:{refund_id}:release") == {}
    assert figures(await merchant_balance(system, merchant)) == (0, 0, 0)
    assert await buyer_balance(system, order) == 5000


async def test_a_rejected_refund_releases_its_hold_and_an_appeal_holds_it_again(
    system: System,
) -> None:
    merchant = unique("M")
    order = await system.record(of_merchant(course_order(channel="balance"), merchant))
    refund_id = await in_review(system, order)
    assert figures(await merchant_balance(system, merchant)) == (19900, 19900, 0)

    r = await system.post(
        f"/v1/refunds/{refund_id}/reject",
        {"reviewer": "bob", "reason": "course watched"},
        role="reviewer",
    )
    assert r.status_code == 202, r.text
    await system.wait_status(refund_id, "rejected")
    assert figures(await merchant_balance(system, merchant)) == (19900, 0, 19900)

    r = await system.post(
        f"/v1/refunds/{refund_id}/appeal", {"buyer_id": order["buyer_id"], "text": "视频无法播放"}
    )
    assert r.status_code == 202, r.text
    await system.wait_status(refund_id, "pending_review")
    assert figures(await merchant_balance(system, merchant)) == (19900, 19900, 0)

    await system.post(f"/v1/refunds/{refund_id}/approve", {"reviewer": "carol"}, role="reviewer")
    await system.wait_status(refund_id, "refunded")
    assert figures(await merchant_balance(system, merchant)) == (0, 0, 0)
    assert await buyer_balance(system, order) == 19900


async def test_held_money_cannot_be_withdrawn_even_by_two_withdrawals_at_once(
    system: System,
) -> None:
    merchant = unique("M")
    await system.record(of_merchant(card_key_order(channel="alipay", amount=6000), merchant))
    order = await system.record(of_merchant(course_order(channel="balance"), merchant))
    refund_id = await in_review(system, order)
    assert figures(await merchant_balance(system, merchant)) == (25900, 19900, 6000)

    too_much = await system.post(
        f"/v1/merchants/{merchant}/withdrawals", {"withdrawal_id": "W-1", "amount": 6001}
    )
    refused = problem(too_much, 409)
    assert refused["errors"] == [{"field": "amount", "message": "at most 6000"}]
    assert refused["available"] == 6000

    # Two withdrawals of 4000 at the same instant: one is paid, the other finds 2000 left.
    answers = await asyncio.gather(
        *(
            system.post(
                f"/v1/merchants/{merchant}/withdrawals", {"withdrawal_id": w, "amount": 4000}
            )
            for w in ("W-2", "W-3")
        )
    )
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    assert figures(await merchant_balance(system, merchant)) == (21900, 19900, 2000)
    paid = next(w for w, a in zip(("W-2", "W-3"), answers, strict=True) if a.status_code == 200)
    repeated = await system.post(
        f"/v1/merchants/{merchant}/withdrawals", {"withdrawal_id": paid, "amount": 4000}
    )
    assert repeated.status_code == 200 and repeated.json()["available"] == 2000, "taken once"

    # The refund is still paid in full from what was held.
    await system.post(f"/v1/refunds/{refund_id}/approve", {"reviewer": "alice"}, role="reviewer")
    await system.wait_status(refund_id, "refunded")
    assert figures(await merchant_balance(system, merchant)) == (2000, 0, 2000)


async def test_only_the_balance_part_of_a_mixed_payment_is_held(system: System) -> None:
    merchant = unique("M")
    order = await system.record(
        of_merchant(split(course_order(channel="wechat"), from_balance=4900), merchant)
    )
    refund_id = await in_review(system, order)
    assert figures(await merchant_balance(system, merchant)) == (19900, 4900, 15000)

    await system.post(f"/v1/refunds/{refund_id}/approve", {"reviewer": "alice"}, role="reviewer")
    body = await system.wait_status(refund_id, "refunded")

    assert [(p["channel"], p["amount"]) for p in body["payouts"]] == [
        ("wechat", 15000),
        ("balance", 4900),
    ]
    held = ledger.merchant_held(merchant)
    assert (await entries(system, f"refund:{refund_id}:payout:1"))[
        ledger.merchant_settlement(merchant)
    ] == -15000
    assert (await entries(system, f"refund:{refund_id}:payout:2"))[held] == -4900
    assert figures(await merchant_balance(system, merchant)) == (0, 0, 0)
    checks = (await system.get("/v1/admin/checks", role="admin")).json()
    assert checks["ledger_balanced"] and checks["money_conserved"], checks


async def test_longest_merchant_and_withdrawal_ids(system: System) -> None:
    """Both ids name the withdrawal's ledger transaction, which must fit its column."""
    merchant = "M" * 128
    await system.record(of_merchant(card_key_order(channel="alipay", amount=5000), merchant))
    path = f"/v1/merchants/{merchant}/withdrawals"
    problem(
        await system.post(path, {"withdrawal_id": "W" * 128, "amount": 100}), 422, "withdrawal_id"
    )
    fits = "W" * (200 - len(f"merchant-withdrawal:{merchant}:"))
    for _ in range(2):  # the same withdrawal twice is taken once
        r = await system.post(path, {"withdrawal_id": fits, "amount": 100})
        assert r.status_code == 200, r.text
        assert figures(r.json()) == (4900, 0, 4900)


@pytest.mark.parametrize("currency", ["cny", "CNYX", "", "%00"])
async def test_bad_balance_currency_is_422(system: System, currency: str) -> None:
    problem(await system.get(f"/v1/merchants/M-7/balance?currency={currency}"), 422, "currency")


async def test_merchant_balances_are_for_the_platform_and_admins(system: System) -> None:
    r = await system.get(f"/v1/merchants/{unique('M')}/balance", role="reviewer")
    problem(r, 403)
    r = await system.get(f"/v1/merchants/{unique('M')}/balance", role="admin")
    assert r.status_code == 200 and figures(r.json()) == (0, 0, 0)
    r = await system.post(
        f"/v1/merchants/{unique('M')}/withdrawals", {"withdrawal_id": "W", "amount": 0}
    )
    problem(r, 422, "amount")
