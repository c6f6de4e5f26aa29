"""callscribe: record calls with Twilio, transcribe them with AssemblyAI.

``create_app`` builds everything; each step below registers one part.
"""

from __future__ import annotations

import contextlib
import os
import select
import sqlite3
from datetime import timedelta
from typing import Any

from flask import Flask, has_request_context, jsonify, render_template, request
from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError, OperationalError
from werkzeug.exceptions import HTTPException

from . import (
    access,
    api,
    auth,
    callbacks,
    cli,
    clients,
    exports,
    hardening,
    jobs,
    media,
    migrate,
    pages,
    states,
    users,
    webhooks,
    wording,
    worker,
)
from .config import NotConfigured, Settings
from .logs import configure_logging
from .models import db
from .numbers import RowIdConverter
from .writer_turn import WriterTurn

MIGRATIONS = os.path.join(os.path.dirname(__file__), "migrations")


def create_app(settings: Settings | None = None, *, instance_path: str | None = None) -> Flask:
    """Build the app. Without ``settings`` they are read from the environment."""
    app = Flask(__name__, instance_path=instance_path, instance_relative_config=True)
    if settings is None:
        settings = Settings.from_env(instance_path=app.instance_path)
    app.extensions["settings"] = settings
    configure_logging(settings.log_level, settings.secrets())
    register_database(app, settings)
    clients.init_app(app, settings)
    jobs.init_app(app, redis_url=settings.redis_url, name=settings.queue_name)
    media.init_app(app, folder=settings.media_dir)
    worker.init_app(app)
    register_blueprints(app)
    hardening.init_app(app, trusted_proxies=settings.trusted_proxies)
    access.init_app(app)
    hardening.init_csrf(app)
    register_error_handlers(app)
    cli.init_app(app)
    return app


# Requests that only read: on SQLite their transactions never take the write lock.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# How long a write waits for SQLite's write lock before "database is locked" (a 503).
SQLITE_BUSY_SECONDS = 15
# In a pooled SQLite connection's info: it holds this process's turn at the write lock.
WRITER_TURN = "callscribe_writer_turn"


def register_database(app: Flask, settings: Settings) -> None:
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # The cookie's own limit; app.auth also ends idle and old sessions.
        PERMANENT_SESSION_LIFETIME=timedelta(days=settings.session_max_days),
        # Webhook bodies are small; a huge one is an attack, answered 413.
        MAX_CONTENT_LENGTH=1024 * 1024,
    )
    sqlite = settings.database_url.startswith("sqlite:")
    # As many connections as threads use the database at once (gunicorn's WEB_THREADS, the
    # worker's WORKER_THREADS bound that), five kept open: a thread streaming a CSV to a
    # slow client holds one, and must not leave a webhook waiting for the pool.
    pool = {"pool_size": 5, "max_overflow": -1}
    if sqlite:
        os.makedirs(app.instance_path, exist_ok=True)
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {**pool, "connect_args": {"timeout": SQLITE_BUSY_SECONDS}}
    else:
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {**pool, "pool_recycle": 1800}
    db.init_app(app)
    migrate.init_app(app, db, directory=MIGRATIONS, render_as_batch=sqlite, compare_type=True)
    with app.app_context():
        if sqlite:
            _tune_sqlite(db.engine)
        else:
            _replace_closed_connections(db.engine)


def _tune_sqlite(engine: Any) -> None:
    """WAL and a busy timeout, so gunicorn workers and the queue worker can all write.

    A transaction that writes starts with BEGIN IMMEDIATE: one that read
    first and wrote later would otherwise fail at once with "database is
    locked" when another process wrote in between, busy timeout or not.
    A page read (GET, HEAD) starts a plain deferred BEGIN instead, and never
    takes the write lock: a slow search must not hold up a webhook. A GET
    that writes does so in a transaction of its own, whose first statement
    is the write (app.tokens).

    Writers take turns at the write lock (app.writer_turn): the threads of
    a process and the processes on the file queue for it, from BEGIN
    IMMEDIATE until the transaction has committed or rolled back (or,
    failing that, its connection goes back to the pool), and the next one
    goes the moment it is free, where SQLite's busy handler polls in sleeps
    of up to 100 ms and leaves the lock idle in between. A writer that has
    waited the whole busy timeout for its turn goes on to SQLite's own wait
    rather than fail.
    """
    writer = WriterTurn(engine.url.database, timeout=SQLITE_BUSY_SECONDS)

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_SECONDS * 1000}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        if has_request_context() and request.method in READ_METHODS:
            connection.exec_driver_sql("BEGIN")
            return
        connection.info[WRITER_TURN] = writer.acquire()
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    def end_turn(info: dict[str, Any]) -> None:
        if info.pop(WRITER_TURN, False):
            writer.release()

    @event.listens_for(engine, "commit")
    def on_commit(connection: Any) -> None:
        # This event comes before SQLAlchemy's COMMIT: commit here, so that the
        # next writer's turn starts after it. Should it fail, SQLAlchemy's own
        # commit, which follows (a no-op after this one), raises as it would.
        if connection.info.get(WRITER_TURN):
            with contextlib.suppress(sqlite3.Error):
                connection.connection.dbapi_connection.commit()
        end_turn(connection.info)

    @event.listens_for(engine, "rollback")
    def on_rollback(connection: Any) -> None:
        end_turn(connection.info)

    @event.listens_for(engine, "checkin")
    def on_checkin(dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            end_turn(record.info)


def _replace_closed_connections(engine: Any) -> None:
    """A pooled connection the server has closed is replaced before use, at no round trip.

    PostgreSQL tells a client when it ends its session (a restart, an
    administrator, an idle timeout): it sends an error and closes the
    socket, so the idle connection has something to read, where a healthy
    one has nothing. One ``poll()`` at checkout sees that, and the pool
    opens a new connection instead (it retries on ``DisconnectionError``).
    ``pool_pre_ping`` did the same with a ``SELECT 1`` round trip per
    request, 13 % of a webhook's time. A connection cut silently, with no
    word from the server, still fails its first statement and answers 503,
    which the providers retry.
    """

    @event.listens_for(engine, "checkout")
    def on_checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if dbapi_connection.closed:
            raise DisconnectionError("the connection is closed")
        poller = select.poll()
        poller.register(dbapi_connection.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
        if poller.poll(0):
            raise DisconnectionError("the server has closed the connection")


def register_blueprints(app: Flask) -> None:
    # Before any route that names it: ids in paths are ASCII digits within range.
    app.url_map.converters["row_id"] = RowIdConverter
    auth.init_app(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(users.bp)
    app.register_blueprint(exports.bp)
    app.register_blueprint(api.bp)
    # Templates name states by their enums (states.Stage.FAILED), never by bare strings.
    app.jinja_env.globals["states"] = states
    # What the current user may do decides which buttons a page shows.
    app.jinja_env.globals.update(may=access.may, Permission=access.Permission)
    # People's words for Twilio's values (the raw value goes in a tooltip).
    app.jinja_env.filters.update(
        direction_label=wording.direction,
        source_label=wording.source,
        call_kind=wording.call_kind,
        engine_label=wording.engine,
    )


def _wants_json() -> bool:
    """Webhooks and scripts get JSON errors; people get a page."""
    return access.wants_json() or request.path.startswith(callbacks.PROVIDER_PREFIXES)


def register_error_handlers(app: Flask) -> None:
    """Short answers that name the problem, never a traceback or a secret."""

    def answer(status: int, message: str) -> Any:
        if _wants_json():
            return jsonify(error=message), status
        return render_template("error.html", status=status, message=message), status

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Any:
        body, status = answer(error.code or 500, error.description or error.name)
        # What the error says beyond its body: a 405's Allow, a 429's Retry-After.
        kept = {k: v for k, v in error.get_headers() if k in ("Allow", "Retry-After", "WWW-Authenticate")}
        return body, status, kept

    @app.errorhandler(NotConfigured)
    def not_configured(error: NotConfigured) -> Any:
        return answer(503, str(error))

    @app.errorhandler(OperationalError)
    def database_down(error: OperationalError) -> Any:
        # 503, so that Twilio and AssemblyAI try again later: a 4xx would be final.
        app.logger.error("database unavailable: %s", str(error.orig).strip()[:300])
        db.session.rollback()
        return answer(503, "The database is unavailable; try again shortly.")

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Any:
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        return answer(500, "Something went wrong on our side.")


__all__ = ["create_app"]
