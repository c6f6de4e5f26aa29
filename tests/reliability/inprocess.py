"""Driving the pipeline in one process, with time that can be made to pass.

"Time passes" ages every timestamp the service stored, exactly as if the
clock had moved on, and lets scheduled retries fall due. Nothing of the
service's code is replaced: the jobs are the real Huey tasks on the real
queue, and the providers are the fake servers.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app import worker
from app.models import Call, Recording, Transcript, UTCDateTime, db
from tests.fakes import audio
from tests.fakes.assemblyai_api import FakeAssemblyAI
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import call_sid, call_status_form, post_twilio, recording_form, recording_sid
from tests.helpers import run_jobs as run_queued_jobs

# Every timestamp the service stores, found from the models themselves.
TIME_COLUMNS = {
    model: tuple(c.name for c in model.__table__.columns if isinstance(c.type, UTCDateTime))
    for model in (Call, Recording, Transcript)
}


def audio_for(n: int, channels: int = 1) -> bytes:
    """Recording n's WAV file, distinct bytes per recording."""
    return audio.wav(n.to_bytes(4, "little") + bytes([n % 251]) * 2048, channels=channels)


def channels_uploaded(assemblyai_api: FakeAssemblyAI, submission: dict[str, Any]) -> int:
    """How many channels the WAV file behind a submitted transcript has."""
    (upload,) = [u for u in assemblyai_api.uploads if u["upload_url"] == submission["audio_url"]]
    return audio.channel_count(upload["data"])


def time_passes(app: Flask, seconds: float) -> None:
    """Age every stored timestamp by ``seconds``: the service sees that much time gone by."""
    shift = timedelta(seconds=seconds)
    with app.app_context():
        for model, columns in TIME_COLUMNS.items():
            table = model.__table__
            for row in db.session.execute(select(table)).mappings().all():
                # Naming updated_at explicitly keeps its onupdate from firing.
                aged = {c: row[c] - shift for c in columns if row[c] is not None}
                db.session.execute(table.update().where(table.c.id == row["id"]).values(**aged))
        db.session.commit()


def run_jobs(app: Flask, *, until: datetime | None = None) -> int:
    """Run the retries due by ``until``, then whatever is queued, as the worker would.

    A retry scheduled while these run goes to the schedule (Huey does that
    for a task whose time has not come) and waits for time to pass again.
    """
    huey = app.extensions["jobs"].huey
    due = huey.read_schedule(until) if until is not None else []
    for task in due:
        huey.execute(task, timestamp=until)
    return len(due) + run_queued_jobs(app)


def retries_fall_due(app: Flask, seconds: float = 4000) -> int:
    """Let ``seconds`` pass and run every retry that fell due."""
    time_passes(app, seconds)
    # Huey keeps its schedule in naive UTC.
    far = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=seconds)
    return run_jobs(app, until=far)


def reconcile(app: Flask) -> dict[str, int]:
    with app.app_context():
        return worker.reconcile()


def call_completes(client: FlaskClient, n: int, *, duration: int = 7) -> None:
    for status in ("ringing", "in-progress"):
        post_twilio(client, "/twilio/call-status", call_status_form(call_sid(n), status))
    form = call_status_form(call_sid(n), "completed", CallDuration=str(duration))
    post_twilio(client, "/twilio/call-status", form)


def recording_arrives(client: FlaskClient, twilio_api: FakeTwilio, n: int, *, channels: int = 1) -> Any:
    twilio_api.add_recording(recording_sid(n), audio_for(n, channels), call_sid(n), channels=channels)
    form = recording_form(call_sid(n), recording_sid(n), RecordingChannels=str(channels))
    return post_twilio(client, "/twilio/recording-status", form)


def rows(app: Flask, model: type) -> list[Any]:
    with app.app_context():
        found = list(db.session.scalars(select(model).order_by(model.id)))
        db.session.expunge_all()
        return found


def recording_id_of(app: Flask, n: int) -> int:
    with app.app_context():
        found = db.session.scalar(select(Recording.id).where(Recording.recording_sid == recording_sid(n)))
        assert found is not None, f"no recording {n}"
        return found
