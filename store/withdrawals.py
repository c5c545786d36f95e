"""Money leaving an account the platform keeps for someone — a distributor's commission, a
merchant's settlement — to the outside (`clearing:withdrawals`): at most what the account
holds, once per withdrawal id, in the caller's transaction.

Two withdrawals at once cannot both pass the check: the account's balance row is locked for
the transaction (PostgreSQL; SQLite writers hold the database's write lock from BEGIN), and
every posting to the account writes that same row. A merchant's held money is in an account
of its own (`store.holds`), so it is never available here."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store import audit, ledger
from store.models import BalanceRow

__all__ = ["Insufficient", "TooLong", "txn_id", "withdraw"]


class Insufficient(Exception):
    def __init__(self, available: int) -> None:
        super().__init__(f"only {available} is available")
        self.available = available


class TooLong(ValueError):
    def __init__(self, room: int) -> None:
        super().__init__(f"at most {room} characters for the withdrawal id")
        self.room = room


def txn_id(kind: str, owner: str, withdrawal_id: str) -> str:
    """The ledger transaction of a withdrawal, named by whose and which it is; TooLong (with
    the room left for the withdrawal id) when both ids together do not fit the ledger."""
    txn = f"{kind}:{owner}:{withdrawal_id}"
    if len(txn) > ledger.TXN_ID_MAX:
        raise TooLong(ledger.TXN_ID_MAX - len(txn) + len(withdrawal_id))
    return txn


async def withdraw(
    session: AsyncSession,
    *,
    account: str,
    txn: str,
    amount: int,
    currency: str,
    subject: str,
    action: str,
    now: datetime,
) -> bool:
    """Take `amount` out of `account`; False when this withdrawal was recorded before (the
    same id reported again). Raises Insufficient beyond what the account holds."""
    balance = await session.scalar(
        select(BalanceRow.amount)
        .where(BalanceRow.account == account, BalanceRow.currency == currency)
        .with_for_update()
    )
    if await ledger.posted(session, txn):
        return False
    available = max(0, balance or 0)  # negative: a debt, nothing to withdraw
    if amount > available:
        raise Insufficient(available)
    await ledger.post(
        session,
        txn,
        {account: -amount, ledger.clearing("withdrawals"): amount},
        currency=currency,
        now=now,
        memo=f"{subject} withdrew",
    )
    await audit.append(
        session,
        event_key=txn,
        actor="platform",
        action=action,
        subject=subject,
        payload={"amount": amount},
        at=now,
    )
    return True
