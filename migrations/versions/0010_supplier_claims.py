"""Claims against suppliers for the card keys they confirmed invalid: opened when such a
refund is paid, submitted to the supplier, recovered when it credits them, written off
after the policy's deadline (README "When the supplier pays for its bad keys").

Revision ID: 0010
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from store.column_types import UtcDateTime

revision = "0010"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "supplier_claims",
        sa.Column("claim_id", sa.String(128), primary_key=True),
        sa.Column("refund_id", sa.String(128), nullable=False),
        sa.Column("order_id", sa.String(128), nullable=False),
        sa.Column("merchant_id", sa.String(128), nullable=False),
        sa.Column("supplier", sa.String(128), nullable=False),
        sa.Column("card_key_ids", sa.JSON(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("recovered", sa.BigInteger(), nullable=False),
        sa.Column("credit_id", sa.String(128), nullable=True),
        sa.Column("duplicate_credits", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("outcome_note", sa.String(500), nullable=True),
        sa.Column("opened_at", UtcDateTime(), nullable=False),
        sa.Column("submitted_at", UtcDateTime(), nullable=True),
        sa.Column("settled_at", UtcDateTime(), nullable=True),
        sa.Column("next_attempt_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_supplier_claims_refund_id", "supplier_claims", ["refund_id"])
    op.create_index("ix_supplier_claims_supplier", "supplier_claims", ["supplier"])
    op.create_index(
        "ix_supplier_claims_state_next", "supplier_claims", ["state", "next_attempt_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_supplier_claims_state_next", table_name="supplier_claims")
    op.drop_index("ix_supplier_claims_supplier", table_name="supplier_claims")
    op.drop_index("ix_supplier_claims_refund_id", table_name="supplier_claims")
    op.drop_table("supplier_claims")
