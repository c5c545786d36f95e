"""Balance holds: while a refund of a balance-paid order is decided, the amount it may pay back
is held apart from the merchant's settlement (`store.holds`); one row per refund says where
the hold stands.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from store.column_types import UtcDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "balance_holds",
        sa.Column(
            "refund_id", sa.String(128), sa.ForeignKey("refunds.refund_id"), primary_key=True
        ),
        sa.Column("order_id", sa.String(128), nullable=False),
        sa.Column("merchant_id", sa.String(128), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("spent", sa.BigInteger(), nullable=False),
        sa.Column("released", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_balance_holds_order_id", "balance_holds", ["order_id"])
    op.create_index("ix_balance_holds_state", "balance_holds", ["state"])


def downgrade() -> None:
    op.drop_index("ix_balance_holds_state", table_name="balance_holds")
    op.drop_index("ix_balance_holds_order_id", table_name="balance_holds")
    op.drop_table("balance_holds")
