"""Retention: the daily uptime table, indexes retention deletes by, the unused streak columns dropped.

- ``uptime_day``: seconds per health per day of each target and component,
  rolled up from transitions before the retention job prunes them.
- ``transition.incident_id`` indexed: deleting an old incident unlinks the
  transitions that still point at it without scanning them all;
  ``incident.resolved_at`` indexed: retention takes resolved incidents oldest
  first.
- ``target_state.ok_streak`` / ``fail_streak`` dropped: nothing read them;
  the streaks live in ``machine`` (the health state machine's own state).

Revision ID: 0003_retention
Revises: 0002_event_outbox
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_retention"
down_revision = "0002_event_outbox"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "uptime_day",
        sa.Column("subject_kind", sa.String(length=16), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("up_seconds", sa.Float(), nullable=False),
        sa.Column("degraded_seconds", sa.Float(), nullable=False),
        sa.Column("down_seconds", sa.Float(), nullable=False),
        sa.Column("maintenance_seconds", sa.Float(), nullable=False),
        sa.Column("unknown_seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("subject_kind", "subject_id", "day", name=op.f("pk_uptime_day")),
        sqlite_with_rowid=False,
    )
    op.create_index(op.f("ix_uptime_day_day"), "uptime_day", ["day"], unique=False)
    op.create_index(op.f("ix_transition_incident_id"), "transition", ["incident_id"], unique=False)
    op.create_index(op.f("ix_incident_resolved_at"), "incident", ["resolved_at"], unique=False)
    # SQLite cannot drop a column in place here: batch mode rebuilds the table.
    with op.batch_alter_table("target_state") as batch:
        batch.drop_column("ok_streak")
        batch.drop_column("fail_streak")


def downgrade() -> None:
    # Existing rows need a value for the NOT NULL columns; 0001 had no server default.
    with op.batch_alter_table("target_state") as batch:
        batch.add_column(sa.Column("ok_streak", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("fail_streak", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("target_state") as batch:
        batch.alter_column("ok_streak", server_default=None)
        batch.alter_column("fail_streak", server_default=None)
    op.drop_index(op.f("ix_incident_resolved_at"), table_name="incident")
    op.drop_index(op.f("ix_transition_incident_id"), table_name="transition")
    op.drop_index(op.f("ix_uptime_day_day"), table_name="uptime_day")
    op.drop_table("uptime_day")
