"""What each subscriber has heard about each component (``customer_thread``).

Revision ID: 0011_customer_threads
Revises: 0010_subscribers
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_customer_threads"
down_revision = "0010_subscribers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customer_thread",
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("component_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("check_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("subscriber_id", "component_id", name=op.f("pk_customer_thread")),
    )
    with op.batch_alter_table("customer_thread", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_customer_thread_check_at"), ["check_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("customer_thread", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customer_thread_check_at"))

    op.drop_table("customer_thread")
