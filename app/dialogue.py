"""A call's dialogue: who said what, and when, from its stored transcripts.

The one place that turns stored utterances into turns with a speaker's
name, for the call page and for every export.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .models import Call, Recording
from .states import TranscriptStatus


@dataclass(frozen=True)
class Word:
    text: str
    start: int  # ms
    end: int
    confidence: float | None


@dataclass(frozen=True)
class Turn:
    speaker: str
    start: int  # ms from the start of its recording
    end: int
    text: str
    words: tuple[Word, ...] = field(default=())


def speaker_name(turn: dict[str, Any], recording: Recording) -> str:
    """How a turn's speaker is called: a party for two-channel calls, else the diarized speaker."""
    channel = str(turn.get("channel") or "")
    if channel and recording.channels == 2:
        if recording.source == "DialVerb":
            return {"1": "Caller", "2": "Answered by"}.get(channel, f"Channel {channel}")
        return f"Channel {channel}"
    label = turn.get("speaker")
    return f"Speaker {label}" if label else "Speaker"


def _words(items: Any) -> tuple[Word, ...]:
    if not isinstance(items, list):
        return ()
    return tuple(
        Word(str(w.get("text") or ""), int(w.get("start") or 0), int(w.get("end") or 0), w.get("confidence"))
        for w in items
        if isinstance(w, dict)
    )


def of_recording(recording: Recording) -> list[Turn]:
    """The turns of one recording's finished transcript; one turn of its whole text without diarization."""
    transcript = recording.transcript
    if transcript is None or transcript.status != TranscriptStatus.COMPLETED:
        return []
    if transcript.utterances:
        return [
            Turn(
                speaker_name(u, recording),
                int(u.get("start") or 0),
                int(u.get("end") or 0),
                str(u.get("text") or ""),
                _words(u.get("words")),
            )
            for u in transcript.utterances
            if isinstance(u, dict)
        ]
    words = _words(transcript.words)
    if not transcript.text:
        return []
    end = words[-1].end if words else int((transcript.audio_duration or 0) * 1000)
    return [Turn("Speaker", words[0].start if words else 0, end, transcript.text, words)]


def of_call(call: Call) -> list[Turn]:
    """Every recording's turns, in the order the recordings were made."""
    return [turn for recording in call.recordings for turn in of_recording(recording)]
