"""The table of claims against suppliers (`domain.supplier_claims`). `store.models` imports
it, so `Base.metadata` holds every table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from domain.supplier_claims import ClaimState
from store.column_types import Words
from store.models import ID, Base, Money, Timestamp


class SupplierClaimRow(Base):
    """One claim: per refund and supplier, opened in the transaction that stored the refund
    `refunded`. `claim_id` is the supplier's idempotency key; every move of `state` is a
    compare-and-set from the state it was read in, so two drivers never move it twice."""

    __tablename__ = "supplier_claims"
    # The driver's rounds: claims in a state, the oldest first; reconcile: per supplier.
    __table_args__ = (Index("ix_supplier_claims_state_next", "state", "next_attempt_at"),)

    claim_id: Mapped[str] = mapped_column(ID, primary_key=True)
    refund_id: Mapped[str] = mapped_column(ID, index=True)
    order_id: Mapped[str] = mapped_column(ID)
    merchant_id: Mapped[str] = mapped_column(ID)
    supplier: Mapped[str] = mapped_column(ID, index=True)
    card_key_ids: Mapped[list[Any]] = mapped_column(JSON)
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(Money)
    state: Mapped[ClaimState] = mapped_column(Words(ClaimState, 16))
    # What the supplier credited (the first credit; a duplicate is counted, never posted).
    recovered: Mapped[int] = mapped_column(Money, default=0)
    credit_id: Mapped[str | None] = mapped_column(ID)
    duplicate_credits: Mapped[int] = mapped_column(Integer, default=0)
    # Submissions tried; after the first, an answer we did not get means "ask before resending".
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    # Why it was written off: the supplier's refusal code, or the deadline.
    outcome_note: Mapped[str | None] = mapped_column(String(500))
    opened_at: Mapped[datetime] = mapped_column(Timestamp)
    submitted_at: Mapped[datetime | None] = mapped_column(Timestamp)
    settled_at: Mapped[datetime | None] = mapped_column(Timestamp)
    next_attempt_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)
