"""Initial state tables: target state, transitions, incidents, probe state, counters.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "counter",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_counter")),
    )
    op.create_table(
        "incident",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("opened_at", sa.Float(), nullable=False),
        sa.Column("resolved_at", sa.Float(), nullable=True),
        sa.Column("root_target_id", sa.String(length=64), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("cause", sa.Text(), nullable=True),
        sa.Column("eta", sa.Float(), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("acknowledged_at", sa.Float(), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident")),
    )
    op.create_index(op.f("ix_incident_opened_at"), "incident", ["opened_at"], unique=False)
    op.create_index(op.f("ix_incident_state"), "incident", ["state"], unique=False)
    op.create_table(
        "probe_state",
        sa.Column("target_id", sa.String(length=64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("target_id", name=op.f("pk_probe_state")),
    )
    op.create_table(
        "target_state",
        sa.Column("target_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("health", sa.String(length=16), nullable=False),
        sa.Column("since", sa.Float(), nullable=False),
        sa.Column("flapping", sa.Boolean(), nullable=False),
        sa.Column("affected_by", sa.String(length=64), nullable=True),
        sa.Column("ok_streak", sa.Integer(), nullable=False),
        sa.Column("fail_streak", sa.Integer(), nullable=False),
        sa.Column("machine", sa.JSON(), nullable=False),
        sa.Column("last_status", sa.String(length=8), nullable=True),
        sa.Column("last_detail", sa.Text(), nullable=True),
        sa.Column("last_latency", sa.Float(), nullable=True),
        sa.Column("last_observed_at", sa.Float(), nullable=True),
        sa.Column("last_metrics", sa.JSON(), nullable=False),
        sa.Column("probes_run", sa.Integer(), nullable=False),
        sa.Column("probes_failed", sa.Integer(), nullable=False),
        sa.Column("probes_errored", sa.Integer(), nullable=False),
        sa.Column("config_hash", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("target_id", name=op.f("pk_target_state")),
    )
    op.create_index(op.f("ix_target_state_health"), "target_state", ["health"], unique=False)
    op.create_table(
        "incident_event",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incident.id"], name=op.f("fk_incident_event_incident_id_incident")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_event")),
    )
    op.create_index(
        "ix_incident_event_incident_at", "incident_event", ["incident_id", "at"], unique=False
    )
    op.create_table(
        "incident_target",
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("joined_at", sa.Float(), nullable=False),
        sa.Column("recovered_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incident.id"], name=op.f("fk_incident_target_incident_id_incident")
        ),
        sa.PrimaryKeyConstraint("incident_id", "target_id", name=op.f("pk_incident_target")),
    )
    op.create_index(
        op.f("ix_incident_target_target_id"), "incident_target", ["target_id"], unique=False
    )
    op.create_table(
        "transition",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("from_health", sa.String(length=16), nullable=False),
        sa.Column("to_health", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("flapping", sa.Boolean(), nullable=False),
        sa.Column("affected_by", sa.String(length=64), nullable=True),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incident.id"], name=op.f("fk_transition_incident_id_incident")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transition")),
    )
    op.create_index(op.f("ix_transition_at"), "transition", ["at"], unique=False)
    op.create_index("ix_transition_target_at", "transition", ["target_id", "at"], unique=False)


def downgrade() -> None:
    # Dropping a table drops its indexes; children before parents for the foreign keys.
    for table in (
        "transition",
        "incident_target",
        "incident_event",
        "target_state",
        "probe_state",
        "incident",
        "counter",
    ):
        op.drop_table(table)
