"""Provider outages: every fault is retried with backoff until it passes, or shown.

Upload, submit and fetch each meet AssemblyAI answering 429 (with
Retry-After), 500 and 503, timing out, and dropping the connection; the
Twilio media download fails or comes back cut short. Every case ends with
the transcript stored once and AssemblyAI billed for one submission.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from email.utils import format_datetime

import pytest
from flask import Flask

from app.models import Recording, Transcript, utcnow
from app.pipeline import BACKOFF_BASE_SECONDS, BACKOFF_CAP_SECONDS, backoff_delay
from app.states import Stage
from tests.fakes.assemblyai_api import FakeAssemblyAI
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import post_assemblyai_webhook, recording_sid
from tests.reliability.inprocess import (
    recording_arrives,
    recording_id_of,
    retries_fall_due,
    rows,
    run_jobs,
)

FAULTS = ["429", "500", "503", "timeout", "drop"]


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    # A short HTTP timeout, so that a provider that hangs costs the test a second.
    return make_app(HTTP_TIMEOUT="1")


def inject(fake: FakeAssemblyAI, step: str, fault: str) -> None:
    if fault == "429":
        fake.fail_next(step, status=429, retry_after=30)
    elif fault in ("500", "503"):
        fake.fail_next(step, status=int(fault))
    elif fault == "timeout":
        fake.delay_next(step, 2.5)
    else:
        fake.drop_next(step)


def transcribe_one(app: Flask, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI) -> None:
    """Push recording 1 through every step, letting retries fall due as needed."""
    client = app.test_client()
    assert recording_arrives(client, twilio_api, 1).status_code == 204
    run_jobs(app)
    for _ in range(5):
        if assemblyai_api.jobs:
            break
        retries_fall_due(app)
    (transcript_id,) = assemblyai_api.jobs
    assemblyai_api.complete(transcript_id, text="Made it through.")
    assert post_assemblyai_webhook(client, app, recording_id_of(app, 1), transcript_id).status_code == 200
    run_jobs(app)
    for _ in range(5):
        if rows(app, Recording)[0].stage == Stage.TRANSCRIBED:
            break
        retries_fall_due(app)


def assert_transcribed_once(app: Flask, assemblyai_api: FakeAssemblyAI) -> None:
    (recording,) = rows(app, Recording)
    assert recording.stage == Stage.TRANSCRIBED, recording.last_error
    (transcript,) = rows(app, Transcript)
    assert (transcript.status, transcript.text) == ("completed", "Made it through.")
    assert len(assemblyai_api.submissions) == 1, "AssemblyAI must bill one submission"


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("step", ["upload", "submit", "fetch"])
def test_a_passing_fault_is_retried_until_the_transcript_is_stored(
    app: Flask, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI, step: str, fault: str
) -> None:
    inject(assemblyai_api, step, fault)
    transcribe_one(app, twilio_api, assemblyai_api)
    assert_transcribed_once(app, assemblyai_api)
    assert len(assemblyai_api.requests_of(step)) >= 2, f"the {step} was never tried again"


def test_retry_after_is_honoured(app: Flask, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI) -> None:
    assemblyai_api.fail_next("submit", status=429, retry_after=120)
    recording_arrives(app.test_client(), twilio_api, 1)
    before = utcnow()
    run_jobs(app)
    (recording,) = rows(app, Recording)
    assert recording.attempts == 1
    assert recording.next_attempt_at is not None
    assert recording.next_attempt_at >= before + timedelta(seconds=120)
    assert "429" in (recording.last_error or "")


def test_retry_after_as_an_http_date_is_honoured(
    app: Flask, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    """RFC 7231 allows Retry-After as an IMF-fixdate; the next attempt waits until then."""
    not_before = (utcnow() + timedelta(minutes=10)).replace(microsecond=0)
    assemblyai_api.fail_next("submit", status=429, retry_after=format_datetime(not_before, usegmt=True))
    recording_arrives(app.test_client(), twilio_api, 1)
    run_jobs(app)
    (recording,) = rows(app, Recording)
    assert recording.attempts == 1
    assert recording.next_attempt_at is not None
    assert recording.next_attempt_at >= not_before
    assert recording.next_attempt_at < not_before + timedelta(minutes=1), "waits for the date, not longer"
    assert "429" in (recording.last_error or "")
    assert assemblyai_api.submissions == []


@pytest.mark.parametrize("fault", ["500", "404", "truncated", "drop"])
def test_twilio_media_faults_are_retried(
    app: Flask, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI, fault: str
) -> None:
    if fault == "truncated":
        twilio_api.truncate_next_media()
    elif fault == "drop":
        twilio_api.drop_next("media")
    else:
        twilio_api.fail_next("media", status=int(fault))
    transcribe_one(app, twilio_api, assemblyai_api)
    assert_transcribed_once(app, assemblyai_api)
    assert twilio_api.media_downloads("RE" + f"{1:032x}") == 2
    (upload,) = [u for u in assemblyai_api.uploads if u["data"]]
    assert upload["data"] == twilio_api._audio["RE" + f"{1:032x}"]


def test_past_the_limit_the_recording_fails_visibly_and_a_retry_finishes_it(
    make_app: Callable[..., Flask], twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    app = make_app(JOB_MAX_ATTEMPTS="3")
    assemblyai_api.fail_next("submit", status=503, times=3)
    recording_arrives(app.test_client(), twilio_api, 1)
    run_jobs(app)
    retries_fall_due(app)
    retries_fall_due(app)
    (recording,) = rows(app, Recording)
    assert recording.stage == Stage.FAILED
    assert recording.last_error == (
        "AssemblyAI answered HTTP 503: Service Unavailable (gave up after 3 attempts)"
    )
    assert assemblyai_api.submissions == []

    result = app.test_cli_runner().invoke(args=["retry", recording.recording_sid])
    assert result.exit_code == 0, result.output
    assert "queued again" in result.output
    run_jobs(app)
    assert rows(app, Recording)[0].stage == Stage.SUBMITTED
    assert len(assemblyai_api.submissions) == 1


def test_retry_of_a_fetch_failure_fetches_instead_of_paying_again(
    make_app: Callable[..., Flask], twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    app = make_app(JOB_MAX_ATTEMPTS="2")
    client = app.test_client()
    recording_arrives(client, twilio_api, 1)
    run_jobs(app)
    (transcript_id,) = assemblyai_api.jobs
    assemblyai_api.complete(transcript_id, text="Made it through.")
    assemblyai_api.fail_next("fetch", status=500, times=2)
    post_assemblyai_webhook(client, app, recording_id_of(app, 1), transcript_id)
    run_jobs(app)
    retries_fall_due(app)
    assert rows(app, Recording)[0].stage == Stage.FAILED

    result = app.test_cli_runner().invoke(args=["retry", "--all-failed"])
    assert result.exit_code == 0, result.output
    run_jobs(app)
    assert_transcribed_once(app, assemblyai_api)


def test_retry_command_leaves_healthy_recordings_alone(
    app: Flask, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    recording_arrives(app.test_client(), twilio_api, 1)
    run_jobs(app)
    result = app.test_cli_runner().invoke(args=["retry", recording_sid(1), recording_sid(9)])
    assert "not failed, left alone" in result.output
    assert "no such recording" in result.output
    assert len(assemblyai_api.submissions) == 1


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    for attempt in range(1, 8):
        ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
        delays = {backoff_delay(attempt) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1, "no jitter: retries of many recordings would arrive together"
    assert backoff_delay(30) <= BACKOFF_CAP_SECONDS
    assert backoff_delay(1, retry_after=90) == 90
