"""Names people give to a call's speakers and channels.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "speaker_names",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("call_id", "label"),
    )
    with op.batch_alter_table("speaker_names") as batch_op:
        batch_op.create_index(batch_op.f("ix_speaker_names_call_id"), ["call_id"], unique=False)


def downgrade():
    op.drop_table("speaker_names")
