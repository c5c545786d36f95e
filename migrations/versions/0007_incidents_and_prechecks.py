"""Incidents (issue 11): the incidents and their dry-run verdicts per order, the incident
that started a refund, the supplier batch of a card key; and buyers' pre-checks, so reports
can count those followed by a refund.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from store.column_types import UtcDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("refunds", sa.Column("incident_id", sa.String(length=128), nullable=True))
    op.create_index("ix_refunds_incident_id", "refunds", ["incident_id"])
    op.add_column("card_keys", sa.Column("batch_id", sa.String(length=128), nullable=True))
    op.create_index("ix_card_keys_batch_id", "card_keys", ["batch_id"])
    op.create_table(
        "incidents",
        sa.Column("incident_id", sa.String(length=128), primary_key=True),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("declared_by", sa.String(length=128), nullable=False),
        sa.Column("declaration", sa.JSON(), nullable=False),
        sa.Column("declaration_hash", sa.String(length=64), nullable=False),
        sa.Column("view", sa.JSON(), nullable=True),
        sa.Column("report_seq", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_incidents_created_at", "incidents", ["created_at"])
    op.create_table(
        "incident_orders",
        sa.Column("incident_id", sa.String(length=128), primary_key=True),
        sa.Column("order_id", sa.String(length=128), primary_key=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("buyer_id", sa.String(length=128), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("skip_reason", sa.String(length=32), nullable=True),
        sa.Column("skipped_at_start", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("refund_id", sa.String(length=128), nullable=True),
        sa.Column("started_at", UtcDateTime(), nullable=True),
        sa.UniqueConstraint("incident_id", "position", name="uq_incident_orders_position"),
    )
    op.create_table(
        "prechecks",
        sa.Column("precheck_id", sa.String(length=64), primary_key=True),
        sa.Column("caller", sa.String(length=64), nullable=False),
        sa.Column("order_id", sa.String(length=128), nullable=False),
        sa.Column("buyer_id", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_prechecks_created_at", "prechecks", ["created_at"])
    op.create_index("ix_prechecks_order_created", "prechecks", ["order_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_prechecks_order_created", table_name="prechecks")
    op.drop_index("ix_prechecks_created_at", table_name="prechecks")
    op.drop_table("prechecks")
    op.drop_table("incident_orders")
    op.drop_index("ix_incidents_created_at", table_name="incidents")
    op.drop_table("incidents")
    op.drop_index("ix_card_keys_batch_id", table_name="card_keys")
    with op.batch_alter_table("card_keys") as batch:
        batch.drop_column("batch_id")
    op.drop_index("ix_refunds_incident_id", table_name="refunds")
    with op.batch_alter_table("refunds") as batch:
        batch.drop_column("incident_id")
