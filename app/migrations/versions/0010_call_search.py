"""Full-text search over calls, and the indexes the calls list pages and filters with.

On SQLite an FTS5 table (unicode61); on PostgreSQL a tsvector on the
'simple' configuration with a GIN index. Every existing call is indexed.

Revision ID: 0010
Revises: 0009
"""

from alembic import op

from app import search

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade():
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(
            "CREATE TABLE call_search ("
            " call_id integer PRIMARY KEY REFERENCES calls (id) ON DELETE CASCADE,"
            " document tsvector NOT NULL)"
        )
        op.execute("CREATE INDEX call_search_document ON call_search USING gin (document)")
    else:
        op.execute("CREATE VIRTUAL TABLE call_search USING fts5 (body, tokenize = 'unicode61')")
    op.create_index("ix_calls_created_at_id", "calls", ["created_at", "id"])
    op.create_index("ix_calls_from_number", "calls", ["from_number"])
    op.create_index("ix_calls_to_number", "calls", ["to_number"])
    op.create_index("ix_calls_updated_at", "calls", ["updated_at"])
    op.create_index("ix_recordings_updated_at", "recordings", ["updated_at"])
    search.rebuild(bind)
    if bind.dialect.name == "postgresql":
        # Statistics for the planner now, not at autovacuum's next visit: without them
        # every word looks common, and a rare one is searched for by walking every call.
        op.execute("ANALYZE call_search")


def downgrade():
    op.drop_index("ix_recordings_updated_at", table_name="recordings")
    op.drop_index("ix_calls_updated_at", table_name="calls")
    op.drop_index("ix_calls_to_number", table_name="calls")
    op.drop_index("ix_calls_from_number", table_name="calls")
    op.drop_index("ix_calls_created_at_id", table_name="calls")
    op.execute("DROP TABLE call_search")
