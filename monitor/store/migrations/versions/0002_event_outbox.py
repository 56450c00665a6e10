"""The event outbox and what incident actions record.

``event`` (one row per transition or incident action, written with the change
it records), ``event_cursor`` (how far each subscriber has read), and the
records of hand-made incident actions: ``customer_update``, ``silence``,
``manual_maintenance``.

Revision ID: 0002_event_outbox
Revises: 0001
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0002_event_outbox"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event",
        # SQLite autoincrements only an INTEGER PRIMARY KEY; elsewhere 64-bit.
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=True),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event")),
        # SQLite: never reuse an id, even after every event was pruned.
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_event_at"), "event", ["at"], unique=False)
    op.create_table(
        "event_cursor",
        sa.Column("subscriber", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("subscriber", name=op.f("pk_event_cursor")),
    )
    op.create_table(
        "customer_update",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("published_at", sa.Float(), nullable=False),
        sa.Column("published_by", sa.String(length=128), nullable=False),
        sa.Column("text", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incident.id"],
            name=op.f("fk_customer_update_incident_id_incident"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_update")),
    )
    op.create_index(
        "ix_customer_update_incident_at",
        "customer_update",
        ["incident_id", "published_at"],
        unique=False,
    )
    op.create_table(
        "silence",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=True),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("starts_at", sa.Float(), nullable=False),
        sa.Column("ends_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("lifted_at", sa.Float(), nullable=True),
        sa.Column("lifted_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_silence")),
    )
    op.create_index(op.f("ix_silence_incident_id"), "silence", ["incident_id"], unique=False)
    op.create_index(op.f("ix_silence_target_id"), "silence", ["target_id"], unique=False)
    op.create_table(
        "manual_maintenance",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=False),
        sa.Column("starts_at", sa.Float(), nullable=False),
        sa.Column("ends_at", sa.Float(), nullable=True),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("ended_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manual_maintenance")),
    )
    op.create_index(
        op.f("ix_manual_maintenance_target_id"), "manual_maintenance", ["target_id"], unique=False
    )


def downgrade() -> None:
    for table in ("manual_maintenance", "silence", "customer_update", "event_cursor", "event"):
        op.drop_table(table)
