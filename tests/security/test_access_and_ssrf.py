"""Private data needs a login; provider URLs and credentials stay where they belong."""

from __future__ import annotations

import base64

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.config import WEBHOOK_HEADER_NAME
from tests.fakes.assemblyai_api import FakeAssemblyAI
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    call_sid,
    call_status_form,
    login,
    post_twilio,
    recording_form,
    recording_sid,
    run_jobs,
)

AUDIO = b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(range(200)) * 50


def a_recorded_call(app: Flask, twilio_api: FakeTwilio) -> None:
    twilio_api.add_recording(recording_sid(), AUDIO, call_sid())
    client = app.test_client()
    post_twilio(client, "/twilio/call-status", call_status_form(call_sid(), "completed", CallDuration="5"))
    post_twilio(client, "/twilio/recording-status", recording_form(call_sid(), recording_sid()))


@pytest.mark.parametrize("path", ["/", "/?q=invoice", f"/calls/{call_sid()}", "/recordings/1/audio"])
def test_every_private_page_needs_a_login(app: Flask, twilio_api: FakeTwilio, path: str) -> None:
    a_recorded_call(app, twilio_api)
    client = app.test_client()
    response = client.get(path)
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    as_script = client.get(path, headers={"Accept": "application/json"})
    assert as_script.status_code == 401
    assert twilio_api.media_downloads(recording_sid()) == 0


@pytest.mark.parametrize("path", ["/dial", "/recordings/1/retry", "/logout"])
def test_every_action_needs_a_login(app: Flask, twilio_api: FakeTwilio, path: str) -> None:
    response = app.test_client().post(path, json={"to": "+14155550123"})
    assert response.status_code == 401
    assert twilio_api.calls_created == []


def test_audio_is_streamed_through_the_app_with_its_credentials(app: Flask, twilio_api: FakeTwilio) -> None:
    a_recorded_call(app, twilio_api)
    client = app.test_client()
    login(client)
    page = client.get(f"/calls/{call_sid()}").get_data(as_text=True)
    assert 'src="/recordings/1/audio"' in page
    assert AUTH_TOKEN not in page and "api.twilio.com" not in page and twilio_api.base_url not in page

    audio = client.get("/recordings/1/audio")
    assert audio.status_code == 200 and audio.mimetype == "audio/wav"
    assert audio.get_data() == AUDIO
    (media,) = twilio_api.requests_of("media")
    expected = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    assert media.headers["Authorization"] == expected


def test_audio_that_twilio_will_not_give_is_a_short_502(app: Flask, twilio_api: FakeTwilio) -> None:
    a_recorded_call(app, twilio_api)
    twilio_api.fail_next("media", status=500)
    client = app.test_client()
    login(client)
    response = client.get("/recordings/1/audio", headers={"Accept": "application/json"})
    assert response.status_code == 502
    assert AUTH_TOKEN not in response.get_data(as_text=True)


def test_media_is_fetched_from_twilios_api_host_whatever_recording_url_says(
    app: Flask, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    twilio_api.add_recording(recording_sid(), AUDIO, call_sid())
    evil = recording_form(call_sid(), recording_sid(), RecordingUrl="http://169.254.169.254/latest/meta-data")
    assert post_twilio(app.test_client(), "/twilio/recording-status", evil).status_code == 204
    run_jobs(app)
    (media,) = twilio_api.requests_of("media")
    assert media.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{recording_sid()}.wav"
    assert assemblyai_api.uploads[0]["data"] == AUDIO


@pytest.mark.parametrize(
    "sid", ["RE../../Calls", "RE" + "0" * 31, "REzz" + "0" * 30, "https://evil.example/RE" + "0" * 32]
)
def test_a_malformed_recording_sid_is_refused(app: Flask, twilio_api: FakeTwilio, sid: str) -> None:
    response = post_twilio(app.test_client(), "/twilio/recording-status", recording_form(call_sid(), sid))
    assert response.status_code == 400
    run_jobs(app)
    assert twilio_api.requests == []


def test_an_oversized_webhook_body_is_a_413(app: Flask) -> None:
    secret = app.extensions["settings"].webhook_secret
    response = app.test_client().post(
        "/assemblyai/webhook?recording=1",
        data=b'{"transcript_id": "' + b"x" * (2 * 1024 * 1024) + b'"}',
        content_type="application/json",
        headers={WEBHOOK_HEADER_NAME: secret},
    )
    assert response.status_code == 413


def logged_in_audio(app: Flask, twilio_api: FakeTwilio) -> FlaskClient:
    a_recorded_call(app, twilio_api)
    client = app.test_client()
    login(client)
    return client


@pytest.mark.parametrize("twilio_does_ranges", [True, False], ids=["twilio-206", "twilio-200"])
@pytest.mark.parametrize(
    ("header", "start", "stop"), [("bytes=10-19", 10, 20), ("bytes=100-", 100, None), ("bytes=-7", -7, None)]
)
def test_a_range_request_gets_206_with_just_those_bytes(
    app: Flask, twilio_api: FakeTwilio, twilio_does_ranges: bool, header: str, start: int, stop: int | None
) -> None:
    """A player seeks: whether Twilio serves the range or the whole file, the browser gets the range."""
    client = logged_in_audio(app, twilio_api)
    twilio_api.ignore_ranges = not twilio_does_ranges
    audio = client.get("/recordings/1/audio", headers={"Range": header})
    expected = AUDIO[start:stop]
    first = start % len(AUDIO)
    assert audio.status_code == 206
    assert audio.get_data() == expected
    assert audio.headers["Content-Range"] == f"bytes {first}-{first + len(expected) - 1}/{len(AUDIO)}"
    assert audio.headers["Content-Length"] == str(len(expected))
    (media,) = twilio_api.requests_of("media")
    assert media.headers["Range"] == header, "the range is passed on to Twilio"


def test_a_plain_request_says_ranges_are_accepted(app: Flask, twilio_api: FakeTwilio) -> None:
    audio = logged_in_audio(app, twilio_api).get("/recordings/1/audio")
    assert audio.status_code == 200 and audio.headers["Accept-Ranges"] == "bytes"
    assert "Range" not in twilio_api.requests_of("media")[0].headers


@pytest.mark.parametrize("twilio_does_ranges", [True, False], ids=["twilio-416", "twilio-200"])
@pytest.mark.parametrize("header", [f"bytes={len(AUDIO) + 5}-", f"bytes={len(AUDIO)}-{len(AUDIO) + 9}"])
def test_a_range_past_the_end_is_a_416(
    app: Flask, twilio_api: FakeTwilio, twilio_does_ranges: bool, header: str
) -> None:
    client = logged_in_audio(app, twilio_api)
    twilio_api.ignore_ranges = not twilio_does_ranges
    answer = client.get("/recordings/1/audio", headers={"Range": header})
    assert answer.status_code == 416
    assert answer.headers["Content-Range"] == f"bytes */{len(AUDIO)}"


@pytest.mark.parametrize(
    "header", ["bytes=9-2", "pages=1-2", "bytes=0-1,5-6", "bytes=-209,1065-", "nonsense", "bytes=-0"]
)
def test_a_range_that_is_not_one_byte_range_is_ignored(
    app: Flask, twilio_api: FakeTwilio, header: str
) -> None:
    """RFC 9110 section 14.2: another unit must be ignored, and several or broken ranges may be."""
    client = logged_in_audio(app, twilio_api)
    audio = client.get("/recordings/1/audio", headers={"Range": header})
    assert audio.status_code == 200 and audio.get_data() == AUDIO
    assert audio.headers["Content-Length"] == str(len(AUDIO))
    assert "Range" not in twilio_api.requests_of("media")[0].headers, "Twilio is asked for the whole file"
