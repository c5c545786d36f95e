"""A key reported invalid may be replaced by a fresh one (补发): the buyer's choice of remedy
on the refund, and which fresh key replaced which key of an order item.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from store.column_types import UtcDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("refunds", sa.Column("remedy", sa.String(16), nullable=True))
    op.add_column(
        "refunds",
        sa.Column("replacement_offered", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("refunds", sa.Column("replacement", sa.JSON(), nullable=True))
    op.create_table(
        "card_key_replacements",
        sa.Column(
            "refund_id", sa.String(128), sa.ForeignKey("refunds.refund_id"), primary_key=True
        ),
        sa.Column("order_id", sa.String(128), sa.ForeignKey("orders.order_id"), nullable=False),
        sa.Column("item_id", sa.String(128), nullable=False),
        sa.Column("replaced_card_key_id", sa.String(128), nullable=False),
        sa.Column("card_key_id", sa.String(128), nullable=False, unique=True),
        sa.Column("supplier", sa.String(128), nullable=False),
        sa.Column("reservation_id", sa.String(128), nullable=False),
        sa.Column("delivered_at", UtcDateTime(), nullable=False),
        sa.Column("recorded_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_card_key_replacements_order_id", "card_key_replacements", ["order_id"])
    op.create_index(
        "ix_card_key_replacements_replaced_card_key_id",
        "card_key_replacements",
        ["replaced_card_key_id"],
    )


def downgrade() -> None:
    op.drop_index(
        "ix_card_key_replacements_replaced_card_key_id", table_name="card_key_replacements"
    )
    op.drop_index("ix_card_key_replacements_order_id", table_name="card_key_replacements")
    op.drop_table("card_key_replacements")
    with op.batch_alter_table("refunds") as batch:
        batch.drop_column("replacement")
        batch.drop_column("replacement_offered")
        batch.drop_column("remedy")
