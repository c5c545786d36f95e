"""Card keys delivered as replacements (补发): which fresh key replaced which key of an order
item, for which refund. Ids only, like every card key here: the secret stays with the
supplier and the platform. `store.models` imports this, so `Base.metadata` holds the table."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from store.models import ID, Base, Timestamp


class CardKeyReplacementRow(Base):
    """One refund replaces at most one key (the primary key), so recording it again after a
    retried report is a no-op; a fresh key replaces one key only (unique)."""

    __tablename__ = "card_key_replacements"

    refund_id: Mapped[str] = mapped_column(ID, ForeignKey("refunds.refund_id"), primary_key=True)
    order_id: Mapped[str] = mapped_column(ID, ForeignKey("orders.order_id"), index=True)
    item_id: Mapped[str] = mapped_column(ID)
    replaced_card_key_id: Mapped[str] = mapped_column(ID, index=True)
    card_key_id: Mapped[str] = mapped_column(ID, unique=True)
    supplier: Mapped[str] = mapped_column(ID)
    reservation_id: Mapped[str] = mapped_column(ID)
    delivered_at: Mapped[datetime] = mapped_column(Timestamp)
    recorded_at: Mapped[datetime] = mapped_column(Timestamp)
