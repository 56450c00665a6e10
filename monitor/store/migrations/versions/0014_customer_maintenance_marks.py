"""Which maintenance notices each component's subscribers were sent (``customer_maintenance_mark``).

Revision ID: 0014_customer_maintenance_marks
Revises: 0013_runbook_step_data
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_customer_maintenance_marks"
down_revision = "0013_runbook_step_data"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customer_maintenance_mark",
        sa.Column("component_id", sa.String(length=64), nullable=False),
        sa.Column("window_start", sa.Float(), nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(
            "component_id", "window_start", "stage", name=op.f("pk_customer_maintenance_mark")
        ),
    )


def downgrade() -> None:
    op.drop_table("customer_maintenance_mark")
