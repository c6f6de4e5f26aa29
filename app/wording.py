"""People's words for Twilio's values: what the pages show, with the raw value kept for a tooltip.

Twilio says ``outbound-api``, ``DialVerb`` and ``RecordVerb``; the people
reading the dashboard say "dialled from here", "forwarded call" and
"voicemail". The JSON API keeps the raw values and adds these labels.
A call's history reads "ringing", "recording completed", "transcribed".
"""

from __future__ import annotations

from collections.abc import Iterable

from .states import CallStatus, EventKind, RecordingStatus, Stage

DIRECTIONS = {
    "inbound": "Inbound",
    "outbound-api": "Outbound (dialled from here)",
    "outbound-dial": "Outbound (forwarded leg)",
    "upload": "Uploaded file",
}
SOURCES = {
    "DialVerb": "Forwarded call",
    "RecordVerb": "Voicemail",
    "OutboundAPI": "Outbound (dialled from here)",
    "StartCallRecordingAPI": "Recording started by the API",
    "Conference": "Conference",
    "Trunking": "SIP trunk",
    "upload": "Uploaded file",
}


ENGINES = {"assemblyai": "AssemblyAI"}

# A call's history, one line a move: (what moved, the status it moved to) -> words.
EVENTS: dict[tuple[str, str], str] = {
    (EventKind.CALL, CallStatus.QUEUED): "queued",
    (EventKind.CALL, CallStatus.INITIATED): "dialling",
    (EventKind.CALL, CallStatus.RINGING): "ringing",
    (EventKind.CALL, CallStatus.IN_PROGRESS): "in progress",
    (EventKind.CALL, CallStatus.COMPLETED): "completed",
    (EventKind.CALL, CallStatus.BUSY): "busy",
    (EventKind.CALL, CallStatus.FAILED): "call failed",
    (EventKind.CALL, CallStatus.NO_ANSWER): "no answer",
    (EventKind.CALL, CallStatus.CANCELED): "cancelled",
    (EventKind.RECORDING, RecordingStatus.IN_PROGRESS): "recording started",
    (EventKind.RECORDING, RecordingStatus.COMPLETED): "recording completed",
    (EventKind.RECORDING, RecordingStatus.ABSENT): "no audio recorded",
    (EventKind.RECORDING, RecordingStatus.FAILED): "recording failed",
    (EventKind.STAGE, Stage.DELIVERED): "audio handed over for transcription",
    (EventKind.STAGE, Stage.SUBMITTED): "sent for transcription",
    (EventKind.STAGE, Stage.TRANSCRIBED): "transcribed",
    (EventKind.STAGE, Stage.FAILED): "transcription failed",
    (EventKind.RETRY, Stage.PENDING): "tried again",
    (EventKind.RETRY, Stage.DELIVERED): "tried again",
    (EventKind.RETRY, Stage.SUBMITTED): "tried again",
}


def direction(raw: str | None) -> str:
    """A call's direction in words; an unknown value reads as itself."""
    if not raw:
        return "—"
    return DIRECTIONS.get(raw, raw)


def source(raw: str | None) -> str:
    """How a recording was made, in words."""
    if not raw:
        return "—"
    return SOURCES.get(raw, raw)


def engine(raw: str | None) -> str:
    """The transcription engine's name as its maker writes it."""
    if not raw:
        return "—"
    return ENGINES.get(raw, raw)


def event(kind: str, status: str) -> str:
    """One move in a call's history, in words; an unknown one reads as its kind and status."""
    return EVENTS.get((kind, status), f"{kind} {status}")


def call_kind(raw_direction: str | None, sources: Iterable[str | None]) -> str:
    """What a call was, for the list: a forwarded call or a voicemail says so; otherwise its direction."""
    for raw in sources:
        if raw in ("DialVerb", "RecordVerb"):
            return SOURCES[raw]
    return direction(raw_direction)
