"""Item 4: recording callback → transcript stored, one call at a time, with fakes that answer at once.

Measured on the server's side, from the service's own rows once the run is
over: ``recordings.created_at`` (the web process inserts the callback's row)
to ``transcripts.completed_at`` (the worker stores the transcript). Waiting
for "stored" polls the database, but the poll only paces the next call; it
is not part of any figure. Beside it, the client's send time of the callback
to ``completed_at`` (one machine, one clock).

The baseline, in the same run against the same fakes: the provider round
trips the pipeline makes, with the app's own provider clients and nothing
else (no queue, no database, no webhook): download the media, upload it,
submit the transcript, fetch it until it is final.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from app.config import Settings
from app.models import Recording, Transcript
from app.providers.assemblyai import AssemblyAI
from app.providers.transcription import AudioStream, TranscriptionOptions
from app.providers.twilio import Twilio
from app.states import FINAL_TRANSCRIPT_STATUSES
from bench.pipeline.stack import Running
from bench.soak import figures
from tests.fakes import audio
from tests.helpers import ACCOUNT_SID, ASSEMBLYAI_KEY, AUTH_TOKEN, call_sid, recording_form, recording_sid

RECORDINGS = Recording.__table__
TRANSCRIPTS = Transcript.__table__
IDLE, BACK_TO_BACK, FLOOR = "idle (one call, then a pause)", "back to back", "provider round trips alone"
# The SIDs of each mode's calls start here, so no two modes share a recording.
FIRST = {IDLE: 1, BACK_TO_BACK: 100_001, FLOOR: 200_001}
STORE_TIMEOUT = 30.0  # seconds to wait for one transcript before giving up on it
FETCHES = 20  # the baseline's fetches of one transcript before it counts as missing


@dataclass
class Latency:
    store: str
    mode: str
    calls: int
    seconds: list[float] = field(default_factory=list)  # created_at -> completed_at
    from_send: list[float] = field(default_factory=list)  # client's send time -> completed_at
    missing: int = 0  # calls whose transcript was not stored within STORE_TIMEOUT

    def pct(self, q: float, values: list[float] | None = None) -> float | None:
        return figures.percentile(self.seconds if values is None else values, q)


def wav(n: int) -> bytes:
    """A tiny mono WAV whose bytes are call ``n``'s own."""
    return audio.wav(struct.pack("<I", n) + bytes(796))


def stored_at(connection: sa.Connection, sid: str) -> bool:
    """Whether the recording's transcript is stored; the read ends its transaction (no snapshot held)."""
    found = connection.execute(
        sa.select(TRANSCRIPTS.c.completed_at)
        .select_from(TRANSCRIPTS.join(RECORDINGS, RECORDINGS.c.id == TRANSCRIPTS.c.recording_id))
        .where(RECORDINGS.c.recording_sid == sid, TRANSCRIPTS.c.completed_at.is_not(None))
    ).first()
    connection.rollback()
    return found is not None


def wait_stored(connection: sa.Connection, sid: str, timeout: float = STORE_TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while not stored_at(connection, sid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def play(running: Running, mode: str, count: int, pause: float) -> Latency:
    """``count`` calls, each callback sent once the previous transcript is stored (and ``pause`` after)."""
    numbers = range(FIRST[mode], FIRST[mode] + count)
    for n in numbers:
        running.twilio.add_recording(recording_sid(n), wav(n), call_sid(n), channels=1, duration=7)
    sent: dict[str, float] = {}
    result = Latency(running.name, mode, count)
    with running.engine.connect() as connection:
        for n in numbers:
            sid = recording_sid(n)
            sent[sid] = running.post_callback(recording_form(call_sid(n), sid))
            if not wait_stored(connection, sid):
                result.missing += 1
            if pause:
                time.sleep(pause)
    rows = timestamps(running.engine, list(sent))
    for sid, (created, completed) in rows.items():
        result.seconds.append((completed - created).total_seconds())
        result.from_send.append(completed.timestamp() - sent[sid])
    return result


def timestamps(engine: sa.Engine, sids: list[str]) -> dict[str, tuple[datetime, datetime]]:
    """``recordings.created_at`` and ``transcripts.completed_at`` of the stored ones among ``sids``."""
    statement = (
        sa.select(RECORDINGS.c.recording_sid, RECORDINGS.c.created_at, TRANSCRIPTS.c.completed_at)
        .select_from(RECORDINGS.join(TRANSCRIPTS, TRANSCRIPTS.c.recording_id == RECORDINGS.c.id))
        .where(RECORDINGS.c.recording_sid.in_(sids), TRANSCRIPTS.c.completed_at.is_not(None))
    )
    with engine.connect() as connection:
        return {sid: (created, completed) for sid, created, completed in connection.execute(statement)}


def provider_floor(running: Running, count: int) -> Latency:
    """The baseline: the pipeline's provider requests, made in a row by the app's own clients.

    Each request goes on a connection of its own (a client of its own, made
    before the clock starts). On a reused connection the fakes, which write
    an answer's headers and body in two sends, would make each request that
    follows an answer at once wait for a delayed ACK (about 40 ms): a cost of
    the fake servers, not of the providers.
    """
    settings = Settings.from_env(running.settings)
    options = TranscriptionOptions(
        channels=1, language=settings.assemblyai_language, models=settings.assemblyai_speech_models
    )
    result = Latency(running.name, FLOOR, count)
    for n in range(FIRST[FLOOR], FIRST[FLOOR] + count):
        running.twilio.add_recording(recording_sid(n), wav(n), call_sid(n), channels=1, duration=7)
        twilio = Twilio(ACCOUNT_SID, AUTH_TOKEN, running.twilio.base_url, timeout=settings.http_timeout)
        uploader, submitter = (
            AssemblyAI(ASSEMBLYAI_KEY, running.assemblyai.base_url, timeout=settings.http_timeout)
            for _ in range(2)
        )
        fetchers = [
            AssemblyAI(ASSEMBLYAI_KEY, running.assemblyai.base_url, timeout=settings.http_timeout)
            for _ in range(FETCHES)
        ]
        started = time.perf_counter()
        with twilio.open_media(recording_sid(n), channels=1) as media:
            audio_ref = uploader.prepare(AudioStream(media.chunks()))
        submission = submitter.submit(audio_ref, options)
        for fetcher in fetchers:
            if fetcher.fetch(submission.id).status in FINAL_TRANSCRIPT_STATUSES:
                result.seconds.append(time.perf_counter() - started)
                break
        else:
            result.missing += 1
    return result


def measure(running: Running, calls: int, pause: float) -> list[Latency]:
    results = []
    for mode, wait in ((IDLE, pause), (BACK_TO_BACK, 0.0)):
        print(f"  {running.name}: {calls} calls {mode}", flush=True)
        results.append(play(running, mode, calls, wait))
    print(f"  {running.name}: {calls} × {FLOOR} (the baseline)", flush=True)
    results.append(provider_floor(running, calls))
    return results
