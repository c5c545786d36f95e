"""A withdrawal reported by the platform, for any account it keeps for someone (a
distributor's commission, a merchant's settlement): the body, the id's room in the ledger,
and the refusal each resource words its own way (`store.withdrawals` does the books)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession

from api.problems import Problem, field_error
from domain.model import Currency, Identifier, Model, PositiveAmount, utcnow
from store import withdrawals


class Withdrawal(Model):
    withdrawal_id: Identifier  # the platform's id: the same withdrawal reported again is one
    amount: PositiveAmount
    currency: Currency = "CNY"


async def withdraw(
    session: AsyncSession,
    body: Withdrawal,
    *,
    kind: str,
    owner: str,
    who: str,
    account: str,
    action: str,
    refused: Callable[[int], Problem],
) -> None:
    """Take the withdrawal out of `account` in one transaction; `refused(available)` is the
    problem answered beyond what is available."""
    try:
        txn = withdrawals.txn_id(kind, owner, body.withdrawal_id)
    except withdrawals.TooLong as long:
        raise field_error(
            "withdrawal_id", f"at most {long.room} characters for this {who} id"
        ) from None
    async with session.begin():
        try:
            await withdrawals.withdraw(
                session,
                account=account,
                txn=txn,
                amount=body.amount,
                currency=body.currency,
                subject=f"{who}:{owner}",
                action=action,
                now=utcnow(),
            )
        except withdrawals.Insufficient as short:
            raise refused(short.available) from None
