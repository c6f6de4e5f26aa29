"""Storage on SQLite (WAL) and PostgreSQL: migrations, constraints, concurrent writers."""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from flask_migrate import downgrade, upgrade
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import IntegrityError

from app import search
from app.models import Call, Recording, Transcript, db, utcnow
from tests.e2e.service import REPO
from tests.helpers import call_sid, call_status_form, post_twilio, recording_form, recording_sid


def test_migrations_create_every_table(app: Flask) -> None:
    with app.app_context():
        tables = set(inspect(db.engine).get_table_names())
    assert {"calls", "recordings", "transcripts", "alembic_version"} <= tables


def test_migrations_match_the_models(app: Flask) -> None:
    """A model change without a migration would leave deployed databases behind."""
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_name": search.include_name}
        )
        assert compare_metadata(context, db.metadata) == []


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(app: Flask) -> None:
    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            pytest.skip("SQLite only")
        with db.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 15000
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


@pytest.mark.parametrize(
    ("model", "values"),
    [
        (Call, {"call_sid": call_sid()}),
        (Transcript, {"transcript_id": "t-1", "recording_id": 1, "status": "queued"}),
    ],
)
def test_provider_ids_are_unique(app: Flask, model: type, values: dict[str, object]) -> None:
    with app.app_context():
        if model is Transcript:
            db.session.add(Call(id=1, call_sid=call_sid(9)))
            db.session.add(Recording(id=1, recording_sid=recording_sid(), call_id=1, account_sid="AC"))
            db.session.commit()
        db.session.add(model(**values))
        db.session.commit()
        db.session.add(model(**values))
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()


def test_timestamps_come_back_in_utc(app: Flask) -> None:
    with app.app_context():
        db.session.add(Call(call_sid=call_sid()))
        db.session.commit()
        db.session.expunge_all()
        call = db.session.scalar(select(Call))
        assert call is not None and call.created_at.utcoffset() is not None
        assert call.created_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_concurrent_callbacks_for_one_call_make_one_row(app: Flask) -> None:
    """Twilio's events for a call arrive together; none fails with 'database is locked'."""
    statuses = ["initiated", "ringing", "in-progress", "completed"] * 5

    def deliver(status: str) -> int:
        client = app.test_client()
        form = call_status_form(call_sid(), status, CallDuration="12")
        return post_twilio(client, "/twilio/call-status", form).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(deliver, statuses))
    assert codes == [204] * len(statuses)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Call)) == 1
        call = db.session.scalar(select(Call))
        assert call is not None and call.status == "completed"


def test_concurrent_recording_callbacks_queue_the_work_once(app: Flask) -> None:
    def deliver(n: int) -> int:
        client = app.test_client()
        form = recording_form(call_sid(n % 3), recording_sid(n % 3))
        return post_twilio(client, "/twilio/recording-status", form).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(deliver, range(24)))
    assert codes == [204] * 24
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Recording)) == 3
        assert db.session.scalar(select(func.count()).select_from(Call)) == 3
        db.session.execute(text("SELECT 1"))
    assert app.extensions["jobs"].huey.pending_count() == 3


def test_users_from_before_roles_become_admins_and_keep_their_token(app: Flask) -> None:
    """Migration 0007: nobody loses what they could do."""
    token = "cs_" + "ab" * 24
    with app.app_context():
        downgrade(revision="0006")
        db.session.execute(
            text(
                "INSERT INTO users (username, password_hash, api_token_hash, created_at, updated_at) "
                "VALUES ('old', 'x', :hash, :now, :now)"
            ),
            {"hash": hashlib.sha256(token.encode()).hexdigest(), "now": utcnow()},
        )
        db.session.commit()
        upgrade()
        assert db.session.execute(text("SELECT role FROM users")).scalar() == "admin"
    answer = app.test_client().get(
        "/", headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}
    )
    assert answer.status_code == 200


def writer_lock_file(app: Flask) -> str:
    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            pytest.skip("SQLite only: PostgreSQL locks rows, not the database")
        return f"{db.engine.url.database}-writer"


def turn_is_free(path: str) -> bool:
    """What another process sees: can it take the writer turn on this file now?"""
    fd = os.open(path, os.O_RDWR | os.O_CREAT)  # an open file of its own, as another process has
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing it drops the lock
    return True


def test_a_write_transaction_holds_the_turn_of_every_process_on_the_file(app: Flask) -> None:
    """Writers in other processes queue for the lock file, not in SQLite's busy handler."""
    path = writer_lock_file(app)
    with app.app_context():
        db.session.add(Call(call_sid=call_sid()))
        db.session.flush()  # BEGIN IMMEDIATE: this process's turn
        assert not turn_is_free(path), "another process would have to wait"
        db.session.commit()
        assert turn_is_free(path), "the turn ends with the commit"
        db.session.add(Call(call_sid=call_sid(2)))
        db.session.flush()
        db.session.rollback()
        assert turn_is_free(path), "and with a rollback"


def test_a_webhook_waits_for_another_process_turn_and_goes_when_it_ends(app: Flask) -> None:
    path = writer_lock_file(app)
    other = os.open(path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(other, fcntl.LOCK_EX)  # another process is writing
    with ThreadPoolExecutor(max_workers=1) as pool:
        answer = pool.submit(
            post_twilio, app.test_client(), "/twilio/call-status", call_status_form(call_sid(), "ringing")
        )
        with pytest.raises(FuturesTimeout):
            answer.result(timeout=0.5)  # waiting for its turn
        os.close(other)  # that process commits, or ends
        assert answer.result(timeout=10).status_code == 204
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Call)) == 1


def test_a_process_waiting_for_the_turn_keeps_others_from_jumping_the_queue(app: Flask) -> None:
    """The waiter holds the gate: when the turn ends, the process that had it cannot take it
    straight back for another of its threads, however busy it is; turns alternate."""
    path = writer_lock_file(app)
    other = os.open(path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(other, fcntl.LOCK_EX)  # another process is writing, and has more to write
    with ThreadPoolExecutor(max_workers=1) as pool:
        answer = pool.submit(
            post_twilio, app.test_client(), "/twilio/call-status", call_status_form(call_sid(), "ringing")
        )
        deadline = time.monotonic() + 10
        while turn_is_free(f"{path}-gate") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not turn_is_free(f"{path}-gate"), "the webhook waits holding the gate"
        os.close(other)  # the other process's turn ends; its next writer must wait at the gate
        assert answer.result(timeout=10).status_code == 204
    assert turn_is_free(f"{path}-gate") and turn_is_free(path)


def test_serving_processes_leave_the_migration_tools_unloaded(tmp_path: Path) -> None:
    """gunicorn's app (wsgi) and the flask command's app load alembic only for `flask db`:
    about 12 MiB in each web and queue worker that never migrates."""
    probe = (
        "import sys, wsgi; "
        "wsgi.app.cli.list_commands(None); "  # what `flask` reads before running `flask worker`
        "print(sorted(m for m in ('alembic', 'flask_migrate', 'mako') if m in sys.modules))"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "SECRET_KEY": "s" * 40,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'probe.db'}",
    }
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
