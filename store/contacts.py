"""Buyers' contacts (phone, e-mail, language) per order, and their per-channel opt-outs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.contacts import BuyerContact, Channel, Language
from store.models import BuyerContactRow, BuyerOptOutRow
from store.upsert import insert_ignore


@dataclass(frozen=True)
class Reach:
    """Where a buyer's messages for one order go now: their contact less what they opted
    out of."""

    contact: BuyerContact
    opted_out: frozenset[Channel]

    def address(self, channel: Channel) -> str | None:
        return None if channel in self.opted_out else self.contact.address(channel)

    @property
    def channels(self) -> list[Channel]:
        return [c for c in Channel if self.address(c)]


def record_contact(
    session: AsyncSession, order_id: str, buyer_id: str, contact: BuyerContact, *, now: datetime
) -> None:
    """With the order, in its transaction (orders are immutable: so is this)."""
    session.add(
        BuyerContactRow(
            order_id=order_id,
            buyer_id=buyer_id,
            phone=contact.phone,
            email=contact.email,
            language=contact.language.value,
            recorded_at=now,
        )
    )


async def load_contact(session: AsyncSession, order_id: str) -> BuyerContact | None:
    row = await session.get(BuyerContactRow, order_id)
    if row is None:
        return None
    return BuyerContact(phone=row.phone, email=row.email, language=Language(row.language))


async def reach(session: AsyncSession, order_id: str) -> Reach | None:
    """The order's contact and its buyer's opt-outs; None when the order has no contact."""
    row = await session.get(BuyerContactRow, order_id)
    if row is None or not (row.phone or row.email):
        return None
    out = await opted_out(session, row.buyer_id)
    contact = BuyerContact(phone=row.phone, email=row.email, language=Language(row.language))
    return Reach(contact, out)


async def opted_out(session: AsyncSession, buyer_id: str) -> frozenset[Channel]:
    rows = await session.scalars(
        select(BuyerOptOutRow.channel).where(BuyerOptOutRow.buyer_id == buyer_id)
    )
    return frozenset(Channel(c) for c in rows)


async def set_opt_out(
    session: AsyncSession, buyer_id: str, channel: Channel, *, out: bool, now: datetime
) -> None:
    if out:
        await insert_ignore(
            session, BuyerOptOutRow, [{"buyer_id": buyer_id, "channel": channel.value, "at": now}]
        )
    else:
        await session.execute(
            delete(BuyerOptOutRow).where(
                BuyerOptOutRow.buyer_id == buyer_id, BuyerOptOutRow.channel == channel.value
            )
        )
