"""Merchants' settlement as the platform reports it: what it owes a merchant, what balance
holds set aside while refunds that may pay it back are decided, and what the merchant may
withdraw (`store.holds`). A withdrawal beyond what is available is refused with 409."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import Platform, ReadSessionDep, SessionDep
from api.openapi import problem_responses
from api.problems import Problem, field_error
from domain.model import Currency, Identifier, Model, PositiveAmount, utcnow
from store import holds, ledger

router = APIRouter(prefix="/v1/merchants", tags=["merchants"])


class MerchantWithdrawal(Model):
    withdrawal_id: Identifier  # the platform's id: the same withdrawal repeated is one
    amount: PositiveAmount
    currency: Currency = "CNY"


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
    merchant_id: Identifier, body: MerchantWithdrawal, session: SessionDep, _: Platform
) -> MerchantBalance:
    txn = holds.withdrawal_txn(merchant_id, body.withdrawal_id)
    if len(txn) > ledger.TXN_ID_MAX:  # both ids name the ledger transaction, which must fit
        room = ledger.TXN_ID_MAX - len(txn) + len(body.withdrawal_id)
        raise field_error("withdrawal_id", f"at most {room} characters for this merchant id")
    async with session.begin():
        try:
            await holds.withdraw(
                session,
                merchant_id=merchant_id,
                withdrawal_id=body.withdrawal_id,
                amount=body.amount,
                currency=body.currency,
                now=utcnow(),
            )
        except holds.Insufficient as short:
            raise Problem(
                409,
                "insufficient-available",
                "More than the merchant has available",
                f"amount: only {short.available} is available (held money is not)",
                errors=[{"field": "amount", "message": f"at most {short.available}"}],
                available=short.available,
            ) from None
        found = await holds.merchant_balance(session, merchant_id, body.currency)
    return MerchantBalance.model_validate(found, from_attributes=True)
