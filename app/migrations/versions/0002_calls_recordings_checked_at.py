"""Remember when a call's recordings were looked up after a lost callback.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("calls") as batch_op:
        batch_op.add_column(sa.Column("recordings_checked_at", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table("calls") as batch_op:
        batch_op.drop_column("recordings_checked_at")
