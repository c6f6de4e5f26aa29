"""The dashboard as its one user sees it: login, setup checklist, calls, transcripts, health.

Data reaches the pages the way it does in production: through signed Twilio
webhooks, the queue, and AssemblyAI's webhook, with both providers faked at
the HTTP boundary only.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import webvtt
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app import create_app
from app.config import WEBHOOK_HEADER_NAME, Settings
from app.models import Transcript, db
from tests.fakes.assemblyai_api import FakeAssemblyAI
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import (
    ADMIN_PASSWORD,
    ASSEMBLYAI_KEY,
    AUTH_TOKEN,
    SECRET_KEY,
    TWILIO_NUMBER,
    call_sid,
    call_status_form,
    close,
    full_env,
    login,
    post_assemblyai_webhook,
    post_twilio,
    recording_form,
    recording_sid,
    run_jobs,
)
from tests.pages import CALLER, MONO, Calls, a_failed_recording, page

# -- who may see what ---------------------------------------------------------------


def test_home_redirects_to_login_when_fully_configured(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert urlsplit(response.location).path == "/login"


def test_call_page_redirects_to_login_with_next(calls: Calls, client: FlaskClient) -> None:
    sid = calls.call(1)
    response = client.get(f"/calls/{sid}")
    assert response.status_code == 302
    location = urlsplit(response.location)
    assert location.path == "/login"
    assert parse_qs(location.query)["next"] == [f"/calls/{sid}"]


def test_login_returns_to_the_page_asked_for(calls: Calls, client: FlaskClient) -> None:
    sid = calls.call(1)
    login_url = client.get(f"/calls/{sid}").location
    response = client.post(login_url, data={"username": "admin", "password": ADMIN_PASSWORD})
    assert response.status_code == 302
    assert response.location == f"/calls/{sid}"
    shown = client.get(response.location)
    assert shown.status_code == 200
    assert sid in page(shown).text


# -- the setup checklist ---------------------------------------------------------------


def test_setup_checklist_names_each_missing_variable(make_app: Callable[..., Flask]) -> None:
    app = make_app(ADMIN_PASSWORD=None, BASE_URL=None, TWILIO_PHONE_NUMBER=None, ASSEMBLYAI_API_KEY=None)
    response = app.test_client().get("/")
    assert response.status_code == 200
    text = page(response).text
    for name in ("ADMIN_PASSWORD", "BASE_URL", "TWILIO_PHONE_NUMBER", "ASSEMBLYAI_API_KEY"):
        assert f"{name} is not set" in text
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"):
        assert f"{name} is not set" not in text


def test_setup_checklist_without_base_url_still_lists_the_webhook_paths(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(ADMIN_PASSWORD=None, BASE_URL=None)
    text = page(app.test_client().get("/")).text
    assert "/twilio/voice" in text
    assert "/twilio/call-status" in text


def test_setup_checklist_shows_the_exact_webhook_urls(make_app: Callable[..., Flask]) -> None:
    app = make_app(TWILIO_AUTH_TOKEN=None)
    response = app.test_client().get("/")
    assert response.status_code == 200
    text = page(response).text
    assert "TWILIO_AUTH_TOKEN is not set" in text
    assert "https://callscribe.example/twilio/voice" in text
    assert "https://callscribe.example/twilio/call-status" in text


@pytest.mark.parametrize("path", ["/", "/login"])
def test_setup_checklist_never_shows_a_secret(make_app: Callable[..., Flask], path: str) -> None:
    app = make_app(TWILIO_PHONE_NUMBER=None)
    response = app.test_client().get(path)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "TWILIO_PHONE_NUMBER is not set" in page(response).text
    secrets = {ASSEMBLYAI_KEY, SECRET_KEY, AUTH_TOKEN, ADMIN_PASSWORD, *app.extensions["settings"].secrets()}
    for secret in secrets:
        assert secret not in html


# -- logging in and out ------------------------------------------------------------------


def test_wrong_password_is_refused_with_401_saying_so(client: FlaskClient) -> None:
    response = login(client, password="not-the-password")
    assert response.status_code == 401
    assert "Wrong username or password." in page(response).text
    assert client.get("/").status_code == 302


def test_right_password_redirects_home_with_a_session(client: FlaskClient) -> None:
    response = login(client)
    assert response.status_code == 302
    assert response.location == "/"
    home = client.get("/")
    assert home.status_code == 200
    assert "Log out" in page(home).text


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/", "//evil.example", "/\\evil.example"],
    ids=["absolute", "scheme-relative", "backslash"],
)
def test_login_never_follows_next_off_site(client: FlaskClient, target: str) -> None:
    response = client.post(
        "/login", query_string={"next": target}, data={"username": "admin", "password": ADMIN_PASSWORD}
    )
    assert response.status_code == 302
    location = response.location
    parts = urlsplit(location)
    assert (parts.scheme, parts.netloc) == ("", "")
    assert location.startswith("/")
    assert not location.startswith(("//", "/\\"))


def test_logout_by_get_is_refused_and_keeps_the_session(admin: FlaskClient) -> None:
    assert admin.get("/logout").status_code == 405
    assert admin.get("/").status_code == 200


def test_logout_ends_the_session(admin: FlaskClient) -> None:
    response = admin.post("/logout")
    assert response.status_code == 302
    assert urlsplit(response.location).path == "/login"
    assert admin.get("/").status_code == 302


# -- the list of calls -----------------------------------------------------------------------


def test_calls_list_shows_newest_first(calls: Calls, admin: FlaskClient) -> None:
    for n, caller in enumerate(("+14155550101", "+14155550102", "+14155550103"), start=1):
        calls.call(n, from_number=caller)
    rows = page(admin.get("/")).rows
    assert [row[2] for row in rows] == ["+14155550103", "+14155550102", "+14155550101"]


def test_calls_list_shows_every_column(calls: Calls, admin: FlaskClient) -> None:
    text = (
        "Hello, this is Ada calling about the invoice for November. "
        "It seems we were charged twice for the same delivery, so could someone "
        "please call me back this afternoon? Thanks, goodbye-marker."
    )
    calls.with_transcript(1, text, CallDuration="42", Timestamp="Sun, 22 Nov 2026 10:00:47 +0000")
    (row,) = page(admin.get("/")).rows
    assert row[:7] == ["2026-11-22 10:00", "Voicemail", CALLER, TWILIO_NUMBER, "completed", "42 s", "done"]
    assert row[7].startswith("Hello, this is Ada calling about the invoice for November.")
    assert "goodbye-marker" not in row[7]


def test_search_finds_a_call_by_transcript_text(calls: Calls, admin: FlaskClient) -> None:
    calls.with_transcript(1, "The parcel arrived damaged.", from_number="+14155550101")
    calls.with_transcript(2, "Please call me back about dinner.", from_number="+14155550102")
    rows = page(admin.get("/", query_string={"q": "PARCEL"})).rows
    assert [row[2] for row in rows] == ["+14155550101"]


def test_search_finds_a_call_by_number(calls: Calls, admin: FlaskClient) -> None:
    calls.call(1, from_number="+14155550101")
    calls.call(2, from_number="+14155550177")
    rows = page(admin.get("/", query_string={"q": "5550177"})).rows
    assert [row[2] for row in rows] == ["+14155550177"]


@pytest.mark.parametrize("wildcard", ["%", "_"])
def test_search_treats_like_wildcards_literally(calls: Calls, admin: FlaskClient, wildcard: str) -> None:
    calls.with_transcript(1, "Nothing special in here.", from_number="+14155550101")
    calls.call(2, from_number="+14155550102")
    response = admin.get("/", query_string={"q": wildcard})
    assert response.status_code == 200
    assert page(response).rows == []
    assert "No call matches." in page(response).text


def test_search_finds_a_literal_percent_sign(calls: Calls, admin: FlaskClient) -> None:
    calls.with_transcript(1, "We offer 50% off this week.", from_number="+14155550101")
    calls.with_transcript(2, "We offer 500 boxes this week.", from_number="+14155550102")
    rows = page(admin.get("/", query_string={"q": "50%"})).rows
    assert [row[2] for row in rows] == ["+14155550101"]


# -- one call --------------------------------------------------------------------------------


def test_call_page_shows_the_full_text_and_each_speakers_turns(calls: Calls, admin: FlaskClient) -> None:
    sid = calls.with_transcript(
        1,
        "Hello, you reached Ada. Hi Ada, it is Bob about the boiler.",
        [
            {"speaker": "A", "text": "Hello, you reached Ada."},
            {"speaker": "B", "text": "Hi Ada, it is Bob about the boiler."},
        ],
    )
    shown = page(admin.get(f"/calls/{sid}"))
    assert shown.by_class["transcript"] == ["Hello, you reached Ada. Hi Ada, it is Bob about the boiler."]
    assert list(zip(shown.by_class["who"], shown.by_class["said"], strict=True)) == [
        ("Speaker A", "Hello, you reached Ada."),
        ("Speaker B", "Hi Ada, it is Bob about the boiler."),
    ]


def test_call_page_labels_the_channels_of_a_forwarded_call(calls: Calls, admin: FlaskClient) -> None:
    sid = calls.with_transcript(
        1,
        "Is the shop open? Yes, until six.",
        [{"channel": 1, "text": "Is the shop open?"}, {"channel": 2, "text": "Yes, until six."}],
        channels=2,
        source="DialVerb",
    )
    shown = page(admin.get(f"/calls/{sid}"))
    assert list(zip(shown.by_class["who"], shown.by_class["said"], strict=True)) == [
        ("Caller", "Is the shop open?"),
        ("You", "Yes, until six."),
    ]


def test_absent_recording_says_too_short_or_silent_with_twilio_code(
    calls: Calls, client: FlaskClient, admin: FlaskClient
) -> None:
    sid = calls.call(1)
    form = recording_form(sid, recording_sid(1), status="absent", ErrorCode="16101")
    assert post_twilio(client, "/twilio/recording-status", form).status_code == 204
    text = page(admin.get(f"/calls/{sid}")).text
    assert "No audio: the recording was too short or silent (Twilio error 16101)." in text


def test_failed_recording_shows_its_reason_and_a_retry_button(
    calls: Calls, assemblyai_api: FakeAssemblyAI, admin: FlaskClient
) -> None:
    recording_id = a_failed_recording(calls, assemblyai_api)
    shown = page(admin.get(f"/calls/{call_sid(1)}"))
    assert "Transcription failed" in shown.text
    assert "AssemblyAI answered HTTP 400: Bad request" in shown.text
    assert f'action="/recordings/{recording_id}/retry"' in shown.html
    assert "Try again" in shown.text


def test_retrying_a_failed_recording_submits_it_again(
    app: Flask, calls: Calls, assemblyai_api: FakeAssemblyAI, admin: FlaskClient
) -> None:
    recording_id = a_failed_recording(calls, assemblyai_api)
    response = admin.post(f"/recordings/{recording_id}/retry")
    assert response.status_code == 302
    assert response.location == f"/calls/{call_sid(1)}"
    waiting = calls.recording(1)
    assert (waiting.stage, waiting.last_error) == ("delivered", None)
    run_jobs(app)
    assert len(assemblyai_api.requests_of("submit")) == 2
    assert len(assemblyai_api.submissions) == 1
    assert calls.recording(1).stage == "submitted"


def transcript_ids(app: Flask, recording_id: int) -> list[str]:
    with app.app_context():
        query = select(Transcript.transcript_id).where(Transcript.recording_id == recording_id)
        return list(db.session.scalars(query))


def assemblyai_calls_back(calls: Calls, recording_id: int, transcript_id: str) -> None:
    response = post_assemblyai_webhook(calls.client, calls.app, recording_id, transcript_id)
    assert response.status_code == 200
    run_jobs(calls.app)


def test_retrying_a_transcript_assemblyai_failed_submits_the_audio_anew(
    app: Flask, calls: Calls, assemblyai_api: FakeAssemblyAI, admin: FlaskClient
) -> None:
    """AssemblyAI's error is final for that transcript: a retry pays for a new one."""
    recording_id = calls.recorded(1)
    (first_id,) = transcript_ids(app, recording_id)
    assemblyai_api.fail(first_id, error="Transcoding failed.")
    assemblyai_calls_back(calls, recording_id, first_id)
    assert calls.recording(1).stage == "failed"
    assert "Transcription failed" in page(admin.get(f"/calls/{call_sid(1)}")).text

    response = admin.post(f"/recordings/{recording_id}/retry")
    assert response.status_code == 302
    assert (calls.recording(1).stage, transcript_ids(app, recording_id)) == ("delivered", [])
    run_jobs(app)

    first, second = assemblyai_api.submissions
    assert second == first, "the same audio and options, submitted anew"
    assert len(assemblyai_api.uploads) == 1, "the upload is kept"
    (second_id,) = transcript_ids(app, recording_id)
    assert second_id != first_id and second_id in assemblyai_api.jobs
    assert calls.recording(1).stage == "submitted"
    assemblyai_api.complete(second_id, text="Second time lucky.")
    assemblyai_calls_back(calls, recording_id, second_id)
    assert calls.recording(1).stage == "transcribed"
    assert "Second time lucky." in page(admin.get(f"/calls/{call_sid(1)}")).text


def test_retrying_a_failed_fetch_fetches_again_without_resubmitting(
    make_app: Callable[..., Flask], twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    """Only our reading failed; AssemblyAI still has the transcript, so it is not paid for twice."""
    app = make_app(JOB_MAX_ATTEMPTS="1")  # the first failed fetch gives up
    calls = Calls(app, app.test_client(), twilio_api, assemblyai_api)
    recording_id = calls.recorded(1)
    (transcript_id,) = transcript_ids(app, recording_id)
    assemblyai_api.complete(transcript_id, text="Kept by AssemblyAI.")
    assemblyai_api.fail_next("fetch", status=500)
    assemblyai_calls_back(calls, recording_id, transcript_id)
    assert calls.recording(1).stage == "failed"

    admin = app.test_client()
    assert login(admin).status_code == 302
    assert admin.post(f"/recordings/{recording_id}/retry").status_code == 302
    assert calls.recording(1).stage == "submitted"
    run_jobs(app)

    assert assemblyai_api.fetches(transcript_id) == 2
    assert len(assemblyai_api.submissions) == 1
    assert transcript_ids(app, recording_id) == [transcript_id]
    assert calls.recording(1).stage == "transcribed"
    assert "Kept by AssemblyAI." in page(admin.get(f"/calls/{call_sid(1)}")).text


def test_retry_needs_a_login(calls: Calls, assemblyai_api: FakeAssemblyAI, client: FlaskClient) -> None:
    recording_id = a_failed_recording(calls, assemblyai_api)
    response = client.post(f"/recordings/{recording_id}/retry")
    assert response.status_code == 302
    assert urlsplit(response.location).path == "/login"
    assert calls.recording(1).stage == "failed"


def test_unknown_call_is_a_404(admin: FlaskClient) -> None:
    response = admin.get(f"/calls/{call_sid(404)}")
    assert response.status_code == 404
    assert "No such call." in page(response).text


def test_retrying_an_unknown_recording_is_a_404(admin: FlaskClient) -> None:
    assert admin.post("/recordings/999999/retry").status_code == 404


# -- escaping ---------------------------------------------------------------------------------

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"


@pytest.mark.parametrize("where", ["list", "call page"])
def test_caller_id_markup_is_escaped(calls: Calls, admin: FlaskClient, where: str) -> None:
    sid = calls.call(1, from_number=SCRIPT)
    html = admin.get("/" if where == "list" else f"/calls/{sid}").get_data(as_text=True)
    assert SCRIPT not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


@pytest.mark.parametrize("where", ["list", "call page"])
def test_transcript_markup_is_escaped(calls: Calls, admin: FlaskClient, where: str) -> None:
    sid = calls.with_transcript(1, f"Look: {IMG} there.", [{"speaker": "A", "text": f"Look: {IMG} there."}])
    html = admin.get("/" if where == "list" else f"/calls/{sid}").get_data(as_text=True)
    assert IMG not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_search_query_is_escaped_on_the_page(admin: FlaskClient) -> None:
    html = admin.get("/", query_string={"q": SCRIPT}).get_data(as_text=True)
    assert SCRIPT not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


# -- health ------------------------------------------------------------------------------------


def test_healthz_is_ok_when_the_database_answers(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


@pytest.fixture(
    params=["sqlite:////nonexistent-dir/callscribe.db", "postgresql://postgres@127.0.0.1:1/none"],
    ids=["sqlite", "postgres"],
)
def unreachable_db_app(
    request: pytest.FixtureRequest, tmp_path: Any, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> Iterator[Flask]:
    """An app whose database cannot be reached (built directly: make_app would migrate)."""
    instance = str(tmp_path / "instance")
    env = {**full_env(twilio_api, assemblyai_api), "DATABASE_URL": request.param}
    app = create_app(Settings.from_env(env, instance_path=instance), instance_path=instance)
    app.config["TESTING"] = True
    yield app
    close(app)


def test_healthz_is_503_when_the_database_is_unreachable(unreachable_db_app: Flask) -> None:
    response = unreachable_db_app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "database unreachable"}


def test_twilio_webhook_is_503_when_the_database_is_unreachable(unreachable_db_app: Flask) -> None:
    """A 5xx makes Twilio retry; a 4xx would lose the callback for good."""
    client = unreachable_db_app.test_client()
    response = post_twilio(client, "/twilio/call-status", call_status_form(call_sid(), "completed"))
    assert response.status_code == 503
    assert "database" in response.get_json()["error"]


def test_assemblyai_webhook_is_503_when_the_database_is_unreachable(unreachable_db_app: Flask) -> None:
    """AssemblyAI never retries after a 4xx, so our own outage must be a 5xx."""
    client = unreachable_db_app.test_client()
    secret = unreachable_db_app.extensions["settings"].webhook_secret
    response = client.post(
        "/assemblyai/webhook?recording=1",
        json={"transcript_id": "5551f0a8-0000-4000-8000-000000000000", "status": "completed"},
        headers={WEBHOOK_HEADER_NAME: secret},
    )
    assert response.status_code == 503


# -- exports -------------------------------------------------------------------

FORWARDED = [
    {
        "channel": 1,
        "text": "Is the shop open today, and until when are you there for people like me who work late"
        " and can only come by after the office closes on a weekday evening?",
    },
    {"channel": 2, "text": "Yes, until six."},
]


def export(admin: FlaskClient, sid: str, fmt: str) -> tuple[str, Any]:
    response = admin.get(f"/calls/{sid}/transcript.{fmt}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True), response


def parse_vtt(text: str) -> list[tuple[str, str, str]]:
    """A small WebVTT reader of the test's own: (start, end, text) per cue."""
    assert text.startswith("WEBVTT")
    cues = []
    for block in text.strip().split("\n\n")[1:]:
        timing, *lines = block.splitlines()
        start, _, end = timing.partition(" --> ")
        cues.append((start, end, "\n".join(lines)))
    return cues


def test_the_transcript_downloads_as_a_dialogue_with_times(calls: Calls, admin: FlaskClient) -> None:
    sid = calls.with_transcript(1, "Is the shop open? Yes.", FORWARDED, channels=2, source="DialVerb")
    text, response = export(admin, sid, "txt")
    disposition = response.headers["Content-Disposition"]
    assert (
        disposition.startswith("attachment;")
        and f'filename="{sid}-' in disposition
        and '.txt"' in disposition
    )
    lines = text.splitlines()
    assert lines[0].startswith(f"Call {sid}:")
    assert re.fullmatch(r"\[\d\d:\d\d:\d\d\] Caller: Is the shop open today, .*", lines[2])
    assert re.fullmatch(r"\[\d\d:\d\d:\d\d\] You: Yes, until six\.", lines[3])


def test_subtitles_name_the_speaker_and_split_long_turns(calls: Calls, admin: FlaskClient) -> None:
    sid = calls.with_transcript(1, "Is the shop open? Yes.", FORWARDED, channels=2, source="DialVerb")
    srt_text, response = export(admin, sid, "srt")
    assert response.mimetype == "application/x-subrip"
    parsed = webvtt.from_buffer(io.StringIO(srt_text), format="srt")  # not the library that wrote it
    texts = [c.text for c in parsed.captions]
    assert texts[0].startswith("Caller: Is the shop open")
    assert texts[-1] == "You: Yes, until six."
    assert len(texts) >= 3, "the long first turn is split"
    for caption in parsed.captions:
        assert caption.end_in_seconds - caption.start_in_seconds <= 7.5
        assert len(caption.text.splitlines()) <= 2 and all(
            len(line) <= 42 for line in caption.text.splitlines()
        )
    joined = " ".join(t.split(": ", 1)[1] if ": " in t else t for t in texts[:-1]).replace("\n", " ")
    assert joined == FORWARDED[0]["text"], "every word once, in order"

    vtt_text, response = export(admin, sid, "vtt")
    assert response.mimetype == "text/vtt"
    vtt = parse_vtt(vtt_text)
    assert [c[2] for c in vtt] == texts
    assert all(re.fullmatch(r"\d\d:\d\d:\d\d\.\d\d\d", t) for c in vtt for t in c[:2])


def test_the_json_export_holds_the_call_its_recordings_and_the_dialogue(
    calls: Calls, admin: FlaskClient
) -> None:
    sid = calls.with_transcript(1, "Is the shop open? Yes.", FORWARDED, channels=2, source="DialVerb")
    text, _ = export(admin, sid, "json")
    body = json.loads(text)
    assert body["call_sid"] == sid
    (recording,) = body["recordings"]
    assert recording["engine"] == "assemblyai" and recording["transcript"]["status"] == "completed"
    assert [t["speaker"] for t in recording["dialogue"]] == ["Caller", "You"]
    assert recording["dialogue"][0]["words"][0]["text"] == "Is"
    assert recording["transcript"]["words"], "the normalised words"


def test_exports_need_a_login_and_a_known_call(client: FlaskClient, calls: Calls, admin: FlaskClient) -> None:
    sid = calls.with_transcript(1, "Hello.", [{"speaker": "A", "text": "Hello."}])
    assert admin.get(f"/calls/{sid}/transcript.doc").status_code == 404
    assert admin.get(f"/calls/{call_sid(99)}/transcript.txt").status_code == 404
    admin.post("/logout")
    assert client.get(f"/calls/{sid}/transcript.txt").status_code == 302


# -- named speakers ----------------------------------------------------------------


def test_a_renamed_speaker_shows_in_the_dialogue_and_every_export(calls: Calls, admin: FlaskClient) -> None:
    sid = calls.with_transcript(1, "Hello, you reached Ada. Hi, it is Bob.", MONO)
    renamed = admin.post(f"/calls/{sid}/speakers", data={"label": "A", "name": "Ada Lovelace"})
    assert renamed.status_code == 302
    shown = page(admin.get(f"/calls/{sid}"))
    assert shown.by_class["who"] == ["Ada Lovelace", "Speaker B"]
    text, _ = export(admin, sid, "txt")
    assert "] Ada Lovelace: Hello, you reached Ada." in text
    srt_text, _ = export(admin, sid, "srt")
    assert "Ada Lovelace: Hello" in srt_text
    body = json.loads(export(admin, sid, "json")[0])
    assert body["recordings"][0]["dialogue"][0]["speaker"] == "Ada Lovelace"


def test_the_api_names_several_speakers_and_an_empty_name_restores_the_default(
    calls: Calls, admin: FlaskClient
) -> None:
    sid = calls.with_transcript(1, "Hello, you reached Ada. Hi, it is Bob.", MONO)
    answer = admin.put(
        f"/api/calls/{sid}/speakers",
        json={"A": "Dana", "B": "Sam"},
        headers={"X-CSRFToken": admin.csrf_token()},  # type: ignore[attr-defined]
    )
    assert answer.status_code == 200
    assert answer.get_json()["speakers"] == {"A": "Dana", "B": "Sam"}
    reset = admin.put(
        f"/api/calls/{sid}/speakers",
        json={"B": ""},
        headers={"X-CSRFToken": admin.csrf_token()},  # type: ignore[attr-defined]
    )
    assert reset.get_json()["speakers"] == {"A": "Dana", "B": "Speaker B"}


def test_naming_a_speaker_the_call_does_not_have_is_refused(calls: Calls, admin: FlaskClient) -> None:
    sid = calls.with_transcript(1, "Hello, you reached Ada. Hi, it is Bob.", MONO)
    csrf = {"X-CSRFToken": admin.csrf_token()}  # type: ignore[attr-defined]
    unknown = admin.put(f"/api/calls/{sid}/speakers", json={"Z": "Zed"}, headers=csrf)
    assert unknown.status_code == 422 and "no speaker 'Z'" in unknown.get_json()["error"]
    malformed = admin.put(f"/api/calls/{sid}/speakers", json=["A", "Dana"], headers=csrf)
    assert malformed.status_code == 400 and "error" in malformed.get_json()
    too_long = admin.put(f"/api/calls/{sid}/speakers", json={"A": "x" * 81}, headers=csrf)
    assert too_long.status_code == 422
    missing = admin.put(f"/api/calls/{call_sid(99)}/speakers", json={"A": "Dana"}, headers=csrf)
    assert missing.status_code == 404 and "error" in missing.get_json()
    assert page(admin.get(f"/calls/{sid}")).by_class["who"] == ["Speaker A", "Speaker B"]
