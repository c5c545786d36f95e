"""Distributors' commission accounts as the platform reports them. A withdrawal moves money
out of the commission account; a refund that later claws back a withdrawn commission leaves
the account negative: a debt the distributor owes (DOMAIN "Money")."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api import withdrawals
from api.deps import Platform, ReadSessionDep, SessionDep
from api.problems import Problem
from api.withdrawals import Withdrawal
from domain.model import Currency, Identifier
from store import ledger

router = APIRouter(prefix="/v1/distributors", tags=["distributors"])


class CommissionAccount(BaseModel):
    beneficiary_id: str
    currency: str
    available: int  # negative: a debt from clawed-back commissions already withdrawn
    frozen: int  # held while refunds of their sales are open


@router.post("/{beneficiary_id}/withdrawals", summary="The distributor withdrew commission")
async def withdraw(
    beneficiary_id: Identifier, body: Withdrawal, session: SessionDep, _: Platform
) -> CommissionAccount:
    await withdrawals.withdraw(
        session,
        body,
        kind="withdrawal",
        owner=beneficiary_id,
        who="distributor",
        account=ledger.commission_available(beneficiary_id),
        action="commission.withdrawn",
        refused=lambda available: Problem(
            422,
            "validation",
            "Request is not valid",
            f"amount: only {available} is available",
            errors=[{"field": "amount", "message": f"at most {available}"}],
        ),
    )
    return await account(beneficiary_id, session, _, currency=body.currency)


@router.get("/{beneficiary_id}/account", summary="A distributor's commission balances")
async def account(
    beneficiary_id: Identifier,
    session: ReadSessionDep,
    _: Platform,
    currency: Annotated[Currency, Query()] = "CNY",
) -> CommissionAccount:
    return CommissionAccount(
        beneficiary_id=beneficiary_id,
        currency=currency,
        available=await ledger.balance(
            session, ledger.commission_available(beneficiary_id), currency
        ),
        frozen=await ledger.balance(session, ledger.commission_frozen(beneficiary_id), currency),
    )
