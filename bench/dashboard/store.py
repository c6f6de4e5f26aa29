"""The databases a run measures: made, migrated as the app migrates, filled in bulk, dropped.

SQLite is a file in the run's folder (WAL, as the app sets it); PostgreSQL
is a scratch database of its own on the given server. Both are migrated
by the Procfile's release command (``flask db upgrade``) before any row
goes in, so the schema is exactly the app's.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from app import create_app, search
from app.config import Settings
from app.models import Call, Recording, SpeakerName, Transcript, db
from bench.dashboard.corpus import json_serializer
from bench.dashboard.dataset import Batch, batch
from tests.helpers import close

TABLES = (
    ("calls", Call.__table__),
    ("recordings", Recording.__table__),
    ("transcripts", Transcript.__table__),
    ("speaker_names", SpeakerName.__table__),
)
BATCH_SIZE = 1000


@dataclass
class Filled:
    """What went into a store, and how long it took."""

    calls: int = 0
    transcripts: int = 0
    words: int = 0
    transcribed: list[str] = field(default_factory=list)
    rare: list[str] = field(default_factory=list)
    phrase: list[str] = field(default_factory=list)
    insert_seconds: float = 0.0
    index: str = ""  # what the search index step did
    index_seconds: float = 0.0
    size: str = ""


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'callscribe.db'}"


def scratch_postgres(server_url: str, stack: ExitStack) -> str:
    """A new database on ``server_url``'s server, dropped when ``stack`` closes; returns its URL."""
    name = f"bench_dashboard_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(
        Settings.from_env({"DATABASE_URL": server_url, "SECRET_KEY": "x"}).database_url,
        poolclass=NullPool,
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
        print(f"cleaned up: database {name} dropped")

    stack.callback(drop)
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def engine_for(database_url: str) -> sa.Engine:
    """An engine with the URL read as the app reads it; JSON written by the corpus goes in as it is."""
    url = Settings.from_env({"DATABASE_URL": database_url, "SECRET_KEY": "x"}).database_url
    engine = sa.create_engine(url, poolclass=NullPool, json_serializer=json_serializer)
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def on_connect(dbapi_connection: Any, record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    return engine


def batches(seed: int, total: int, processes: int) -> Iterator[Batch]:
    """The run's batches in order, made by ``processes`` worker processes a few batches ahead."""
    ranges = [(start, min(start + BATCH_SIZE, total)) for start in range(0, total, BATCH_SIZE)]
    with ProcessPoolExecutor(max_workers=processes) as pool:
        ahead: deque[Future[Batch]] = deque()
        for start, stop in ranges:
            ahead.append(pool.submit(batch, seed, start, stop, total))
            if len(ahead) > 2 * processes:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()


def fill(database_url: str, seed: int, total: int, processes: int, progress: Callable[[str], None]) -> Filled:
    """Insert ``total`` calls with their rows, in batches, with executemany on the app's tables."""
    engine = engine_for(database_url)
    filled = Filled()
    started = time.monotonic()
    last = started
    try:
        for rows in batches(seed, total, processes):
            with engine.begin() as connection:
                for name, table in TABLES:
                    values = getattr(rows, name)
                    if values:
                        connection.execute(table.insert(), values)
            filled.calls += len(rows.calls)
            filled.transcripts += len(rows.transcripts)
            filled.words += rows.words
            filled.transcribed += rows.transcribed
            filled.rare += rows.rare
            filled.phrase += rows.phrase
            if time.monotonic() - last >= 10:
                last = time.monotonic()
                progress(f"{filled.calls:,} of {total:,} calls in")
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                # Explicit ids leave the sequences behind; the app's own inserts must not collide.
                for _, table in TABLES:
                    next_id = sa.select(sa.func.coalesce(sa.func.max(table.c.id), 0) + 1).scalar_subquery()
                    sequence = sa.func.pg_get_serial_sequence(table.name, "id")
                    connection.execute(sa.select(sa.func.setval(sequence, next_id, False)))
        filled.insert_seconds = time.monotonic() - started
        filled.size = size(engine, database_url)
    finally:
        engine.dispose()
    return filled


def settle(engine: sa.Engine) -> None:
    """What a live database would have done by itself soon after such a load.

    PostgreSQL's autovacuum analyzes tables that changed this much; SQLite
    folds its WAL back into the file at checkpoints. The app never runs
    ANALYZE on SQLite, so neither does this.
    """
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE")
    else:
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def size(engine: sa.Engine, database_url: str) -> str:
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            size = sa.func.pg_size_pretty(sa.func.pg_database_size(sa.func.current_database()))
            return str(connection.scalar(sa.select(size)))
    path = Path(make_url(database_url).database or "")
    total = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    return f"{total / 2**20:,.0f} MB"


# -- the search index ---------------------------------------------------------------------
# The rows above are inserted in bulk, past the pipeline; the app's own rebuild
# indexes every call, as migration 0010 does for an existing database.


def rebuild_search_index(settings: Settings, instance: Path) -> str:
    """Index every call with ``app.search.rebuild``, then settle the database; says what happened.

    Settled after the index, not before: PostgreSQL plans a search with the
    index table's statistics, and an index analyzed while empty makes every
    word look as common as any other.
    """
    app = create_app(settings, instance_path=str(instance))
    try:
        with app.app_context(), db.engine.begin() as connection:
            done = search.rebuild(connection)
    finally:
        close(app)
    engine = engine_for(settings.database_url)
    try:
        settle(engine)
    finally:
        engine.dispose()
    return f"app.search.rebuild(): {done:,} calls"


def default_processes() -> int:
    return max(1, min(4, os.cpu_count() or 1))
