"""What Dialwatch wants for each member of a trunk failover group (``failover_member``).

Revision ID: 0008_failover_member
Revises: 0007_push_subscriptions
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_failover_member"
down_revision = "0007_push_subscriptions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "failover_member",
        sa.Column("group_id", sa.String(length=128), nullable=False),
        sa.Column("target_id", sa.String(length=128), nullable=False),
        sa.Column("wanted", sa.String(length=16), nullable=False),
        sa.Column("changed_at", sa.Float(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("approved_by", sa.String(length=128), nullable=True),
        sa.Column("approved_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("group_id", "target_id", name=op.f("pk_failover_member")),
    )


def downgrade() -> None:
    op.drop_table("failover_member")
