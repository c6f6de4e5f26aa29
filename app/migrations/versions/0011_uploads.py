"""Audio people upload: a call's file name and uploader, a recording's own copy and options.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("calls") as batch_op:
        batch_op.add_column(sa.Column("title", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("uploaded_by", sa.String(length=64), nullable=True))
    with op.batch_alter_table("recordings") as batch_op:
        batch_op.add_column(sa.Column("media_key", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("media_type", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("language", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("speakers", sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table("recordings") as batch_op:
        batch_op.drop_column("speakers")
        batch_op.drop_column("language")
        batch_op.drop_column("media_type")
        batch_op.drop_column("media_key")
    with op.batch_alter_table("calls") as batch_op:
        batch_op.drop_column("uploaded_by")
        batch_op.drop_column("title")
