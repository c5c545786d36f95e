"""Refunds keep the body the workflow last reported, as JSON: a status read is one row, not
the refund joined with its items, timeline, payouts and commissions. Orders keep themselves
as recorded, read back with their usage in two queries instead of six.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("refunds", sa.Column("document", sa.Text(), nullable=True))
    op.add_column("orders", sa.Column("document", sa.Text(), nullable=True))


def downgrade() -> None:
    for table in ("refunds", "orders"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("document")
