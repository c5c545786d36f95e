"""Buyers hear by SMS and e-mail: the order's optional contacts (a table of their own, so the
order document the workflow reads never holds them), per-channel opt-outs, and the outbox's
end state for a message the dispatcher gave up on.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from store.column_types import UtcDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "buyer_contacts",
        sa.Column("order_id", sa.String(128), sa.ForeignKey("orders.order_id"), primary_key=True),
        sa.Column("buyer_id", sa.String(128), nullable=False),
        sa.Column("phone", sa.String(32), nullable=True),
        sa.Column("email", sa.String(254), nullable=True),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("recorded_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_buyer_contacts_buyer_id", "buyer_contacts", ["buyer_id"])
    op.create_table(
        "buyer_opt_outs",
        sa.Column("buyer_id", sa.String(128), primary_key=True),
        sa.Column("channel", sa.String(16), primary_key=True),
        sa.Column("at", UtcDateTime(), nullable=False),
    )
    op.add_column("notifications", sa.Column("failed_at", UtcDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("failed_at")
    op.drop_table("buyer_opt_outs")
    op.drop_index("ix_buyer_contacts_buyer_id", table_name="buyer_contacts")
    op.drop_table("buyer_contacts")
