"""Status page subscribers (``subscriber``): addresses sealed, found by a keyed digest.

Revision ID: 0010_subscribers
Revises: 0009_runbook_runs
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_subscribers"
down_revision = "0009_runbook_runs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subscriber",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("address_sealed", sa.Text(), nullable=False),
        sa.Column("address_digest", sa.String(length=64), nullable=False),
        sa.Column("masked", sa.String(length=128), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("components", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("confirmed_at", sa.Float(), nullable=True),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("code_digest", sa.String(length=64), nullable=True),
        sa.Column("code_expires_at", sa.Float(), nullable=True),
        sa.Column("code_tries", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriber")),
    )
    with op.batch_alter_table("subscriber", schema=None) as batch_op:
        batch_op.create_index(
            "ix_subscriber_channel_digest", ["channel", "address_digest"], unique=True
        )
        batch_op.create_index(batch_op.f("ix_subscriber_state"), ["state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("subscriber", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subscriber_state"))
        batch_op.drop_index("ix_subscriber_channel_digest")

    op.drop_table("subscriber")
