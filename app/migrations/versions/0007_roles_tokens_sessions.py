"""Roles, scoped API tokens, session generations, idempotency keys, a fuller dial audit.

Users that exist before this migration become admins, so that nobody loses
what they could do; each one's single API token becomes a token with every
scope.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ALL_SCOPES = "calls:read calls:dial calls:delete"


def upgrade():
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("role", sa.String(length=16), nullable=False, server_default="admin"))
    with op.batch_alter_table("users") as batch_op:
        batch_op.alter_column("role", server_default=None)

    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("api_tokens") as batch_op:
        batch_op.create_index(batch_op.f("ix_api_tokens_user_id"), ["user_id"], unique=False)
    op.execute(
        "INSERT INTO api_tokens (user_id, token_hash, scopes, created_at) "
        f"SELECT id, api_token_hash, '{ALL_SCOPES}', updated_at FROM users WHERE api_token_hash IS NOT NULL"
    )
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_constraint("uq_users_api_token_hash", type_="unique")
        batch_op.drop_column("api_token_hash")

    op.create_table(
        "session_generations",
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("username"),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("answer", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username", "key"),
    )
    with op.batch_alter_table("idempotency_keys") as batch_op:
        batch_op.create_index(batch_op.f("ix_idempotency_keys_created_at"), ["created_at"], unique=False)

    with op.batch_alter_table("dial_attempts") as batch_op:
        batch_op.add_column(sa.Column("auth_method", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("client_address", sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table("dial_attempts") as batch_op:
        batch_op.drop_column("client_address")
        batch_op.drop_column("auth_method")
    op.drop_table("idempotency_keys")
    op.drop_table("session_generations")
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("api_token_hash", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint("uq_users_api_token_hash", ["api_token_hash"])
    op.drop_table("api_tokens")
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("role")
