"""Payouts keep the gateway's last word (status or error code/sub-code), so an answer that
could not be verified, an ABNORMAL refund or a retried system error stays explainable.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("payouts", sa.Column("gateway_status", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("payouts") as batch:
        batch.drop_column("gateway_status")
