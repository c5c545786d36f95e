"""Distributors' commission accounts as the platform reports them. A withdrawal moves money
out of the commission account; a refund that later claws back a withdrawn commission leaves
the account negative: a debt the distributor owes (DOMAIN "Money")."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import Platform, ReadSessionDep, SessionDep
from api.problems import Problem, field_error
from domain.model import Currency, Identifier, Model, PositiveAmount, utcnow
from store import audit, ledger

router = APIRouter(prefix="/v1/distributors", tags=["distributors"])


class Withdrawal(Model):
    withdrawal_id: Identifier
    amount: PositiveAmount
    currency: Currency = "CNY"


class CommissionAccount(BaseModel):
    beneficiary_id: str
    currency: str
    available: int  # negative: a debt from clawed-back commissions already withdrawn
    frozen: int  # held while refunds of their sales are open


@router.post("/{beneficiary_id}/withdrawals", summary="The distributor withdrew commission")
async def withdraw(
    beneficiary_id: Identifier, body: Withdrawal, session: SessionDep, _: Platform
) -> CommissionAccount:
    txn = f"withdrawal:{beneficiary_id}:{body.withdrawal_id}"
    if len(txn) > ledger.TXN_ID_MAX:  # both ids name the ledger transaction, which must fit
        room = ledger.TXN_ID_MAX - len(txn) + len(body.withdrawal_id)
        raise field_error("withdrawal_id", f"at most {room} characters for this distributor id")
    async with session.begin():
        available = await ledger.balance(
            session, ledger.commission_available(beneficiary_id), body.currency
        )
        if await ledger.posted(session, txn):
            pass  # the same withdrawal reported again: already on the books
        elif body.amount > available:
            raise Problem(
                422,
                "validation",
                "Request is not valid",
                f"amount: only {available} is available",
                errors=[{"field": "amount", "message": f"at most {available}"}],
            )
        else:
            await ledger.post(
                session,
                txn,
                {
                    ledger.commission_available(beneficiary_id): -body.amount,
                    ledger.clearing("withdrawals"): body.amount,
                },
                currency=body.currency,
                now=utcnow(),
                memo=f"distributor {beneficiary_id} withdrew",
            )
            await audit.append(
                session,
                event_key=txn,
                actor="platform",
                action="commission.withdrawn",
                subject=f"distributor:{beneficiary_id}",
                payload={"amount": body.amount},
                at=utcnow(),
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
