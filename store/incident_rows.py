"""The tables of incidents (`domain.incident`) and buyers' pre-checks: the declaration and the
state its workflow reports, the dry run's verdict per matched order, and what each pre-check
told a buyer (the reports count those followed by a refund). `store.models` imports them, so
`Base.metadata` holds every table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Index, Integer, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from domain.incident import SkipReason
from domain.incident_run import IncidentState
from domain.types import RefundReason
from store.column_types import Words
from store.models import ID, Base, Money, Timestamp


class IncidentRow(Base):
    """An incident as its workflow last reported it (`view`, the `IncidentView`), and the
    declaration that started it. A declaration repeated while it runs is the same incident;
    one made again after it ended starts a new run, which refunds nothing twice."""

    __tablename__ = "incidents"

    incident_id: Mapped[str] = mapped_column(ID, primary_key=True)
    state: Mapped[IncidentState] = mapped_column(Words(IncidentState, 32))
    declared_by: Mapped[str] = mapped_column(ID)
    declaration: Mapped[dict[str, Any]] = mapped_column(JSON)
    declaration_hash: Mapped[str] = mapped_column(String(64))
    view: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Reports are ordered like a refund's: an older one never overwrites a newer one.
    report_seq: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(Timestamp, index=True)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class IncidentOrderRow(Base):
    """The dry run's verdict on one matched order (refund these items, or skip it and why)
    and, once its turn came, the refund the incident started for it."""

    __tablename__ = "incident_orders"
    __table_args__ = (
        UniqueConstraint("incident_id", "position", name="uq_incident_orders_position"),
    )

    incident_id: Mapped[str] = mapped_column(ID, primary_key=True)
    order_id: Mapped[str] = mapped_column(ID, primary_key=True)
    # The dry run's order (1, 2, ...): refunds start in it, a batch at a time.
    position: Mapped[int] = mapped_column(Integer)
    buyer_id: Mapped[str] = mapped_column(ID)
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(Money)
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    skip_reason: Mapped[SkipReason | None] = mapped_column(Words(SkipReason, 32))
    # Skipped when its turn came rather than by the dry run.
    skipped_at_start: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    refund_id: Mapped[str | None] = mapped_column(ID)
    started_at: Mapped[datetime | None] = mapped_column(Timestamp)


class PrecheckRow(Base):
    """A buyer's pre-check (`POST /v1/refunds/precheck`): what they were told before they
    asked for a refund. Reports count those followed by a refund and those not (deflection)."""

    __tablename__ = "prechecks"
    __table_args__ = (Index("ix_prechecks_order_created", "order_id", "created_at"),)

    precheck_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    caller: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[str] = mapped_column(ID)
    buyer_id: Mapped[str] = mapped_column(ID)
    reason: Mapped[RefundReason] = mapped_column(Words(RefundReason, 32))
    outcome: Mapped[str] = mapped_column(String(16))
    rule: Mapped[str] = mapped_column(String(64))
    amount: Mapped[int] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(Timestamp, index=True)
