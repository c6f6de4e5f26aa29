"""Retention: DELETE_TWILIO_RECORDING_AFTER, KEEP_AUDIO and RETENTION_DAYS, on a clock the tests move."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask

from app import worker
from app.config import ConfigError, Settings
from app.models import utcnow
from tests.fakes.assemblyai_api import FakeAssemblyAI
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import call_sid, full_env, login, media_files, recording_sid, run_jobs, stored_calls
from tests.pages import Calls

LATER = timedelta(days=1)


@pytest.fixture
def build(
    make_app: Callable[..., Flask], twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> Callable[..., Calls]:
    def calls_on(**settings: str) -> Calls:
        app = make_app(**settings)
        client = app.test_client()
        login(client)
        return Calls(app, client, twilio_api, assemblyai_api)

    return calls_on


def reconcile(app: Flask, after: timedelta = LATER) -> dict[str, int]:
    with app.app_context():
        return worker.reconcile(now=utcnow() + after)


def test_a_recording_is_deleted_at_twilio_once_its_transcript_is_stored(
    build: Callable[..., Calls], twilio_api: FakeTwilio
) -> None:
    calls = build(DELETE_TWILIO_RECORDING_AFTER="transcribed")

    sid = calls.with_transcript(1, "Hello there.")

    assert twilio_api.deleted_recordings == [recording_sid(1)]
    [(_, recording)] = stored_calls(calls.app)
    assert recording.twilio_deleted_at is not None
    page = calls.client.get(f"/calls/{sid}").get_data(as_text=True)
    assert "Hello there." in page and "The audio was deleted at Twilio" in page
    audio = calls.client.get(f"/recordings/{recording.id}/audio")
    assert audio.status_code == 404 and "KEEP_AUDIO" in audio.get_data(as_text=True)


def test_with_keep_audio_the_page_still_plays_our_copy(
    build: Callable[..., Calls], twilio_api: FakeTwilio
) -> None:
    calls = build(DELETE_TWILIO_RECORDING_AFTER="transcribed", KEEP_AUDIO="1")
    calls.call(1)
    audio = b"RIFF" + bytes([1]) * 256  # what Calls.recorded gives Twilio

    calls.with_transcript(1, "Hello there.")

    assert twilio_api.deleted_recordings == [recording_sid(1)]
    [(_, recording)] = stored_calls(calls.app)
    played = calls.client.get(f"/recordings/{recording.id}/audio", headers={"Range": "bytes=0-3"})
    assert played.status_code == 206 and played.data == b"RIFF"
    assert calls.client.get(f"/recordings/{recording.id}/audio").data == audio
    assert [p.read_bytes() for p in media_files(calls.app)] == [audio]


def test_keep_audio_copies_the_download_that_went_to_the_engine(
    build: Callable[..., Calls], twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    calls = build(KEEP_AUDIO="1")

    calls.recorded(1)

    assert twilio_api.deleted_recordings == []
    assert [p.read_bytes() for p in media_files(calls.app)] == [u["data"] for u in assemblyai_api.uploads]
    assert twilio_api.media_downloads(recording_sid(1)) == 1  # one download fed both


def test_without_keep_audio_no_copy_is_kept(build: Callable[..., Calls]) -> None:
    calls = build()

    calls.with_transcript(1, "Hello there.")

    assert media_files(calls.app) == []


def test_the_periodic_sweep_deletes_what_the_prompt_deletion_missed_once(
    build: Callable[..., Calls], twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    calls = build(DELETE_TWILIO_RECORDING_AFTER="transcribed")
    twilio_api.fail_next("recording_delete", status=503)  # the prompt deletion fails

    calls.with_transcript(1, "Hello there.")
    assert twilio_api.deleted_recordings == []
    first = reconcile(calls.app)
    run_jobs(calls.app)
    second = reconcile(calls.app)

    assert first["forget"] == 1 and twilio_api.deleted_recordings == [recording_sid(1)]
    assert second["forget"] == 0


def test_calls_older_than_retention_days_are_deleted_everywhere(
    build: Callable[..., Calls], twilio_api: FakeTwilio
) -> None:
    calls = build(RETENTION_DAYS="30")
    old = calls.with_transcript(1, "Old news.")

    young = reconcile(calls.app, timedelta(days=29))
    expired = reconcile(calls.app, timedelta(days=31))
    run_jobs(calls.app)
    again = reconcile(calls.app, timedelta(days=31))

    assert young["expire"] == 0 and expired["expire"] == 1 and again["expire"] == 0
    assert stored_calls(calls.app) == []
    assert twilio_api.deleted_recordings == [recording_sid(1)]
    log = calls.app.test_cli_runner().invoke(args=["calls", "deletions"]).output
    assert old in log and "RETENTION_DAYS=30" in log
    assert old == call_sid(1)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RETENTION_DAYS", "0"),
        ("RETENTION_DAYS", "a month"),
        ("KEEP_AUDIO", "maybe"),
        ("DELETE_TWILIO_RECORDING_AFTER", "soon"),
    ],
)
def test_a_bad_retention_setting_is_refused_at_start_up_by_name(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({**full_env(None, None), variable: value})

    assert variable in str(refused.value)
