"""A call's transcript to take elsewhere: text, SRT and WebVTT subtitles, and JSON.

``GET /calls/<CallSid>/transcript.txt`` (and ``.srt``, ``.vtt``, ``.json``),
behind login like every page. Subtitles carry the speaker's name as a cue
prefix, and long turns are split into cues of at most about 7 s and 2 lines.
"""

from __future__ import annotations

import csv
import io
import json
import textwrap
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, timedelta
from typing import Any

import srt
import webvtt
from flask import Blueprint, Response, abort, request, stream_with_context, url_for

from . import dialogue, listing, wording
from .access import Permission, requires
from .models import Call, db, utcnow
from .pages import find_call
from .states import RecordingStatus
from .uploads import UPLOAD_DIRECTION

bp = Blueprint("exports", __name__)

CUE_MS = 7000  # the longest a cue may run
LINE_CHARS = 42  # two lines of this, at most, per cue


def clock(ms: int, *, fraction: bool = False) -> str:
    """01:02:03, or 01:02:03.456 with the milliseconds."""
    seconds, millis = divmod(max(0, ms), 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    text = f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    return f"{text}.{millis:03d}" if fraction else text


def text_export(call: Call) -> str:
    """A speaker-labelled dialogue with timestamps."""
    started = (call.started_at or call.created_at).strftime("%Y-%m-%d %H:%M:%S UTC")
    if call.direction == UPLOAD_DIRECTION:
        heading = f"{call.title} ({call.call_sid}), uploaded {started}"
    else:
        parties = f"{call.from_number or 'unknown'} -> {call.to_number or 'unknown'}"
        heading = f"Call {call.call_sid}: {parties}, {started}"
    lines = [heading, ""]
    lines += [f"[{clock(t.start)}] {t.speaker}: {t.text}" for t in dialogue.of_call(call)]
    return "\n".join(lines) + "\n"


def cues(turns: list[dialogue.Turn]) -> Iterator[tuple[int, int, str]]:
    """(start ms, end ms, text) for each cue: a turn, split where it runs long."""
    for turn in turns:
        words = turn.words or (dialogue.Word(turn.text, turn.start, turn.end, None),)
        chunk: list[dialogue.Word] = []
        for word in words:
            too_long = chunk and (
                word.end - chunk[0].start > CUE_MS or len(_lines(turn.speaker, [*chunk, word])) > 2
            )
            if too_long:
                yield _cue(turn.speaker, chunk)
                chunk = []
            chunk.append(word)
        if chunk:
            yield _cue(turn.speaker, chunk)


def _lines(speaker: str, words: list[dialogue.Word]) -> list[str]:
    return textwrap.wrap(f"{speaker}: " + " ".join(w.text for w in words), LINE_CHARS)


def _cue(speaker: str, words: list[dialogue.Word]) -> tuple[int, int, str]:
    end = max(words[-1].end, words[0].start + 500)  # a cue too short to read helps no one
    return words[0].start, end, "\n".join(_lines(speaker, words))


def srt_export(call: Call) -> str:
    subtitles = [
        srt.Subtitle(i, timedelta(milliseconds=start), timedelta(milliseconds=end), text)
        for i, (start, end, text) in enumerate(cues(dialogue.of_call(call)), start=1)
    ]
    return str(srt.compose(subtitles))


def vtt_export(call: Call) -> str:
    document = webvtt.WebVTT()
    for start, end, text in cues(dialogue.of_call(call)):
        document.captions.append(webvtt.Caption(clock(start, fraction=True), clock(end, fraction=True), text))
    return str(document.content)


def json_export(call: Call) -> str:
    """The call, its recordings and their normalised transcripts."""
    return json.dumps(call_document(call), indent=2, ensure_ascii=False)


def call_document(call: Call) -> dict[str, Any]:
    """A call as JSON: the export, and the API's ``GET /api/calls/<CallSid>``."""
    recordings = []
    for recording in call.recordings:
        transcript = recording.transcript
        recordings.append(
            {
                "recording_sid": recording.recording_sid,
                "status": recording.status,
                "stage": recording.stage,
                "channels": recording.channels,
                "duration_s": recording.duration,
                "engine": recording.engine,
                "source": recording.source,
                "source_label": wording.source(recording.source),
                "error": recording.last_error,
                "audio": url_for("pages.recording_audio", recording_id=recording.id)
                if recording.status == RecordingStatus.COMPLETED
                else None,
                "transcript": None
                if transcript is None
                else {
                    "status": transcript.status,
                    "text": transcript.text,
                    "language": transcript.language_code,
                    "model": transcript.speech_model_used,
                    "confidence": transcript.confidence,
                    "words": transcript.words or [],
                    "utterances": transcript.utterances or [],
                },
                "dialogue": [asdict(turn) for turn in dialogue.of_recording(recording)],
            }
        )
    return {
        "call_sid": call.call_sid,
        "direction": call.direction,
        "direction_label": wording.call_kind(call.direction, [r.source for r in call.recordings]),
        "from": call.from_number,
        "to": call.to_number,
        "title": call.title,
        "uploaded_by": call.uploaded_by,
        "status": call.status,
        "started_at": (call.started_at or call.created_at).isoformat(),
        "duration_s": call.duration,
        "speakers": dialogue.speakers(call),
        "recordings": recordings,
        "deletion": None
        if call.deleting_at is None
        else {
            "requested_at": call.deleting_at.isoformat(),
            "requested_by": call.deleting_by,
            "error": call.deletion_error,
        },
    }


FORMATS = {
    "txt": (text_export, "text/plain"),
    "srt": (srt_export, "application/x-subrip"),
    "vtt": (vtt_export, "text/vtt"),
    "json": (json_export, "application/json"),
}


@bp.get("/calls/<call_sid>/transcript.<fmt>")
@requires(Permission.READ)
def transcript(call_sid: str, fmt: str) -> Response:
    if fmt not in FORMATS:
        abort(404, "Exports are .txt, .srt, .vtt and .json.")
    call = find_call(call_sid)
    build, mimetype = FORMATS[fmt]
    filename = f"{call.call_sid}-{(call.started_at or call.created_at):%Y-%m-%d}.{fmt}"
    return Response(
        build(call),
        mimetype=mimetype,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "private, no-store",
        },
    )


# -- the calls list as CSV ----------------------------------------------------

CSV_COLUMNS = (
    "call_sid",
    "started_at",
    "direction",
    "from",
    "to",
    "status",
    "duration_s",
    "transcript_status",
    "speakers",
    "text",
)
# A spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_MAX_ROWS = 1_000_000


def spreadsheet_safe(value: object) -> str:
    """A cell as text, with a leading ' where a spreadsheet would take it for a formula."""
    cell = "" if value is None else str(value)
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def csv_row(call: Call) -> list[str]:
    transcript = call.transcript
    status = listing.transcript_state(call.recordings)[1]
    started = (call.started_at or call.created_at).astimezone(UTC).isoformat().replace("+00:00", "Z")
    cells = [
        call.call_sid,
        started,
        call.direction,
        call.from_number,
        call.to_number,
        call.status,
        call.duration,
        status,
        "; ".join(dict.fromkeys(dialogue.speakers(call).values())),
        transcript.text if transcript is not None and transcript.text else "",
    ]
    return [spreadsheet_safe(cell) for cell in cells]


@bp.get("/calls.csv")
@requires(Permission.READ)
def calls_csv() -> Response:
    """The calls list as CSV, with its filters and search: streamed, a batch of calls at a time."""
    try:
        filters, _ = listing.read_filters(request.args, strict=True)
        limit = listing.read_limit(request.args.get("limit"), strict=True, high=CSV_MAX_ROWS)[0]
    except listing.BadFilter as bad:
        abort(400, str(bad))
    limit = limit if request.args.get("limit", "").strip() else None  # none given: every call

    def rows() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)

        def flush() -> str:
            text = buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            return text

        writer.writerow(CSV_COLUMNS)
        yield flush()
        for batch in listing.every_call(filters, limit=limit):
            for call in batch:
                writer.writerow(csv_row(call))
            yield flush()
        db.session.rollback()

    filename = f"calls-{utcnow():%Y-%m-%d}.csv"
    return Response(
        stream_with_context(rows()),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "private, no-store",
        },
    )
