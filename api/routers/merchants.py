"""Merchants' settlement as the platform reports it: what it owes a merchant, what balance
holds set aside while refunds that may pay it back are decided, and what the merchant may
withdraw (`store.holds`). A withdrawal beyond what is available is refused with 409."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api import withdrawals
from api.deps import Platform, ReadSessionDep, SessionDep
from api.openapi import problem_responses
from api.problems import Problem
from api.withdrawals import Withdrawal
from domain.model import Currency, Identifier
from store import holds, ledger

router = APIRouter(prefix="/v1/merchants", tags=["merchants"])


class MerchantBalance(BaseModel):
    merchant_id: str
    currency: str
    settlement: int  # owed to the merchant, held money included
    held: int  # set aside for refunds being decided
    available: int  # what may be withdrawn now: settlement less held, never below 0


@router.get("/{merchant_id}/balance", summary="A merchant's settlement, held and available")
async def balance(
    merchant_id: Identifier,
    session: ReadSessionDep,
    _: Platform,
    currency: Annotated[Currency, Query()] = "CNY",
) -> MerchantBalance:
    found = await holds.merchant_balance(session, merchant_id, currency)
    return MerchantBalance.model_validate(found, from_attributes=True)


@router.post(
    "/{merchant_id}/withdrawals",
    summary="The merchant withdraws settlement (at most what is available)",
    responses=problem_responses(409),
)
async def withdraw(
    merchant_id: Identifier, body: Withdrawal, session: SessionDep, _: Platform
) -> MerchantBalance:
    await withdrawals.withdraw(
        session,
        body,
        kind="merchant-withdrawal",
        owner=merchant_id,
        who="merchant",
        account=ledger.merchant_settlement(merchant_id),  # held money is in another account
        action="merchant.withdrawn",
        refused=lambda available: Problem(
            409,
            "insufficient-available",
            "More than the merchant has available",
            f"amount: only {available} is available (held money is not)",
            errors=[{"field": "amount", "message": f"at most {available}"}],
            available=available,
        ),
    )
    return await balance(merchant_id, session, _, currency=body.currency)
