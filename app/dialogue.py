"""A call's dialogue: who said what, and when, from its stored transcripts.

The one place that turns stored utterances into turns with a speaker's
name, for the call page and for every export.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import search
from .models import Call, Recording, SpeakerName, db
from .states import TranscriptStatus


@dataclass(frozen=True)
class Word:
    text: str
    start: int  # ms
    end: int
    confidence: float | None

    @property
    def low(self) -> bool:
        """The engine was unsure of this word."""
        return self.confidence is not None and self.confidence < LOW_CONFIDENCE


@dataclass(frozen=True)
class Turn:
    speaker: str
    start: int  # ms from the start of its recording
    end: int
    text: str
    words: tuple[Word, ...] = field(default=())


def label_of(turn: dict[str, Any], recording: Recording) -> str | None:
    """The transcript's own label for a turn's speaker: its channel ("1") or diarized speaker ("A")."""
    channel = str(turn.get("channel") or "")
    if channel and recording.channels == 2:
        return channel
    speaker = turn.get("speaker")
    return str(speaker)[:16] if speaker else None


# Twilio's direction of a call placed through our /dial (its callee is recorded, mono).
DIALLED_FROM_HERE = "outbound-api"


def default_name(label: str | None, recording: Recording) -> str:
    """How a speaker is called until a person names them: a party, where the call says which.

    A forwarded call's two channels are the caller and the person who
    answered (you). One voice on a mono recording is the caller who left a
    voicemail, or the person a /dial call reached. Otherwise the
    transcript's own letters ("Speaker A").
    """
    if recording.channels == 2 and label is not None and label.isdigit():
        if recording.source == "DialVerb":
            return {"1": "Caller", "2": "You"}.get(label, f"Channel {label}")
        return f"Channel {label}"
    if len(_labels(recording)) <= 1:
        if recording.call.direction == DIALLED_FROM_HERE:
            return "Person called"
        if recording.source == "RecordVerb":
            return "Caller"
    return f"Speaker {label}" if label is not None else "Speaker"


def _labels(recording: Recording) -> set[str]:
    """The speaker labels a recording's transcript uses."""
    transcript = recording.transcript
    turns = (transcript.utterances or []) if transcript else []
    return {label for turn in turns if isinstance(turn, dict) and (label := label_of(turn, recording))}


def speaker_name(turn: dict[str, Any], recording: Recording) -> str:
    """The name a person gave the turn's speaker, or the default one."""
    label = label_of(turn, recording)
    return recording.call.names.get(label or "") or default_name(label, recording)


def speakers(call: Call) -> dict[str, str]:
    """Every label the call's transcripts use, with the name it shows under (named or default)."""
    found: dict[str, str] = {}
    for recording in call.recordings:
        transcript = recording.transcript
        for turn in (transcript.utterances or []) if transcript else []:
            label = label_of(turn, recording) if isinstance(turn, dict) else None
            if label is not None and label not in found:
                found[label] = call.names.get(label) or default_name(label, recording)
    return found


class NamingError(ValueError):
    """A speaker name that cannot be stored; ``str()`` says why."""


def rename(call: Call, names: dict[str, str]) -> dict[str, str]:
    """Give speakers of ``call`` names (an empty name goes back to the default); returns every speaker."""
    known = speakers(call)
    for label, name in names.items():
        if label not in known:
            raise NamingError(
                f"This call has no speaker {label!r}; it has {', '.join(sorted(known)) or 'none'}."
            )
        name = name.strip()
        if len(name) > 80 or not name.isprintable():
            raise NamingError("A name is at most 80 printable characters.")
        existing = next((n for n in call.speaker_names if n.label == label), None)
        if not name:
            if existing is not None:
                call.speaker_names.remove(existing)
        elif existing is not None:
            existing.name = name
        else:
            call.speaker_names.append(SpeakerName(label=label, name=name))
    db.session.flush()
    search.reindex(db.session.connection(), call.id)  # found by the new name at once
    db.session.commit()
    return speakers(call)


# Below this a word is marked as one the engine was unsure of.
LOW_CONFIDENCE = 0.5


def _words(items: Any) -> tuple[Word, ...]:
    if not isinstance(items, list):
        return ()
    return tuple(
        Word(str(w.get("text") or ""), int(w.get("start") or 0), int(w.get("end") or 0), w.get("confidence"))
        for w in items
        if isinstance(w, dict)
    )


def _words_of(turn: dict[str, Any], transcript_words: Any) -> tuple[Word, ...]:
    """A turn's own words; else the transcript's words within its time (and on its channel)."""
    own = _words(turn.get("words"))
    if own or not isinstance(transcript_words, list):
        return own
    start, end, channel = int(turn.get("start") or 0), int(turn.get("end") or 0), turn.get("channel")
    return _words(
        [
            w
            for w in transcript_words
            if isinstance(w, dict)
            and start <= int(w.get("start") or 0)
            and int(w.get("end") or 0) <= end
            and (channel is None or w.get("channel") is None or str(w.get("channel")) == str(channel))
        ]
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
                _words_of(u, transcript.words),
            )
            for u in transcript.utterances
            if isinstance(u, dict)
        ]
    words = _words(transcript.words)
    if not transcript.text:
        return []
    end = words[-1].end if words else int((transcript.audio_duration or 0) * 1000)
    return [Turn(default_name(None, recording), words[0].start if words else 0, end, transcript.text, words)]


def of_call(call: Call) -> list[Turn]:
    """Every recording's turns, in the order the recordings were made."""
    return [turn for recording in call.recordings for turn in of_recording(recording)]
