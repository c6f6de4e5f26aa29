"""Storage on SQLite (WAL) and PostgreSQL: migrations, constraints, concurrent writers."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from flask_migrate import downgrade, upgrade
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import IntegrityError

from app import search
from app.models import Call, Recording, Transcript, db, utcnow
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
