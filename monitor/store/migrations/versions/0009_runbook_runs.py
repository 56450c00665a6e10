"""Runbook runs and their steps (``runbook_run``, ``runbook_step``).

Revision ID: 0009_runbook_runs
Revises: 0008_failover_member
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_runbook_runs"
down_revision = "0008_failover_member"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runbook_run",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("runbook_id", sa.String(length=64), nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=True),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("rule_id", sa.String(length=64), nullable=True),
        sa.Column("started_by", sa.String(length=128), nullable=False),
        sa.Column("started_user", sa.String(length=128), nullable=True),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("check_at", sa.Float(), nullable=True),
        sa.Column("hold_since", sa.Float(), nullable=True),
        sa.Column("hold_health", sa.String(length=16), nullable=True),
        sa.Column("requested", sa.String(length=16), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runbook_run")),
    )
    with op.batch_alter_table("runbook_run", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_runbook_run_check_at"), ["check_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_runbook_run_incident_id"), ["incident_id"], unique=False
        )
        batch_op.create_index(
            "ix_runbook_run_runbook_target", ["runbook_id", "target_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_runbook_run_state"), ["state"], unique=False)

    op.create_table(
        "runbook_step",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("summary", sa.String(length=1000), nullable=False),
        sa.Column("output", sa.Text(), nullable=False),
        sa.Column("waiting_for", sa.String(length=16), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=True),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=True),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.Column("decided_at", sa.Float(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runbook_step")),
    )
    with op.batch_alter_table("runbook_step", schema=None) as batch_op:
        batch_op.create_index("ix_runbook_step_run", ["run_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("runbook_step", schema=None) as batch_op:
        batch_op.drop_index("ix_runbook_step_run")

    op.drop_table("runbook_step")
    with op.batch_alter_table("runbook_run", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runbook_run_state"))
        batch_op.drop_index("ix_runbook_run_runbook_target")
        batch_op.drop_index(batch_op.f("ix_runbook_run_incident_id"))
        batch_op.drop_index(batch_op.f("ix_runbook_run_check_at"))

    op.drop_table("runbook_run")
