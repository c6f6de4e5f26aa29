"""One call's page: its history, its facts, who said what when, seeking by word, and what went wrong.

Calls reach the page as in production: signed Twilio webhooks, the queue,
AssemblyAI's webhook, with both providers faked at the HTTP boundary only.
"""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app import clients, pipeline
from app.models import Call, CallEvent, db
from tests.fakes.assemblyai_api import FakeAssemblyAI
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import (
    call_sid,
    call_status_form,
    login,
    post_assemblyai_webhook,
    post_twilio,
    recording_form,
    recording_sid,
    run_jobs,
)
from tests.test_pages import Calls, a_failed_recording, page


@pytest.fixture
def calls(app: Flask, client: FlaskClient, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI) -> Calls:
    return Calls(app, client, twilio_api, assemblyai_api)


@pytest.fixture
def admin(client: FlaskClient) -> FlaskClient:
    assert login(client).status_code == 302
    return client


def history(app: Flask, sid: str) -> list[tuple[str, str]]:
    """The call's stored events, (kind, status), in the order they happened."""
    with app.app_context():
        query = (
            select(CallEvent.kind, CallEvent.status)
            .join(Call, Call.id == CallEvent.call_id)
            .where(Call.call_sid == sid)
            .order_by(CallEvent.at, CallEvent.id)
        )
        return [(kind, status) for kind, status in db.session.execute(query)]


def call_status(client: FlaskClient, sid: str, status: str) -> None:
    assert post_twilio(client, "/twilio/call-status", call_status_form(sid, status)).status_code == 204


def recording_status(client: FlaskClient, sid: str, status: str) -> None:
    form = recording_form(sid, recording_sid(1), status=status)
    assert post_twilio(client, "/twilio/recording-status", form).status_code == 204


# -- the history -----------------------------------------------------------------


def test_each_real_move_is_one_event_and_a_duplicate_or_late_callback_adds_none(
    app: Flask, calls: Calls, client: FlaskClient, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    sid = call_sid(1)
    for status in ("ringing", "in-progress", "in-progress", "ringing", "completed", "completed", "ringing"):
        call_status(client, sid, status)
    twilio_api.add_recording(recording_sid(1), b"RIFF" + b"\x01" * 256, sid, 1)
    recording_status(client, sid, "completed")
    recording_status(client, sid, "completed")
    recording_status(client, sid, "in-progress")
    run_jobs(app)
    recording = calls.recording(1)
    transcript_id = recording.transcript.transcript_id if recording.transcript else ""
    assemblyai_api.complete(transcript_id, text="Hello there.")
    for _ in range(2):
        assert post_assemblyai_webhook(client, app, recording.id, transcript_id).status_code == 200
        run_jobs(app)

    assert history(app, sid) == [
        ("call", "ringing"),
        ("call", "in-progress"),
        ("call", "completed"),
        ("recording", "completed"),
        ("stage", "delivered"),
        ("stage", "submitted"),
        ("stage", "transcribed"),
    ]


def test_a_failure_and_a_persons_retry_are_in_the_history(
    app: Flask, calls: Calls, assemblyai_api: FakeAssemblyAI, admin: FlaskClient
) -> None:
    recording_id = a_failed_recording(calls, assemblyai_api)
    assert admin.post(f"/recordings/{recording_id}/retry").status_code == 302
    assert admin.post(f"/recordings/{recording_id}/retry").status_code == 302  # no longer failed: nothing
    assert history(app, call_sid(1))[-3:] == [
        ("stage", "delivered"),
        ("stage", "failed"),
        ("retry", "delivered"),
    ]


def test_a_placed_call_starts_its_history_with_its_first_status(
    app: Flask, admin: FlaskClient, twilio_api: FakeTwilio
) -> None:
    placed = admin.post("/dial", json={"to": "+14155550199"})
    assert placed.status_code == 201
    sid = placed.get_json()["call_sid"]
    call_status(admin, sid, "queued")  # Twilio's own word for what /dial stored already
    assert history(app, sid) == [("call", "queued")]


def test_two_workers_storing_one_transcript_add_one_event(
    app: Flask, calls: Calls, assemblyai_api: FakeAssemblyAI
) -> None:
    """Both fetched it before either stored it: the second store moves nothing, so adds nothing."""
    recording_id = calls.recorded(1)
    recording = calls.recording(1)
    assert recording.transcript is not None
    assemblyai_api.complete(recording.transcript.transcript_id, text="Hello there.")
    with app.app_context():
        result = clients.engine(recording.engine).fetch(recording.transcript.transcript_id)
        pipeline.store_transcript(recording_id, result)
        pipeline.store_transcript(recording_id, result)
    assert history(app, call_sid(1)).count(("stage", "transcribed")) == 1


# -- who is speaking -----------------------------------------------------------------


def speakers_on(admin: FlaskClient, sid: str) -> list[str]:
    return page(admin.get(f"/calls/{sid}")).by_class["who"]


def test_a_voicemail_with_one_voice_is_the_caller_on_the_page_and_in_exports(
    calls: Calls, admin: FlaskClient
) -> None:
    sid = calls.with_transcript(1, "Hi, it is Bob, please call me back.", source="RecordVerb")
    assert speakers_on(admin, sid) == ["Caller"]
    text = admin.get(f"/calls/{sid}/transcript.txt").get_data(as_text=True)
    assert "] Caller: Hi, it is Bob, please call me back." in text


def test_a_voicemail_with_two_voices_keeps_the_transcripts_letters(calls: Calls, admin: FlaskClient) -> None:
    turns = [{"speaker": "A", "text": "Hello."}, {"speaker": "B", "text": "Hi."}]
    sid = calls.with_transcript(1, "Hello. Hi.", turns)
    assert speakers_on(admin, sid) == ["Speaker A", "Speaker B"]


def test_the_one_voice_of_a_dialled_call_is_the_person_called(calls: Calls, admin: FlaskClient) -> None:
    sid = calls.with_transcript(1, "Yes, this is Dana speaking.", Direction="outbound-api")
    assert speakers_on(admin, sid) == ["Person called"]
    body = admin.get(f"/calls/{sid}/transcript.json").get_json()
    assert [t["speaker"] for t in body["recordings"][0]["dialogue"]] == ["Person called"]


def test_a_name_given_to_the_one_voice_wins_over_caller(calls: Calls, admin: FlaskClient) -> None:
    sid = calls.with_transcript(1, "Hi, it is Bob.", source="RecordVerb")
    assert admin.post(f"/calls/{sid}/speakers", data={"label": "A", "name": "Bob"}).status_code == 302
    assert speakers_on(admin, sid) == ["Bob"]


def test_a_forwarded_calls_channels_are_the_caller_and_you(calls: Calls, admin: FlaskClient) -> None:
    sid = calls.with_transcript(
        1,
        "Is the shop open? Yes.",
        [{"channel": 1, "text": "Is the shop open?"}, {"channel": 2, "text": "Yes."}],
        channels=2,
        source="DialVerb",
    )
    assert speakers_on(admin, sid) == ["Caller", "You"]
