"""One call's page: its history, its facts, who said what when, seeking by word, and what went wrong.

Calls reach the page as in production: signed Twilio webhooks, the queue,
AssemblyAI's webhook, with both providers faked at the HTTP boundary only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app import clients, dialogue, pipeline
from app.models import Call, CallEvent, Recording, Transcript, db
from app.pages import clock, seconds
from tests.fakes.assemblyai_api import FakeAssemblyAI
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import (
    TWILIO_NUMBER,
    call_sid,
    call_status_form,
    post_assemblyai_webhook,
    post_twilio,
    recording_form,
    recording_sid,
    run_jobs,
)
from tests.pages import MONO, Calls, a_failed_recording, page

VIEWER_PASSWORD = "viewer-password-4e9a"


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


# -- reading the page's structure ----------------------------------------------------


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""

    @property
    def classes(self) -> list[str]:
        return self.attrs.get("class", "").split()


class Elements(HTMLParser):
    """Every element with a class, with its attributes and its text, in page order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[Element] = []
        self._open: list[tuple[str, Element | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        element = Element(tag, values) if "class" in values else None
        if element is not None:
            self.found.append(element)
        if tag not in ("br", "meta", "link", "input", "img"):
            self._open.append((tag, element))

    def handle_endtag(self, tag: str) -> None:
        while self._open and self._open.pop()[0] != tag:
            pass

    def handle_data(self, data: str) -> None:
        for _, element in self._open:
            if element is not None:
                element.text += data

    def of_class(self, name: str) -> list[Element]:
        return [e for e in self.found if name in e.classes]


def elements(response: Any) -> Elements:
    parser = Elements()
    parser.feed(response.get_data(as_text=True))
    parser.close()
    return parser


def stored_utterances(app: Flask, n: int = 1) -> list[dict[str, Any]]:
    with app.app_context():
        query = (
            select(Transcript.utterances)
            .join(Recording, Recording.id == Transcript.recording_id)
            .where(Recording.recording_sid == recording_sid(n))
        )
        return db.session.scalars(query).one() or []


# -- the page: history and facts -----------------------------------------------------


def test_the_history_reads_in_plain_words_in_order_with_times(
    calls: Calls, client: FlaskClient, admin: FlaskClient
) -> None:
    sid = call_sid(1)
    call_status(client, sid, "ringing")
    call_status(client, sid, "in-progress")
    calls.with_transcript(1, "Hello there.")
    shown = elements(admin.get(f"/calls/{sid}"))
    (box,) = shown.of_class("history")
    lines = [re.sub(r"\s+", " ", e.text).strip() for e in shown.of_class("event")]
    assert lines == [
        "ringing",
        "in progress",
        "completed",
        "recording completed",
        "audio handed over for transcription",
        "sent for transcription",
        "transcribed",
    ]
    times = re.findall(r"(\w[\w ]*?) (\d\d:\d\d:\d\d UTC)", re.sub(r"\s+", " ", box.text))
    assert [what for what, _ in times] == lines
    assert [at for _, at in times] == sorted(at for _, at in times)


def test_the_facts_give_both_numbers_the_direction_in_words_and_who_transcribed_it(
    app: Flask, calls: Calls, admin: FlaskClient
) -> None:
    sid = calls.with_transcript(1, "Hello there.", CallDuration="42")
    html = admin.get(f"/calls/{sid}")
    shown, text = elements(html), page(html).text
    assert [e.text for e in shown.of_class("from")] == ["+14155550123"]
    assert [e.text for e in shown.of_class("to")] == [TWILIO_NUMBER]
    (direction,) = shown.of_class("direction")
    assert (direction.text, direction.attrs["title"]) == ("Inbound", "inbound")
    (source,) = shown.of_class("source")
    assert (source.text, source.attrs["title"]) == ("Voicemail", "RecordVerb")
    assert [e.text for e in shown.of_class("duration")] == ["42 s"]
    assert [e.text for e in shown.of_class("engine")] == ["AssemblyAI"]
    with app.app_context():
        model = db.session.scalars(select(Transcript.speech_model_used)).one()
    assert model and [e.text for e in shown.of_class("model")] == [model]
    assert "Started" in text


def test_a_dialled_call_says_so_with_twilios_word_in_the_tooltip(calls: Calls, admin: FlaskClient) -> None:
    sid = calls.call(1, Direction="outbound-api")
    (direction,) = elements(admin.get(f"/calls/{sid}")).of_class("direction")
    assert (direction.text, direction.attrs["title"]) == ("Outbound (dialled from here)", "outbound-api")


# -- the page: turns and words ----------------------------------------------------------


def test_each_turn_starts_with_a_button_that_seeks_to_its_time(
    app: Flask, calls: Calls, admin: FlaskClient
) -> None:
    sid = calls.with_transcript(1, "Hello, you reached Ada. Hi Ada.", MONO)
    buttons = elements(admin.get(f"/calls/{sid}")).of_class("seek")
    starts = [u["start"] for u in stored_utterances(app)]
    assert [b.tag for b in buttons] == ["button", "button"]
    assert all(b.attrs["type"] == "button" for b in buttons)
    assert [float(b.attrs["data-start"]) for b in buttons] == [s / 1000 for s in starts]
    assert [b.text for b in buttons] == [f"0:{s // 1000:02d}" for s in starts]


@pytest.mark.parametrize(
    ("ms", "shown"), [(0, "0:00"), (9_999, "0:09"), (65_000, "1:05"), (3_725_000, "1:02:05")]
)
def test_a_turns_time_reads_as_m_ss_or_h_mm_ss(ms: int, shown: str) -> None:
    assert clock(ms) == shown


def test_every_word_is_a_span_with_its_times_in_seconds(app: Flask, calls: Calls, admin: FlaskClient) -> None:
    sid = calls.with_transcript(1, "Hello, you reached Ada. Hi Ada.", MONO)
    words = elements(admin.get(f"/calls/{sid}")).of_class("word")
    stored = [w for u in stored_utterances(app) for w in u["words"]]
    assert [(w.tag, w.text) for w in words] == [("span", w["text"]) for w in stored]
    assert [(w.attrs["data-start"], w.attrs["data-end"]) for w in words] == [
        (seconds(w["start"]), seconds(w["end"])) for w in stored
    ]
    assert seconds(240) == "0.24" and seconds(1000) == "1" and seconds(61_005) == "61.005"


def test_a_word_the_engine_was_unsure_of_is_marked_with_its_confidence(
    calls: Calls, admin: FlaskClient
) -> None:
    unsure = [{"speaker": "A", "text": "The parcel arrived damaged.", "unsure": {"parcel": 0.42}}]
    sid = calls.with_transcript(1, "The parcel arrived damaged.", unsure)
    words = elements(admin.get(f"/calls/{sid}")).of_class("word")
    low = [w for w in words if "low" in w.classes]
    assert [(w.text, w.attrs["title"]) for w in low] == [("parcel", "low confidence (42 %)")]
    assert all("title" not in w.attrs for w in words if w not in low)


def test_the_player_has_controls_and_the_page_loads_its_script_file(calls: Calls, admin: FlaskClient) -> None:
    sid = calls.with_transcript(1, "Hello there.")
    html = admin.get(f"/calls/{sid}").get_data(as_text=True)
    assert re.search(r"<audio controls[^>]* src=\"/recordings/\d+/audio\"", html)
    assert '<script src="/static/call.js" defer></script>' in html
    policy = admin.get(f"/calls/{sid}").headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy.split("; ") and "unsafe-inline" not in policy
    with admin.get("/static/call.js") as script:
        assert script.status_code == 200
        assert script.mimetype in ("text/javascript", "application/javascript")
        assert "currentTime" in script.get_data(as_text=True)


# -- the page: what went wrong -------------------------------------------------------------


def retry_buttons(response: Any) -> list[str]:
    return re.findall(r'action="(/recordings/\d+/retry)"', response.get_data(as_text=True))


def test_no_audio_is_explained_and_offers_no_retry(
    calls: Calls, client: FlaskClient, admin: FlaskClient
) -> None:
    sid = calls.call(1)
    form = recording_form(sid, recording_sid(1), status="absent", ErrorCode="16101")
    assert post_twilio(client, "/twilio/recording-status", form).status_code == 204
    response = admin.get(f"/calls/{sid}")
    text = page(response).text
    assert "the call was too short or silent to record" in text
    assert "What Twilio error 16101 means" in text
    assert 'href="https://www.twilio.com/docs/api/errors/16101"' in response.get_data(as_text=True)
    assert retry_buttons(response) == [] and "Try again" not in text


def test_twilios_recording_failure_is_explained_with_its_code(
    calls: Calls, client: FlaskClient, admin: FlaskClient
) -> None:
    sid = calls.call(1)
    form = recording_form(sid, recording_sid(1), status="failed", ErrorCode="13617")
    assert post_twilio(client, "/twilio/recording-status", form).status_code == 204
    response = admin.get(f"/calls/{sid}")
    text = page(response).text
    assert "Twilio could not make the recording, so there is no audio to transcribe." in text
    assert 'href="https://www.twilio.com/docs/api/errors/13617"' in response.get_data(as_text=True)
    assert retry_buttons(response) == []


def test_a_delivery_failure_says_so_and_offers_try_again(
    calls: Calls, assemblyai_api: FakeAssemblyAI, admin: FlaskClient
) -> None:
    recording_id = a_failed_recording(calls, assemblyai_api)
    response = admin.get(f"/calls/{call_sid(1)}")
    shown = page(response)
    assert "We could not fetch the audio from Twilio or send it to AssemblyAI." in shown.text
    assert shown.by_class["error"] == ["AssemblyAI answered HTTP 400: Bad request"]
    assert retry_buttons(response) == [f"/recordings/{recording_id}/retry"]


def test_assemblyais_error_is_shown_escaped_with_try_again(
    app: Flask, calls: Calls, assemblyai_api: FakeAssemblyAI, admin: FlaskClient
) -> None:
    recording_id = calls.recorded(1)
    transcript_id = calls.recording(1).transcript.transcript_id  # type: ignore[union-attr]
    assemblyai_api.fail(transcript_id, error="<b>Transcoding</b> failed.")
    assert post_assemblyai_webhook(admin, app, recording_id, transcript_id).status_code == 200
    run_jobs(app)
    response = admin.get(f"/calls/{call_sid(1)}")
    shown = page(response)
    assert "AssemblyAI could not transcribe the audio. It said:" in shown.text
    assert shown.by_class["error"] == ["<b>Transcoding</b> failed."]
    assert "<b>Transcoding</b>" not in shown.html and "&lt;b&gt;Transcoding&lt;/b&gt;" in shown.html
    assert retry_buttons(response) == [f"/recordings/{recording_id}/retry"]


def test_a_viewer_reads_the_failure_but_gets_no_retry_button(
    app: Flask, calls: Calls, assemblyai_api: FakeAssemblyAI
) -> None:
    a_failed_recording(calls, assemblyai_api)
    added = app.test_cli_runner().invoke(
        args=["users", "add", "vera", "--role", "viewer", "--password-stdin"], input=f"{VIEWER_PASSWORD}\n"
    )
    assert added.exit_code == 0, added.output
    viewer = app.test_client()
    assert viewer.post("/login", data={"username": "vera", "password": VIEWER_PASSWORD}).status_code == 302
    response = viewer.get(f"/calls/{call_sid(1)}")
    assert "We could not fetch the audio from Twilio" in page(response).text
    assert retry_buttons(response) == [] and "Try again" not in page(response).text


def test_a_turn_without_its_own_words_takes_the_transcripts_words_in_its_time_and_channel() -> None:
    """AssemblyAI puts words in each utterance; an engine that lists them once still gets seekable words."""
    word = {"confidence": 0.9}
    transcript = Transcript(
        status="completed",
        text="Hi. Hello. Bye.",
        utterances=[
            {"channel": "1", "start": 0, "end": 900, "text": "Hi. Bye."},
            {"channel": "2", "start": 300, "end": 600, "text": "Hello."},
        ],
        words=[
            {**word, "text": "Hi.", "start": 0, "end": 200, "channel": "1"},
            {**word, "text": "Hello.", "start": 300, "end": 600, "channel": "2"},
            {**word, "text": "Bye.", "start": 700, "end": 900, "channel": "1"},
            {**word, "text": "Later.", "start": 1000, "end": 1200, "channel": "1"},
        ],
    )
    call = Call(call_sid=call_sid(1))
    recording = Recording(channels=2, source="DialVerb", call=call, transcript=transcript)
    turns = dialogue.of_recording(recording)
    assert [(t.speaker, [w.text for w in t.words]) for t in turns] == [
        ("Caller", ["Hi.", "Bye."]),
        ("You", ["Hello."]),
    ]
