"""The review queue pages by (deadline, refund id): the status/deadline index gains the
refund id, so every page of a 10,000-refund queue is an index range, never a sort.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_refunds_status_deadline", table_name="refunds")
    op.create_index(
        "ix_refunds_status_deadline", "refunds", ["status", "review_deadline", "refund_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_refunds_status_deadline", table_name="refunds")
    op.create_index("ix_refunds_status_deadline", "refunds", ["status", "review_deadline"])
