"""The table of balance holds (`domain.holds`): one row per refund of an order paid (partly)
from the platform balance. `store.models` imports it, so `Base.metadata` holds every table."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from domain.holds import HoldState
from store.column_types import Words
from store.models import ID, Base, Money, Timestamp


class BalanceHoldRow(Base):
    """What a refund set aside from its merchant's settlement (`amount`), what its balance
    payout took of it (`spent`) and what went back when it ended (`released`). The ledger
    carries the same moves (`refund:{id}:hold`, the payout, `refund:{id}:release`); this row
    says where the hold stands without summing them. `round` counts holds: an appeal holds
    again (round 2) what the rejection released."""

    __tablename__ = "balance_holds"

    refund_id: Mapped[str] = mapped_column(ID, ForeignKey("refunds.refund_id"), primary_key=True)
    order_id: Mapped[str] = mapped_column(ID, index=True)
    merchant_id: Mapped[str] = mapped_column(ID)
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(Money)
    spent: Mapped[int] = mapped_column(Money, default=0)
    released: Mapped[int] = mapped_column(Money, default=0)
    state: Mapped[HoldState] = mapped_column(Words(HoldState, 16), index=True)
    round: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)
