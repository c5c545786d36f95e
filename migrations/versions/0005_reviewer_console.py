"""The reviewer console: the queue's claim columns, per-person accounts and sessions, and an
index for counting a day's decisions.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from store.models import UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("refunds", sa.Column("claimed_by", sa.String(length=128), nullable=True))
    op.add_column("refunds", sa.Column("claimed_until", UtcDateTime(), nullable=True))
    op.add_column(
        "refunds",
        sa.Column("awaiting_evidence", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_audit_action_at", "audit_log", ["action", "at"])
    op.create_table(
        "console_accounts",
        sa.Column("username", sa.String(length=128), primary_key=True),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "console_sessions",
        sa.Column("token_hash", sa.String(length=64), primary_key=True),
        sa.Column("reviewer", sa.String(length=128), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_console_sessions_expires_at", "console_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_console_sessions_expires_at", table_name="console_sessions")
    op.drop_table("console_sessions")
    op.drop_table("console_accounts")
    op.drop_index("ix_audit_action_at", table_name="audit_log")
    with op.batch_alter_table("refunds") as batch:
        batch.drop_column("awaiting_evidence")
        batch.drop_column("claimed_until")
        batch.drop_column("claimed_by")
