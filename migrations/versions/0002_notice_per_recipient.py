"""Notifications are unique per refund step, channel *and recipient*: a commission moving
for several distributors of one sale notifies each of them.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

OLD = ["refund_id", "seq", "channel"]
NEW = ["refund_id", "seq", "channel", "recipient"]
NAME = "uq_notifications_step_recipient"
# 0001 left the old constraint unnamed: SQLite reflects it without a name, PostgreSQL named it.
SQLITE_NAMES = {"uq": "uq_%(table_name)s_%(column_0_name)s"}
SQLITE_OLD = "uq_notifications_refund_id"
POSTGRES_OLD = "notifications_refund_id_seq_channel_key"


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table(
            "notifications", naming_convention=SQLITE_NAMES, recreate="always"
        ) as batch:
            batch.drop_constraint(SQLITE_OLD, type_="unique")
            batch.create_unique_constraint(NAME, NEW)
    else:
        op.drop_constraint(POSTGRES_OLD, "notifications", type_="unique")
        op.create_unique_constraint(NAME, "notifications", NEW)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("notifications", recreate="always") as batch:
            batch.drop_constraint(NAME, type_="unique")
            batch.create_unique_constraint(SQLITE_OLD, OLD)
    else:
        op.drop_constraint(NAME, "notifications", type_="unique")
        op.create_unique_constraint(POSTGRES_OLD, "notifications", OLD)
