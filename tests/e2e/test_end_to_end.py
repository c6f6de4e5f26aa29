"""callscribe end to end: two phone calls from Twilio's callbacks to the dashboard.

The service runs as deployed: the Procfile's release command, ``gunicorn
wsgi:app`` and ``flask worker``, configured only through the environment.
Twilio and AssemblyAI are the fake servers from ``tests/fakes`` on
127.0.0.1; AssemblyAI's webhooks reach the service the way a tunnel would
deliver them. Everything starts once per storage configuration, and each
test below checks one behaviour of that single run.
"""

from __future__ import annotations

import base64
import json
import re
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import requests
import sqlalchemy as sa

from tests.e2e import report
from tests.e2e.browser import chromium
from tests.e2e.calls import PlannedCall
from tests.e2e.html_text import texts
from tests.e2e.rows import outcomes, pipeline_state
from tests.e2e.service import Fakes, Service, Storage
from tests.e2e.twilio_side import TwilioSide
from tests.fakes import audio
from tests.helpers import (
    ACCOUNT_SID,
    ADMIN_PASSWORD,
    ASSEMBLYAI_KEY,
    AUTH_TOKEN,
    BASE_URL,
    SECRET_KEY,
    TWILIO_NUMBER,
)

pytestmark = pytest.mark.e2e

TRANSCRIPT_TIMEOUT = 30.0


def planned_calls() -> tuple[PlannedCall, PlannedCall]:
    voicemail = PlannedCall(
        name="voicemail",
        caller="+14155550123",
        channels=1,
        source="RecordVerb",
        duration=4,
        audio=audio.tone(0.5, 1, 440.0),
        text="Hi, this is Ada calling about the invoice.",
        utterances=[{"speaker": "A", "text": "Hi, this is Ada calling about the invoice."}],
    )
    forwarded = PlannedCall(
        name="forwarded",
        caller="+14155550124",
        channels=2,
        source="DialVerb",
        duration=9,
        audio=audio.tone(0.5, 2, 660.0),
        text="Thanks for calling Acme. I'd like to change my order.",
        utterances=[
            # Twilio puts the caller (parent leg) on channel 1, who answered on 2.
            {"channel": 2, "text": "Thanks for calling Acme."},
            {"channel": 1, "text": "I'd like to change my order."},
        ],
    )
    return voicemail, forwarded


@dataclass
class Run:
    """What happened when the two calls were played through the service."""

    backend: str
    voicemail: PlannedCall
    forwarded: PlannedCall
    voice_twiml: ET.Element
    seconds: dict[str, float | None]
    unfinished: str = ""

    @property
    def calls(self) -> tuple[PlannedCall, PlannedCall]:
        return self.voicemail, self.forwarded


@pytest.fixture(scope="module")
def run(storage: Storage, service: Service, fakes: Fakes, database: sa.Engine) -> Run:
    """Play a voicemail and a forwarded call as Twilio would; time each to its stored transcript."""
    voicemail, forwarded = planned_calls()
    with requests.Session() as session:
        twilio = TwilioSide(session, service.local_url)

        # A caller reaches the number and leaves a message (<Record>, mono).
        twiml = twilio.incoming_call(voicemail.call_sid, voicemail.caller)
        record = twiml.find("Record")
        callback = BASE_URL + "/twilio/recording-status"
        if record is not None:
            callback = record.get("recordingStatusCallback") or callback
        twilio.call_status(voicemail.call_sid, voicemail.caller, "ringing")
        twilio.call_status(voicemail.call_sid, voicemail.caller, "in-progress")
        if record is not None and record.get("action"):
            after = twilio.post(
                record.get("action", ""),
                {
                    "AccountSid": ACCOUNT_SID,
                    "CallSid": voicemail.call_sid,
                    "CallStatus": "in-progress",
                    "Direction": "inbound",
                    "From": voicemail.caller,
                    "To": TWILIO_NUMBER,
                    "RecordingSid": voicemail.recording_sid,
                    "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}"
                    f"/Recordings/{voicemail.recording_sid}",
                    "RecordingDuration": str(voicemail.duration),
                    "Digits": "hangup",
                },
            )
            assert after.status_code == 200, f"<Record> action answered {after.status_code}: {after.text}"
        twilio.call_status(
            voicemail.call_sid,
            voicemail.caller,
            "completed",
            CallDuration=str(voicemail.duration + 6),
        )

        # A call forwarded with <Dial record="record-from-answer-dual">: one party per channel.
        for status in ("ringing", "in-progress"):
            twilio.call_status(forwarded.call_sid, forwarded.caller, status)
        twilio.call_status(
            forwarded.call_sid, forwarded.caller, "completed", CallDuration=str(forwarded.duration + 3)
        )

        for call in (voicemail, forwarded):
            fakes.twilio.add_recording(
                call.recording_sid,
                call.audio,
                call.call_sid,
                channels=call.channels,
                duration=call.duration,
                source=call.source,
            )
            fakes.assemblyai.set_result_for_audio(call.audio, call.text, call.utterances)

        # Both recordings complete at about the same moment; the clock starts at each callback.
        started: dict[str, float] = {}
        for call in (voicemail, forwarded):
            started[call.recording_sid] = time.monotonic()
            twilio.recording_completed(
                call.call_sid,
                call.recording_sid,
                channels=call.channels,
                source=call.source,
                duration=call.duration,
                callback_url=callback if call is voicemail else BASE_URL + "/twilio/recording-status",
            )

    # Poll until every recording is transcribed, or has failed (no point waiting longer then).
    finished: dict[str, float] = {}
    ended: dict[str, str] = {}
    deadline = time.monotonic() + TRANSCRIPT_TIMEOUT
    while len(ended) < len(started) and time.monotonic() < deadline:
        now = time.monotonic()
        ended = outcomes(database, list(started))
        for sid, stage in ended.items():
            if stage == "transcribed" and sid not in finished:
                finished[sid] = now - started[sid]
        time.sleep(0.02)

    seconds = {
        call.name: round(finished[call.recording_sid], 3) if call.recording_sid in finished else None
        for call in (voicemail, forwarded)
    }
    report.record_timings(
        {
            "backend": storage.backend,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "recording_callback_to_transcript_seconds": seconds,
            "timeout_seconds": TRANSCRIPT_TIMEOUT,
        }
    )
    unfinished = "" if len(finished) == len(started) else pipeline_state(database)
    return Run(storage.backend, voicemail, forwarded, twiml, seconds, unfinished)


# -- the tests -------------------------------------------------------------


def test_incoming_call_is_answered_with_a_recording(run: Run) -> None:
    record = run.voice_twiml.find("Record")
    assert record is not None, ET.tostring(run.voice_twiml, encoding="unicode")
    assert record.get("recordingStatusCallback") == f"{BASE_URL}/twilio/recording-status"
    assert "completed" in (record.get("recordingStatusCallbackEvent") or "completed").split()


def test_each_recording_becomes_a_stored_transcript(run: Run, database: sa.Engine) -> None:
    missing = [name for name, seconds in run.seconds.items() if seconds is None]
    assert not missing, f"no transcript stored for {missing}\n{run.unfinished}"
    with database.connect() as connection:
        for call in run.calls:
            row = (
                connection.execute(
                    sa.text(
                        "SELECT c.status AS call_status, c.direction, c.from_number, c.to_number,"
                        " r.status AS recording_status, r.stage, r.channels, r.source,"
                        " t.status AS transcript_status, t.text, t.utterances"
                        " FROM calls c JOIN recordings r ON r.call_id = c.id"
                        " JOIN transcripts t ON t.recording_id = r.id"
                        " WHERE c.call_sid = :call AND r.recording_sid = :recording"
                    ),
                    {"call": call.call_sid, "recording": call.recording_sid},
                )
                .mappings()
                .one()
            )
            assert (row["call_status"], row["direction"]) == ("completed", "inbound")
            assert (row["from_number"], row["to_number"]) == (call.caller, TWILIO_NUMBER)
            assert (row["recording_status"], row["stage"]) == ("completed", "transcribed")
            assert (row["channels"], row["source"]) == (call.channels, call.source)
            assert (row["transcript_status"], row["text"]) == ("completed", call.text)
            utterances = row["utterances"]
            if isinstance(utterances, str):  # SQLite hands JSON back as text to a raw query
                utterances = json.loads(utterances)
            assert [u["text"] for u in utterances] == call.lines
            if call.channels == 2:
                assert [str(u["channel"]) for u in utterances] == ["2", "1"]
            else:
                assert [u["speaker"] for u in utterances] == ["A"]


def _recording_ids(database: sa.Engine) -> dict[str, int]:
    with database.connect() as connection:
        rows = connection.execute(sa.text("SELECT recording_sid, id FROM recordings"))
        return {sid: recording_id for sid, recording_id in rows}


def test_twilio_media_is_downloaded_once_with_basic_auth(run: Run, fakes: Fakes) -> None:
    expected = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    for call in run.calls:
        media = [
            r for r in fakes.twilio.requests_of("media") if r.params["recording_sid"] == call.recording_sid
        ]
        assert len(media) == 1, f"{call.name}: {len(media)} media requests"
        (request,) = media
        assert request.headers.get("Authorization") == f"Basic {expected}"
        assert request.authorized
        query = parse_qs(request.query)
        if call.channels == 2:
            assert query.get("RequestedChannels") == ["2"], request.target
        else:
            assert "RequestedChannels" not in query, request.target
        assert fakes.twilio.media_downloads(call.recording_sid) == 1
    assert all(r.authorized for r in fakes.twilio.requests), [r.target for r in fakes.twilio.requests]
    assert not fakes.twilio.errors


def test_assemblyai_gets_one_upload_and_one_valid_submission_per_recording(
    run: Run, fakes: Fakes, database: sa.Engine
) -> None:
    aai = fakes.assemblyai
    assert not aai.rejected, aai.rejected
    assert not aai.errors, aai.errors
    ids = _recording_ids(database)
    assert len(aai.uploads) == len(run.calls)
    assert len(aai.submissions) == len(run.calls)
    for call in run.calls:
        uploads = [u for u in aai.uploads if u["data"] == call.audio]
        assert len(uploads) == 1, f"{call.name}: {len(uploads)} uploads of its audio"
        assert audio.channel_count(uploads[0]["data"]) == call.channels, f"{call.name}: channels lost"
        submissions = [s for s in aai.submissions if s["audio_url"] == uploads[0]["upload_url"]]
        assert len(submissions) == 1, f"{call.name}: {len(submissions)} submissions of its upload"
        (body,) = submissions
        assert isinstance(body.get("speech_models"), list) and body["speech_models"], body
        assert body["webhook_url"] == f"{BASE_URL}/assemblyai/webhook?recording={ids[call.recording_sid]}"
        assert body.get("webhook_auth_header_name")
        assert body.get("webhook_auth_header_value")
        assert body["webhook_auth_header_value"] not in (
            AUTH_TOKEN,
            ASSEMBLYAI_KEY,
            SECRET_KEY,
            ADMIN_PASSWORD,
        )
        if call.channels == 2:
            assert body.get("multichannel") is True, body
            assert not body.get("speaker_labels"), body
        else:
            assert body.get("speaker_labels") is True, body
            assert not body.get("multichannel"), body


def test_assemblyai_webhooks_are_accepted_at_once(run: Run, fakes: Fakes) -> None:
    aai = fakes.assemblyai
    transcript_ids = [job.id for job in aai.jobs.values()]
    assert len(transcript_ids) == len(run.calls)
    # The fake logs an attempt once it has read the answer, which can be after our worker stored the result.
    aai.wait_for(lambda: {a["transcript_id"] for a in aai.webhook_attempts} >= set(transcript_ids))
    for transcript_id in transcript_ids:
        attempts = [a for a in aai.webhook_attempts if a["transcript_id"] == transcript_id]
        statuses = [a["status"] for a in attempts]
        assert len(attempts) == 1 and 200 <= (statuses[0] or 0) < 300, (transcript_id, statuses, attempts)
        sent = attempts[0]["headers"]
        job = aai.jobs[transcript_id]
        assert sent[job.params["webhook_auth_header_name"]] == job.params["webhook_auth_header_value"]
    assert not aai.lost_webhooks


def test_twilio_credentials_never_reach_assemblyai(run: Run, fakes: Fakes) -> None:
    assert fakes.assemblyai.requests, "AssemblyAI was never called"
    for request in fakes.assemblyai.requests:
        assert request.headers.get("authorization") == ASSEMBLYAI_KEY, (request.method, request.target)
        assert not request.headers.get("authorization", "").lower().startswith("basic")
        for name, value in request.headers.items():
            assert AUTH_TOKEN not in value, f"Twilio auth token in header {name} of {request.target}"
        assert AUTH_TOKEN.encode() not in request.body, f"Twilio auth token in body of {request.target}"
    for body in fakes.assemblyai.submissions:
        assert "@" not in body["audio_url"].split("/")[2], f"credentials in audio_url {body['audio_url']}"
    for request in fakes.twilio.requests:
        assert ASSEMBLYAI_KEY not in " ".join(request.headers.values()), "AssemblyAI key sent to Twilio"


def test_dashboard_needs_a_login(run: Run, service: Service) -> None:
    with requests.Session() as browser:
        for path in ("/", f"/calls/{run.forwarded.call_sid}"):
            response = browser.get(service.local_url + path, allow_redirects=False, timeout=10)
            assert response.status_code == 302, (path, response.status_code)
            assert "/login" in response.headers["Location"]


def test_dashboard_shows_both_transcripts_after_login(run: Run, service: Service) -> None:
    with requests.Session() as browser:
        form = browser.get(f"{service.local_url}/login", timeout=10)
        assert form.status_code == 200
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token, "the login form carries no CSRF token"
        login = browser.post(
            f"{service.local_url}/login",
            data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token.group(1)},
            allow_redirects=False,
            timeout=10,
        )
        assert login.status_code == 302, login.text
        home = browser.get(f"{service.local_url}/", timeout=10)
        assert home.status_code == 200
        excerpts = texts(home.text, "excerpt")
        for call in run.calls:
            first_words = " ".join(call.text.split()[:4])
            assert any(e.startswith(first_words) for e in excerpts), (first_words, excerpts)

        for call in run.calls:
            page = browser.get(f"{service.local_url}/calls/{call.call_sid}", timeout=10)
            assert page.status_code == 200
            assert texts(page.text, "transcript") == [call.text]
            assert texts(page.text, "said") == call.lines
            speakers = texts(page.text, "who")
            assert len(speakers) == len(call.lines) and all(speakers), speakers
            if call.channels == 2:
                assert speakers == ["You", "Caller"], speakers


@pytest.mark.browser
def test_browser_logs_in_and_reads_the_forwarded_call(run: Run, service: Service, tmp_path: Path) -> None:
    with chromium() as browser:
        from playwright.sync_api import expect

        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{service.local_url}/")
        expect(page).to_have_url(re.compile(r"/login"))
        page.get_by_label("Username").fill("admin")
        page.get_by_label("Password").fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Log in").click()

        rows = page.locator("table.calls tbody tr")
        expect(rows).to_have_count(2)
        for call in run.calls:
            expect(rows.filter(has_text=call.text.split(".")[0])).to_have_count(1)
        page.screenshot(path=str(tmp_path / "calls.png"), full_page=True)

        rows.filter(has_text="Thanks for calling Acme.").get_by_role("link").first.click()
        expect(page).to_have_url(re.compile(re.escape(f"/calls/{run.forwarded.call_sid}") + "$"))
        lines = page.locator("ol.dialogue > li")
        expect(lines).to_have_count(2)
        expect(lines.locator(".said")).to_have_text(run.forwarded.lines)
        expect(lines.locator(".who")).to_have_text(["You", "Caller"])
        expect(page.locator("p.transcript")).to_have_text(run.forwarded.text)
        page.screenshot(path=str(tmp_path / "forwarded-call.png"), full_page=True)
