"""What a runbook step gave later steps (``runbook_step.data``), kept for a resume.

Revision ID: 0013_runbook_step_data
Revises: 0012_subscriber_codes
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_runbook_step_data"
down_revision = "0012_subscriber_codes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runbook_step", schema=None) as batch_op:
        batch_op.add_column(sa.Column("data", sa.JSON(), nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("runbook_step", schema=None) as batch_op:
        batch_op.drop_column("data")
