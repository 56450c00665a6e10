"""When SMS verification codes were sent to a subscriber (the daily cap per number).

Revision ID: 0012_subscriber_codes
Revises: 0011_customer_threads
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_subscriber_codes"
down_revision = "0011_customer_threads"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscriber", schema=None) as batch_op:
        batch_op.add_column(sa.Column("codes_sent", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("subscriber", schema=None) as batch_op:
        batch_op.drop_column("codes_sent")
