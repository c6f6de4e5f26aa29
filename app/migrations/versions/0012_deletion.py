"""Deleting: a call marked while it is being deleted, the tombstones (and audit) of deleted ones,
and when a recording was deleted at Twilio after its transcript was stored.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("calls") as batch_op:
        batch_op.add_column(sa.Column("deleting_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("deleting_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("deletion_error", sa.Text(), nullable=True))
    with op.batch_alter_table("recordings") as batch_op:
        batch_op.add_column(sa.Column("twilio_deleted_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "deleted_calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_sid", sa.String(length=34), nullable=False),
        sa.Column("direction", sa.String(length=32), nullable=True),
        sa.Column("recording_sids", sa.JSON(), nullable=False),
        sa.Column("transcript_ids", sa.JSON(), nullable=False),
        sa.Column("media_keys", sa.JSON(), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("call_sid"),
    )
    with op.batch_alter_table("deleted_calls") as batch_op:
        batch_op.create_index(batch_op.f("ix_deleted_calls_deleted_at"), ["deleted_at"], unique=False)
    op.create_table(
        "deleted_recordings",
        sa.Column("recording_sid", sa.String(length=34), nullable=False),
        sa.Column("call_sid", sa.String(length=34), nullable=False),
        sa.PrimaryKeyConstraint("recording_sid"),
    )


def downgrade():
    with op.batch_alter_table("recordings") as batch_op:
        batch_op.drop_column("twilio_deleted_at")
    op.drop_table("deleted_recordings")
    op.drop_table("deleted_calls")
    with op.batch_alter_table("calls") as batch_op:
        batch_op.drop_column("deletion_error")
        batch_op.drop_column("deleting_by")
        batch_op.drop_column("deleting_at")
