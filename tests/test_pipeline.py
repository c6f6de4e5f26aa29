"""From Twilio's recording callback to a stored transcript, through the real queue.

Twilio and AssemblyAI are the fake servers in ``tests/fakes``; every body
AssemblyAI receives is validated against its OpenAPI spec by the fake.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app import worker
from app.config import WEBHOOK_HEADER_NAME
from app.models import Recording, Transcript, db, utcnow
from app.states import Stage
from tests.fakes.assemblyai_api import FakeAssemblyAI
from tests.fakes.audio import channel_count, wav
from tests.fakes.openapi import transcript_params_errors
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import (
    ACCOUNT_SID,
    ASSEMBLYAI_KEY,
    AUTH_TOKEN,
    BASE_URL,
    NOTHING_DUE,
    call_sid,
    post_assemblyai_webhook,
    post_twilio,
    recording_form,
    recording_sid,
    run_jobs,
)
from tests.reliability.inprocess import retries_fall_due

AUDIO = wav(bytes(range(256)) * 600)  # ~150 kB of 8 kHz mono, as Twilio serves it
# The same length in two channels that differ: a mix-down would not equal it.
DUAL_AUDIO = wav(bytes(range(256)) * 300 + bytes(range(255, -1, -1)) * 300, channels=2)


def recording(app: Flask, sid: str | None = None) -> Recording:
    with app.app_context():
        row = db.session.scalar(select(Recording).where(Recording.recording_sid == (sid or recording_sid())))
        assert row is not None
        db.session.expunge_all()
        return row


def transcript(app: Flask) -> Transcript | None:
    with app.app_context():
        row = db.session.scalar(select(Transcript))
        db.session.expunge_all()
        return row


def recording_completed(
    client: FlaskClient, twilio_api: FakeTwilio, *, channels: int = 1, n: int = 1, audio: bytes = AUDIO
) -> Any:
    twilio_api.add_recording(recording_sid(n), audio, call_sid(n), channels=channels)
    form = recording_form(
        call_sid(n),
        recording_sid(n),
        RecordingChannels=str(channels),
        RecordingSource="DialVerb" if channels == 2 else "RecordVerb",
    )
    return post_twilio(client, "/twilio/recording-status", form)


def test_completed_recording_is_downloaded_uploaded_and_submitted(
    app: Flask, client: FlaskClient, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    assert recording_completed(client, twilio_api).status_code == 204
    # The webhook only stored the row and queued the work.
    assert twilio_api.media_downloads(recording_sid()) == 0
    assert recording(app).stage == Stage.PENDING

    assert run_jobs(app) == 1

    (media,) = twilio_api.requests_of("media")
    assert media.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{recording_sid()}.wav"
    expected_auth = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    assert media.headers["Authorization"] == expected_auth
    (upload,) = assemblyai_api.uploads
    assert upload["data"] == AUDIO and channel_count(upload["data"]) == 1
    assert upload["chunked"], "the recording must be streamed, not read into memory first"
    (submission,) = assemblyai_api.submissions
    assert transcript_params_errors(submission) == []
    row = recording(app)
    assert submission == {
        "audio_url": upload["upload_url"],
        "speech_models": ["universal-3-pro", "universal-2"],
        "webhook_url": f"{BASE_URL}/assemblyai/webhook?recording={row.id}",
        "webhook_auth_header_name": WEBHOOK_HEADER_NAME,
        "webhook_auth_header_value": app.extensions["settings"].webhook_secret,
        "speaker_labels": True,
    }
    assert row.stage == Stage.SUBMITTED
    assert row.upload_url == upload["upload_url"]
    assert row.engine == "assemblyai", "the row says which engine took the audio"
    stored = transcript(app)
    assert stored is not None and stored.status == "queued"
    assert stored.transcript_id == next(iter(assemblyai_api.jobs))


def test_twilio_credentials_never_reach_assemblyai(
    app: Flask, client: FlaskClient, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    recording_completed(client, twilio_api)
    run_jobs(app)
    for request in assemblyai_api.requests:
        assert request.headers.get("Authorization") == ASSEMBLYAI_KEY
        assert AUTH_TOKEN.encode() not in request.body
    assert assemblyai_api.requests, "AssemblyAI was never called"


def test_webhook_fetches_and_stores_the_transcript(
    app: Flask, client: FlaskClient, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    recording_completed(client, twilio_api)
    run_jobs(app)
    transcript_id = next(iter(assemblyai_api.jobs))
    assemblyai_api.complete(
        transcript_id,
        utterances=[
            {"speaker": "A", "text": "Hello, it's Ada."},
            {"speaker": "B", "text": "Hi Ada."},
        ],
    )
    row = recording(app)

    response = post_assemblyai_webhook(client, app, row.id, transcript_id)
    assert response.status_code == 200
    assert assemblyai_api.fetches(transcript_id) == 0, "fetching is the worker's job"
    run_jobs(app)

    assert assemblyai_api.fetches(transcript_id) == 1
    stored = transcript(app)
    assert stored is not None
    assert stored.status == "completed"
    assert stored.text == "Hello, it's Ada. Hi Ada."
    assert [(u["speaker"], u["text"]) for u in stored.utterances or []] == [
        ("A", "Hello, it's Ada."),
        ("B", "Hi Ada."),
    ]
    assert stored.words and stored.confidence is not None and stored.audio_duration is not None
    assert (stored.language_code, stored.speech_model_used) == ("en_us", "universal-3-pro")
    assert recording(app).stage == Stage.TRANSCRIBED


def test_two_channel_recording_is_submitted_multichannel(
    app: Flask, client: FlaskClient, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    recording_completed(client, twilio_api, channels=2, audio=DUAL_AUDIO)
    run_jobs(app)
    (upload,) = assemblyai_api.uploads
    assert channel_count(upload["data"]) == 2, "AssemblyAI got a mono mix-down"
    assert upload["data"] == DUAL_AUDIO
    (media,) = twilio_api.requests_of("media")
    assert media.query == "RequestedChannels=2"
    (submission,) = assemblyai_api.submissions
    assert submission["multichannel"] is True
    assert "speaker_labels" not in submission
    transcript_id = next(iter(assemblyai_api.jobs))
    assemblyai_api.complete(
        transcript_id,
        utterances=[{"channel": 1, "text": "Acme, hello."}, {"channel": 2, "text": "Hi, my order."}],
    )
    post_assemblyai_webhook(client, app, recording(app).id, transcript_id)
    run_jobs(app)
    stored = transcript(app)
    assert stored is not None
    assert [(str(u["channel"]), u["text"]) for u in stored.utterances or []] == [
        ("1", "Acme, hello."),
        ("2", "Hi, my order."),
    ]


def test_language_auto_asks_assemblyai_to_detect_the_language(
    make_app: Callable[..., Flask], twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    app = make_app(ASSEMBLYAI_LANGUAGE="auto")
    recording_completed(app.test_client(), twilio_api)
    run_jobs(app)
    (submission,) = assemblyai_api.submissions
    assert transcript_params_errors(submission) == []
    assert submission["language_detection"] is True
    assert "language_code" not in submission


def test_a_language_code_is_sent_as_given(
    make_app: Callable[..., Flask], twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    app = make_app(ASSEMBLYAI_LANGUAGE="de")
    recording_completed(app.test_client(), twilio_api)
    run_jobs(app)
    (submission,) = assemblyai_api.submissions
    assert transcript_params_errors(submission) == []
    assert submission["language_code"] == "de"
    assert "language_detection" not in submission


def test_url_delivery_hands_over_the_media_url_without_uploading(
    make_app: Callable[..., Flask], twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    app = make_app(RECORDING_DELIVERY="url")
    recording_completed(app.test_client(), twilio_api)
    run_jobs(app)
    assert twilio_api.media_downloads(recording_sid()) == 0
    assert assemblyai_api.uploads == []
    (submission,) = assemblyai_api.submissions
    assert submission["audio_url"] == (
        f"{twilio_api.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{recording_sid()}.wav"
    )
    assert "@" not in submission["audio_url"], "no credentials in a URL given to a third party"


def test_duplicate_recording_callbacks_do_the_work_once(
    app: Flask, client: FlaskClient, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    for _ in range(4):
        assert recording_completed(client, twilio_api).status_code == 204
    run_jobs(app)
    assert twilio_api.media_downloads(recording_sid()) == 1
    assert len(assemblyai_api.uploads) == 1
    assert len(assemblyai_api.submissions) == 1


def test_absent_recording_is_stored_and_not_transcribed(
    app: Flask, client: FlaskClient, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    form = recording_form(call_sid(), recording_sid(), status="absent", ErrorCode="16102")
    assert post_twilio(client, "/twilio/recording-status", form).status_code == 204
    assert run_jobs(app) == 0
    row = recording(app)
    assert (row.status, row.error_code, row.stage) == ("absent", "16102", None)
    assert assemblyai_api.requests == []


@pytest.mark.parametrize("secret", ["", "wrong-secret"])
def test_webhook_without_the_right_header_is_refused_and_fetches_nothing(
    app: Flask, client: FlaskClient, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI, secret: str
) -> None:
    recording_completed(client, twilio_api)
    run_jobs(app)
    transcript_id = next(iter(assemblyai_api.jobs))
    response = post_assemblyai_webhook(client, app, recording(app).id, transcript_id, secret=secret)
    assert response.status_code == 401
    run_jobs(app)
    assert assemblyai_api.fetches(transcript_id) == 0


def test_webhook_for_a_transcript_we_never_submitted_fetches_nothing(
    app: Flask, client: FlaskClient, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    recording_completed(client, twilio_api)
    run_jobs(app)
    response = post_assemblyai_webhook(client, app, recording(app).id, "5551f0a8-0000-4000-8000-000000000000")
    assert response.status_code == 200
    assert response.get_json() == {"accepted": False}
    run_jobs(app)
    assert not assemblyai_api.requests_of("fetch")


def test_malformed_webhook_body_is_a_400(app: Flask, client: FlaskClient) -> None:
    headers = {WEBHOOK_HEADER_NAME: app.extensions["settings"].webhook_secret}
    response = client.post(
        "/assemblyai/webhook?recording=1", data="{not json", headers=headers, content_type="application/json"
    )
    assert response.status_code == 400


def test_transcription_error_is_shown_as_a_failure(
    app: Flask, client: FlaskClient, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    recording_completed(client, twilio_api)
    run_jobs(app)
    transcript_id = next(iter(assemblyai_api.jobs))
    assemblyai_api.fail(transcript_id, error="Audio duration is too short.")
    post_assemblyai_webhook(client, app, recording(app).id, transcript_id)
    run_jobs(app)
    row = recording(app)
    assert row.stage == Stage.FAILED
    assert row.last_error == "AssemblyAI could not transcribe it: Audio duration is too short."
    stored = transcript(app)
    assert stored is not None and (stored.status, stored.error) == ("error", "Audio duration is too short.")


def test_server_error_on_submit_is_retried_later(
    app: Flask, client: FlaskClient, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    assemblyai_api.fail_next("submit", status=503)
    recording_completed(client, twilio_api)
    run_jobs(app)
    row = recording(app)
    assert row.stage == Stage.DELIVERED, "the upload is kept; only the submission is retried"
    assert row.attempts == 1
    assert row.last_error == "AssemblyAI answered HTTP 503: Service Unavailable"
    assert row.next_attempt_at is not None and row.next_attempt_at > utcnow()
    assert app.extensions["jobs"].huey.scheduled_count() == 1
    assert assemblyai_api.submissions == []
    assert len(assemblyai_api.uploads) == 1


def test_rejected_submission_fails_at_once_with_the_reason(
    app: Flask, client: FlaskClient, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    assemblyai_api.fail_next("submit", status=400, body={"error": "Invalid speech model"})
    recording_completed(client, twilio_api)
    run_jobs(app)
    row = recording(app)
    assert row.stage == Stage.FAILED
    assert row.last_error == "AssemblyAI answered HTTP 400: Invalid speech model"
    assert app.extensions["jobs"].huey.scheduled_count() == 0


def test_truncated_download_is_not_uploaded_as_a_whole(
    app: Flask, client: FlaskClient, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    twilio_api.truncate_next_media()
    recording_completed(client, twilio_api)
    run_jobs(app)
    row = recording(app)
    assert row.stage == Stage.PENDING
    assert row.attempts == 1
    assert assemblyai_api.submissions == []
    assert row.last_error is not None and "cut short" in row.last_error


def test_without_an_assemblyai_key_the_recording_waits(
    make_app: Callable[..., Flask], twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    app = make_app(ASSEMBLYAI_API_KEY=None)
    recording_completed(app.test_client(), twilio_api)
    run_jobs(app)
    row = recording(app)
    assert (row.stage, row.claim_token) == (Stage.PENDING, None)
    assert twilio_api.media_downloads(recording_sid()) == 0


def test_reconcile_polls_a_transcript_whose_webhook_never_came(
    app: Flask, client: FlaskClient, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    recording_completed(client, twilio_api)
    run_jobs(app)
    transcript_id = next(iter(assemblyai_api.jobs))
    assemblyai_api.complete(transcript_id, text="Nobody told us.")
    with app.app_context():
        assert worker.reconcile() == NOTHING_DUE, "not overdue yet"
        later = utcnow() + timedelta(seconds=app.extensions["settings"].reconcile_interval + 1)
        assert worker.reconcile(now=later) == {**NOTHING_DUE, "poll": 1}
    run_jobs(app)
    stored = transcript(app)
    assert stored is not None and stored.text == "Nobody told us."
    assert recording(app).stage == Stage.TRANSCRIBED


def test_reconcile_restarts_a_recording_whose_job_was_lost(
    app: Flask, client: FlaskClient, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    recording_completed(client, twilio_api)
    app.extensions["jobs"].huey.flush()  # the queue lost the job
    with app.app_context():
        later = utcnow() + timedelta(seconds=app.extensions["settings"].reconcile_interval + 1)
        assert worker.reconcile(now=later) == {**NOTHING_DUE, "advance": 1}
    run_jobs(app)
    assert recording(app).stage == Stage.SUBMITTED
    assert len(assemblyai_api.submissions) == 1


def test_webhook_that_beats_the_submit_answer_is_matched_by_recording_id(
    app: Flask, client: FlaskClient, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    """AssemblyAI can call back before our POST's answer is stored; the id in the URL saves it."""
    assemblyai_api.drop_next("submit", after_handling=True)  # submitted, but the answer is lost
    recording_completed(client, twilio_api)
    run_jobs(app)
    row = recording(app)
    assert row.stage == Stage.DELIVERED and row.submit_started_at is not None
    transcript_id = next(iter(assemblyai_api.jobs))
    assemblyai_api.complete(transcript_id, text="Fast one.")

    assert post_assemblyai_webhook(client, app, row.id, transcript_id).get_json() == {"accepted": True}
    run_jobs(app)
    stored = transcript(app)
    assert stored is not None and (stored.transcript_id, stored.text) == (transcript_id, "Fast one.")
    assert recording(app).stage == Stage.TRANSCRIBED
    assert len(assemblyai_api.submissions) == 1


def test_retry_after_a_lost_answer_finds_the_earlier_submission(
    app: Flask, client: FlaskClient, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    """A submission whose answer never came is looked up, not paid for twice."""
    assemblyai_api.drop_next("submit", after_handling=True)
    recording_completed(client, twilio_api)
    run_jobs(app)
    with app.app_context():
        db.session.execute(
            Recording.__table__.update().values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
        app.extensions["jobs"].process_recording(recording(app).id)
    run_jobs(app)
    assert len(assemblyai_api.submissions) == 1
    row = recording(app)
    assert row.stage == Stage.SUBMITTED
    stored = transcript(app)
    assert stored is not None and stored.transcript_id == next(iter(assemblyai_api.jobs))


def test_the_earlier_submission_is_found_beyond_the_first_page_of_the_list(
    app: Flask, client: FlaskClient, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    """A busy account: 250 newer transcripts push ours onto the list's second page of 200."""
    assemblyai_api.drop_next("submit", after_handling=True)
    recording_completed(client, twilio_api)
    run_jobs(app)
    (ours,) = assemblyai_api.jobs

    def someone_else_submits(n: int) -> int:
        response = requests.post(
            f"{assemblyai_api.base_url}/v2/transcript",
            json={"audio_url": f"https://media.example/other-{n}.wav", "speech_models": ["universal-2"]},
            headers={"authorization": ASSEMBLYAI_KEY},
            timeout=10,
        )
        return response.status_code

    with ThreadPoolExecutor(max_workers=8) as pool:  # each answer takes the fake ~40 ms
        assert set(pool.map(someone_else_submits, range(250))) == {200}

    retries_fall_due(app)

    upload_url = recording(app).upload_url
    assert [s for s in assemblyai_api.submissions if s["audio_url"] == upload_url] == [
        assemblyai_api.jobs[ours].params
    ], "submitted once, not twice"
    first_page, second_page = assemblyai_api.requests_of("list")
    assert parse_qs(first_page.query) == {"limit": ["200"]}
    oldest_on_first_page = sorted(assemblyai_api.jobs.values(), key=lambda j: j.seq)[-200].id
    assert parse_qs(second_page.query) == {"limit": ["200"], "before_id": [oldest_on_first_page]}
    assert recording(app).stage == Stage.SUBMITTED
    stored = transcript(app)
    assert stored is not None and stored.transcript_id == ours


def test_queued_jobs_carry_the_names_a_deployed_queue_holds(
    app: Flask, client: FlaskClient, twilio_api: FakeTwilio
) -> None:
    """A job already waiting in Redis or the queue file when the worker is upgraded must still run."""
    recording_completed(client, twilio_api)
    huey = app.extensions["jobs"].huey
    task = huey.dequeue()
    assert huey._registry.task_to_string(type(task)) == "app.jobs.process_recording"
    huey.execute(task)
    assert recording(app).stage == Stage.SUBMITTED
