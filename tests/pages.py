"""What the page tests share: reading a page's text and table, and calls that arrive as in production.

:class:`Calls` sends signed Twilio webhooks, runs the queue and answers as
AssemblyAI would, with both providers faked at the HTTP boundary only.
The ``calls`` and ``admin`` fixtures (conftest.py) hand these out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.models import Recording, Transcript, db
from tests.fakes.assemblyai_api import FakeAssemblyAI
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import (
    call_sid,
    call_status_form,
    post_assemblyai_webhook,
    post_twilio,
    recording_form,
    recording_sid,
    run_jobs,
)

CALLER = "+14155550123"
# Two voices on a mono recording, as AssemblyAI's diarization labels them.
MONO = [{"speaker": "A", "text": "Hello, you reached Ada."}, {"speaker": "B", "text": "Hi, it is Bob."}]


class _PageParser(HTMLParser):
    """Collects the visible text, the rows of the calls table, and text by CSS class."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.rows: list[list[str]] = []
        self.by_class: dict[str, list[str]] = {}
        self._cell: list[str] | None = None
        # One entry per open element: the classes it opened text capture for.
        self._open: list[tuple[str, list[str]]] = []
        self._captures: dict[str, list[str]] = {}
        self._template = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "template":  # inert until a script uses it, as in a browser
            self._template += 1
        if self._template:
            return
        if tag == "tr":
            self.rows.append([])
        elif tag == "td":
            self._cell = []
        if tag in ("br", "meta", "link", "input", "img"):
            return
        classes = (dict(attrs).get("class") or "").split()
        for name in classes:
            self._captures[name] = []
        self._open.append((tag, classes))

    def handle_endtag(self, tag: str) -> None:
        if self._template:
            self._template -= tag == "template"
            return
        if tag == "td" and self._cell is not None and self.rows:
            self.rows[-1].append(_squash("".join(self._cell)))
            self._cell = None
        while self._open:
            opened, classes = self._open.pop()
            for name in classes:
                self.by_class.setdefault(name, []).append(_squash("".join(self._captures.pop(name))))
            if opened == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._template:
            return
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)
        for captured in self._captures.values():
            captured.append(data)


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@dataclass
class Page:
    html: str
    text: str
    rows: list[list[str]]
    by_class: dict[str, list[str]]


def page(response: Any) -> Page:
    html = response.get_data(as_text=True)
    parser = _PageParser()
    parser.feed(html)
    parser.close()
    return Page(
        html=html,
        text=_squash("".join(parser.text)),
        rows=[row for row in parser.rows if row],
        by_class=parser.by_class,
    )


# -- putting calls on the page ------------------------------------------------------


@dataclass
class Calls:
    """Drives the app the way Twilio and AssemblyAI would, to put calls on the pages."""

    app: Flask
    client: FlaskClient
    twilio: FakeTwilio
    assemblyai: FakeAssemblyAI

    def call(self, n: int, *, from_number: str = CALLER, status: str = "completed", **extra: str) -> str:
        sid = call_sid(n)
        form = call_status_form(sid, status, From=from_number, **extra)
        assert post_twilio(self.client, "/twilio/call-status", form).status_code == 204
        return sid

    def recorded(self, n: int, *, channels: int = 1, source: str = "RecordVerb", **call: str) -> int:
        """A completed call whose recording has been handed to AssemblyAI; returns the recording id."""
        sid = self.call(n, **call)
        rec = recording_sid(n)
        self.twilio.add_recording(rec, b"RIFF" + bytes([n]) * 256, sid, channels)
        form = recording_form(sid, rec, RecordingChannels=str(channels), RecordingSource=source)
        assert post_twilio(self.client, "/twilio/recording-status", form).status_code == 204
        run_jobs(self.app)
        return self.recording(n).id

    def with_transcript(
        self,
        n: int,
        text: str,
        utterances: list[dict[str, Any]] | None = None,
        *,
        channels: int = 1,
        source: str = "RecordVerb",
        **call: str,
    ) -> str:
        """A call whose transcript is stored, having come the whole way through the pipeline."""
        recording_id = self.recorded(n, channels=channels, source=source, **call)
        with self.app.app_context():
            transcript_id = db.session.scalars(
                select(Transcript.transcript_id).where(Transcript.recording_id == recording_id)
            ).one()
        self.assemblyai.complete(transcript_id, text=text, utterances=utterances)
        response = post_assemblyai_webhook(self.client, self.app, recording_id, transcript_id)
        assert response.status_code == 200
        run_jobs(self.app)
        assert self.recording(n).stage == "transcribed"
        return call_sid(n)

    def recording(self, n: int) -> Recording:
        with self.app.app_context():
            row = db.session.scalars(
                select(Recording).where(Recording.recording_sid == recording_sid(n))
            ).one()
            db.session.expunge(row)
            return row


def a_failed_recording(calls: Calls, assemblyai_api: FakeAssemblyAI) -> int:
    """AssemblyAI rejects the submission for good (a 400), so the recording fails."""
    assemblyai_api.fail_next("submit", status=400)
    recording_id = calls.recorded(1)
    failed = calls.recording(1)
    assert failed.stage == "failed"
    assert failed.last_error == "AssemblyAI answered HTTP 400: Bad request"
    return recording_id
