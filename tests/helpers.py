"""What the tests share besides fixtures: test credentials, storage set-up,
Twilio's signed requests, the queue, logging in.

Fixtures live in ``conftest.py``; everything a test imports comes from here.
Providers are faked only at the HTTP boundary, by the servers in
``tests/fakes`` on 127.0.0.1. Twilio requests are signed the way Twilio
signs them.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import uuid
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import redis
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from twilio.request_validator import RequestValidator
from werkzeug.security import check_password_hash

from app import search
from app.config import WEBHOOK_HEADER_NAME, Settings
from app.models import Call, DialAttempt, Recording, SpeakerName, Transcript, db
from tests.fakes.assemblyai_api import FakeAssemblyAI
from tests.fakes.twilio_api import DEFAULT_PHONE_NUMBER, FakeTwilio
from tests.skips import unavailable

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "test-twilio-auth-token-5f2b9c"
ASSEMBLYAI_KEY = "test-assemblyai-key-8d41e0"
BASE_URL = "https://callscribe.example"
TWILIO_NUMBER = DEFAULT_PHONE_NUMBER  # the number the fake Twilio account owns
ADMIN_PASSWORD = "test-admin-password-7c1d"
SECRET_KEY = "test-secret-key-1b6f0e3a9d"

BACKENDS = ("sqlite", "postgres+redis")


def reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), 2):
            return True
    except OSError:
        return False


def server_backend_or_skip() -> tuple[str, str]:
    """PostgreSQL and Redis URLs for the scale-out configuration, or skip saying why."""
    database_url = os.environ.get("TEST_DATABASE_URL")
    redis_url = os.environ.get("TEST_REDIS_URL")
    if not database_url or not redis_url:
        unavailable("postgres+redis: set TEST_DATABASE_URL and TEST_REDIS_URL to run (.ci/run does)")
    if not reachable(database_url, 5432):
        unavailable(f"postgres+redis: PostgreSQL at {urlsplit(database_url).netloc} is not reachable")
    if not reachable(redis_url, 6379):
        unavailable(f"postgres+redis: Redis at {urlsplit(redis_url).netloc} is not reachable")
    return database_url, redis_url


def postgres_schema(url: str, schema: str, *, drop: bool = False) -> str:
    """Create (or drop) a schema of its own for one test; returns a URL that uses it.

    A schema per test keeps tests apart even when two suites share one
    database at the same time.
    """
    engine = sa.create_engine(Settings.from_env({"DATABASE_URL": url, "SECRET_KEY": "x"}).database_url)
    with engine.begin() as connection:
        if drop:
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        else:
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    engine.dispose()
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}"


@contextmanager
def storage_env(kind: str) -> Iterator[dict[str, str]]:
    """Environment variables that put the app on one storage configuration, cleaned up after."""
    if kind == "sqlite":
        yield {}  # the defaults: SQLite files in the instance folder
        return
    database_url, redis_url = server_backend_or_skip()
    schema = f"test_{uuid.uuid4().hex[:12]}"
    queue_name = f"test-{schema}"
    try:
        yield {
            "DATABASE_URL": postgres_schema(database_url, schema),
            "REDIS_URL": redis_url,
            "QUEUE_NAME": queue_name,
        }
    finally:
        postgres_schema(database_url, schema, drop=True)
        with redis.Redis.from_url(redis_url) as client:
            for key in client.scan_iter(match=f"*{queue_name}*"):
                client.delete(key)


def full_env(twilio_api: FakeTwilio | None, assemblyai_api: FakeAssemblyAI | None) -> dict[str, str]:
    env = {
        "SECRET_KEY": SECRET_KEY,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_PHONE_NUMBER": TWILIO_NUMBER,
        "BASE_URL": BASE_URL,
        "ASSEMBLYAI_API_KEY": ASSEMBLYAI_KEY,
        "ADMIN_PASSWORD": ADMIN_PASSWORD,
    }
    if twilio_api is not None:
        env["TWILIO_API_BASE_URL"] = twilio_api.base_url
    if assemblyai_api is not None:
        env["ASSEMBLYAI_BASE_URL"] = assemblyai_api.base_url
    return env


class BrowserClient(FlaskClient):
    """A test client that sends the CSRF token with every form and JSON POST,
    as a browser sends the hidden field of the form it was shown.

    ``post(..., csrf=False)`` sends none, to show that such a request fails.
    Webhook routes get none: their callers are servers, not browsers.
    """

    _token: str | None = None

    def csrf_token(self) -> str:
        if self._token is None:
            page = super().get("/login").get_data(as_text=True)
            match = re.search(r'name="csrf_token" value="([^"]+)"', page)
            assert match, "the login page has no CSRF token"
            self._token = match.group(1)
        return self._token

    def post(self, *args: Any, csrf: bool = True, **kwargs: Any) -> Any:
        path = str(args[0] if args else kwargs.get("path", "/"))
        if csrf and not path.startswith(("/twilio/", "/assemblyai/")):
            if "json" in kwargs:
                kwargs["headers"] = {**kwargs.get("headers", {}), "X-CSRFToken": self.csrf_token()}
            elif isinstance(kwargs.get("data"), dict):
                kwargs["data"] = {"csrf_token": self.csrf_token(), **kwargs["data"]}
            elif kwargs.get("data") is None:
                kwargs["data"] = {"csrf_token": self.csrf_token()}
        response = super().post(*args, **kwargs)
        if path.startswith(("/login", "/logout")):
            self._token = None  # a new session has a new CSRF secret
        return response


def close(app: Flask) -> None:
    """Give back every connection an app holds: database pool and queue."""
    storage = app.extensions["jobs"].huey.storage
    storage.close()  # SQLite's connection; a no-op for Redis, whose pool follows
    pool = getattr(storage, "pool", None)
    if pool is not None:
        pool.disconnect()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


# -- Twilio, as Twilio would call us --------------------------------------


def twilio_signature(url: str, params: dict[str, str], token: str = AUTH_TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, params)


def post_twilio(
    client: FlaskClient,
    path: str,
    params: dict[str, str],
    *,
    query: str = "",
    token: str = AUTH_TOKEN,
    signature: str | None = None,
) -> Any:
    """POST a form the way Twilio does: signed over the public URL it called."""
    url = f"{BASE_URL}{path}" + (f"?{query}" if query else "")
    if signature is None:
        signature = twilio_signature(url, params, token)
    return client.post(
        path + (f"?{query}" if query else ""),
        data=urlencode(params),
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": signature},
    )


def call_sid(n: int = 1) -> str:
    return "CA" + f"{n:032x}"


def recording_sid(n: int = 1) -> str:
    return "RE" + f"{n:032x}"


def call_status_form(sid: str, status: str, **extra: str) -> dict[str, str]:
    form = {
        "AccountSid": ACCOUNT_SID,
        "CallSid": sid,
        "CallStatus": status,
        "Direction": "inbound",
        "From": "+14155550123",
        "To": TWILIO_NUMBER,
        "ApiVersion": "2010-04-01",
    }
    form.update(extra)
    return form


def recording_form(call: str, recording: str, status: str = "completed", **extra: str) -> dict[str, str]:
    form = {
        "AccountSid": ACCOUNT_SID,
        "CallSid": call,
        "RecordingSid": recording,
        "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{recording}",
        "RecordingStatus": status,
        "RecordingDuration": "7",
        "RecordingChannels": "1",
        "RecordingSource": "RecordVerb",
        "RecordingStartTime": "Sun, 22 Nov 2026 10:00:00 +0000",
    }
    form.update(extra)
    return form


# -- the queue -------------------------------------------------------------


def run_jobs(app: Flask, limit: int = 50) -> int:
    """Run what the queue holds now, as the worker would; returns how many ran.

    Raises only when jobs are still pending after ``limit`` of them ran: a
    queue that empties on exactly the ``limit``-th job has drained.
    """
    huey = app.extensions["jobs"].huey
    ran = 0
    # Redis's dequeue blocks for a second on an empty queue; ask first.
    while huey.pending_count():
        if ran == limit:
            raise AssertionError(f"the queue did not drain after {limit} jobs")
        task = huey.dequeue()
        if task is None:
            break
        huey.execute(task)
        ran += 1
    return ran


def login(client: FlaskClient, password: str = ADMIN_PASSWORD) -> Any:
    return client.post("/login", data={"username": "admin", "password": password})


def post_assemblyai_webhook(
    client: FlaskClient, app: Flask, recording_id: int, transcript_id: str, secret: str | None = None
) -> Any:
    """POST AssemblyAI's webhook as AssemblyAI does: with the header the service asked for."""
    if secret is None:
        secret = app.extensions["settings"].webhook_secret
    return client.post(
        f"/assemblyai/webhook?recording={recording_id}",
        json={"transcript_id": transcript_id, "status": "completed"},
        headers={WEBHOOK_HEADER_NAME: secret},
    )


# -- logging in from a client address -----------------------------------------


class Visitor:
    """One browser at one client address, posting the login form."""

    def __init__(self, app: Flask, address: str) -> None:
        self.client = app.test_client()
        self.client.environ_base["REMOTE_ADDR"] = address

    def log_in(self, username: str, password: str, **headers: str) -> Any:
        return self.client.post(
            "/login",
            data={"username": username, "password": password},
            headers={name.replace("_", "-"): value for name, value in headers.items()},
        )


# -- password checks, observed -------------------------------------------------


@contextmanager
def password_checks() -> Iterator[list[str]]:
    """The hash method (e.g. ``scrypt:32768:8:1``) of every werkzeug password
    check made in this thread, in order.

    A profiler only watches calls, so nothing of the app or of werkzeug is
    replaced; the method string fixes the work a check does. The test client
    runs each request in the calling thread.
    """
    checks: list[str] = []
    watched = check_password_hash.__code__

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code is watched:
            checks.append(str(frame.f_locals["pwhash"]).split("$", 1)[0])

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        yield checks
    finally:
        sys.setprofile(previous)


def dial_attempts(app: Flask) -> list[DialAttempt]:
    """The /dial audit trail, oldest first."""
    with app.app_context():
        found = list(db.session.scalars(select(DialAttempt).order_by(DialAttempt.id)))
        db.session.expunge_all()
        return found


# The calls the list tests store start here, a minute apart.
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def store_call(
    app: Flask,
    n: int,
    text: str | None = None,
    *,
    direction: str = "inbound",
    status: str = "completed",
    from_number: str = "+14155550123",
    to_number: str = "+14155550100",
    created_at: datetime | None = None,
    stage: str | None = "transcribed",
    recording_status: str = "completed",
    names: dict[str, str] | None = None,
    sid: str | None = None,
) -> str:
    """A call (with a recording and a transcript when ``text`` is given), indexed as the app indexes it."""
    with app.app_context():
        call = Call(
            call_sid=sid or call_sid(n),
            direction=direction,
            status=status,
            from_number=from_number,
            to_number=to_number,
            created_at=created_at or T0 + timedelta(minutes=n),
            duration=30,
        )
        db.session.add(call)
        db.session.flush()
        if stage is not None or recording_status != "completed":
            recording = Recording(
                recording_sid=recording_sid(n),
                call_id=call.id,
                account_sid=ACCOUNT_SID,
                status=recording_status,
                stage=stage,
                channels=1,
                source="RecordVerb",
            )
            db.session.add(recording)
            db.session.flush()
            if text is not None:
                db.session.add(
                    Transcript(
                        transcript_id=f"tr-{n}",
                        recording_id=recording.id,
                        status="completed" if stage == "transcribed" else "processing",
                        text=text,
                        utterances=[{"speaker": "A", "start": 0, "end": 1000, "text": text}],
                    )
                )
        for label, name in (names or {}).items():
            db.session.add(SpeakerName(call_id=call.id, label=label, name=name))
        db.session.flush()
        search.reindex(db.session.connection(), call.id)
        db.session.commit()
    return sid or call_sid(n)


# -- audio files, as people upload them -------------------------------------------


def wav_bytes(*, channels: int = 1, seconds: float = 0.25, rate: int = 8000) -> bytes:
    """A real WAV file (a faint hum): the fake engine reads bytes, not sound."""
    out = BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(b"\x01\x00" * int(rate * seconds) * channels)
    return out.getvalue()


def stored_calls(app: Flask) -> list[tuple[Call, Recording]]:
    """Every call with each of its recordings, as stored (detached, to read after the app context)."""
    with app.app_context():
        rows = db.session.execute(select(Call, Recording).join(Recording.call)).all()
        db.session.expunge_all()
        return [(c, r) for c, r in rows]


def media_files(app: Flask) -> list[Path]:
    """The files the app keeps in its media folder (MEDIA_DIR's default)."""
    return [p for p in Path(app.instance_path, "media").rglob("*") if p.is_file()]


# What a reconciliation round that finds nothing to do returns.
NOTHING_DUE = dict.fromkeys(("advance", "poll", "recover", "delete", "forget", "expire"), 0)
