"""Which transcription engine took each recording.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("recordings") as batch_op:
        batch_op.add_column(sa.Column("engine", sa.String(length=16), nullable=True))
    # Until now AssemblyAI was the only engine: every recording it has seen is its.
    op.execute("UPDATE recordings SET engine = 'assemblyai' WHERE upload_url IS NOT NULL")


def downgrade():
    with op.batch_alter_table("recordings") as batch_op:
        batch_op.drop_column("engine")
