"""Double-entry ledger. Every movement of money is a transaction whose entries sum to
zero; balances are running sums of entries. A transaction id names the business step
(`refund:{id}:payout:{n}`), so posting a step twice changes nothing."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.order import Order
from store.models import BalanceRow, LedgerEntryRow
from store.upsert import insert_ignore, insert_or_add


class Unbalanced(ValueError):
    """A transaction whose entries do not sum to zero: a bug, never posted."""


def buyer_balance(buyer_id: str) -> str:
    return f"buyer:{buyer_id}:balance"


def merchant_settlement(merchant_id: str) -> str:
    return f"merchant:{merchant_id}:settlement"


def merchant_held(merchant_id: str) -> str:
    """Settlement set aside while refunds that may pay it back are decided (`store.holds`)."""
    return f"merchant:{merchant_id}:held"


# The longest transaction id the ledger stores (the column's length).
_txn_id_type = LedgerEntryRow.__table__.c.txn_id.type
assert isinstance(_txn_id_type, String) and _txn_id_type.length is not None
TXN_ID_MAX: int = _txn_id_type.length


def commission_available(beneficiary_id: str) -> str:
    return f"distributor:{beneficiary_id}:commission"


def commission_frozen(beneficiary_id: str) -> str:
    return f"distributor:{beneficiary_id}:frozen"


def clearing(channel: str) -> str:
    """Money in transit at a payment channel (what it collected for us, what it paid back)."""
    return f"clearing:{channel}"


def supplier_claims(supplier: str) -> str:
    """What a supplier owes on claims for the keys it confirmed invalid (a receivable)."""
    return f"supplier:{supplier}:claims"


def merchant_recovery(merchant_id: str) -> str:
    """What the merchant gets back once the supplier pays its claims: not available yet."""
    return f"merchant:{merchant_id}:recovery"


def supplier_clearing(supplier: str) -> str:
    """Money a supplier credited us on claims, in transit like a payment channel's."""
    return clearing(f"supplier:{supplier}")


async def post(
    session: AsyncSession,
    txn_id: str,
    entries: dict[str, int],
    *,
    currency: str,
    now: datetime,
    refund_id: str | None = None,
    memo: str = "",
) -> bool:
    """Post a transaction once. Returns False when it was already posted."""
    entries = {account: amount for account, amount in entries.items() if amount != 0}
    if sum(entries.values()) != 0:
        raise Unbalanced(f"{txn_id}: entries sum to {sum(entries.values())}")
    if not entries:
        return False
    inserted = await insert_ignore(
        session,
        LedgerEntryRow,
        [
            {
                "txn_id": txn_id,
                "account": account,
                "currency": currency,
                "amount": amount,
                "refund_id": refund_id,
                "memo": memo[:200],
                "created_at": now,
            }
            for account, amount in sorted(entries.items())
        ],
    )
    if inserted == 0:
        return False
    # Every account's running balance moves by its entry, in one statement.
    await insert_or_add(
        session,
        BalanceRow,
        [
            {"account": a, "currency": currency, "amount": amount, "updated_at": now}
            for a, amount in sorted(entries.items())
        ],
        key=("account", "currency"),
        add="amount",
    )
    return True


async def posted(session: AsyncSession, txn_id: str) -> bool:
    return (
        await session.scalar(
            select(LedgerEntryRow.id).where(LedgerEntryRow.txn_id == txn_id).limit(1)
        )
    ) is not None


async def balance(session: AsyncSession, account: str, currency: str = "CNY") -> int:
    row = await session.get(BalanceRow, (account, currency))
    return row.amount if row is not None else 0


async def post_sale(session: AsyncSession, order: Order, *, now: datetime) -> None:
    """What a paid order did to the books: the channels collected the payments, the
    merchant is owed the rest after the distributors' commissions."""
    entries: dict[str, int] = {}
    for p in order.payments:
        entries[clearing(p.channel.value)] = entries.get(clearing(p.channel.value), 0) - p.amount
    commission_total = 0
    for c in order.commissions:
        account = commission_available(c.beneficiary_id)
        entries[account] = entries.get(account, 0) + c.amount
        commission_total += c.amount
    entries[merchant_settlement(order.merchant_id)] = order.paid_total - commission_total
    await post(
        session,
        f"sale:{order.order_id}",
        entries,
        currency=order.currency,
        now=now,
        memo=f"order {order.order_id} paid",
    )


async def trial_balance(session: AsyncSession) -> dict[str, int]:
    """Sum of all entries per currency: every value must be zero."""
    rows = await session.execute(
        select(LedgerEntryRow.currency, func.sum(LedgerEntryRow.amount)).group_by(
            LedgerEntryRow.currency
        )
    )
    return {currency: int(total or 0) for currency, total in rows.all()}
