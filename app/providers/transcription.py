"""The transcription-engine seam: what every engine offers, in the project's own terms.

The pipeline speaks only in these values (two channels, this language,
call me back here) and never writes a provider's field names. Each engine
adapter turns them into its own wire format, and turns its results back
into :class:`TranscriptResult`.

An engine's life cycle for one recording:

1. ``prepare``: make the audio readable by the engine (upload a stream, or
   hand over a URL); returns the engine's reference to that audio.
2. ``submit``: start a transcript with :class:`TranscriptionOptions`.
3. Completion: the engine calls back (its adapter reads the notice for the
   webhook route, e.g. ``assemblyai.webhook_transcript_id``), or the
   reconciler polls with ``fetch`` until the result is final.
4. ``fetch``: the result, normalised.
5. ``delete``: remove the engine's copy of the text and audio.

``find_submission`` finds a submission whose answer was lost, so it is not
paid for twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ..states import TranscriptStatus


@dataclass(frozen=True)
class AudioStream:
    """Audio to upload, as chunks read once (a download streamed straight on)."""

    chunks: Iterable[bytes]


@dataclass(frozen=True)
class AudioURL:
    """Audio the engine can fetch itself from this URL."""

    url: str


Audio = AudioStream | AudioURL


@dataclass(frozen=True)
class Callback:
    """Where the engine reports a finished transcript, and the header that proves it is the engine."""

    url: str
    header_name: str
    secret: str


@dataclass(frozen=True)
class TranscriptionOptions:
    """What to ask of an engine, in domain terms."""

    # Two channels hold one party each; on one channel, speakers are told apart.
    channels: int
    # A language code such as en_us or de; "auto" to detect; None for the engine's default.
    language: str | None
    # Models in order of preference.
    models: tuple[str, ...]
    callback: Callback | None = None
    # How many people speak, when known (it helps telling them apart on one channel).
    speakers: int | None = None
    # Kinds of personal data to take out of the text, each replaced by its kind; () for none.
    redact: tuple[str, ...] = ()

    @property
    def separate_speakers(self) -> bool:
        return self.channels != 2


@dataclass(frozen=True)
class Submission:
    """A transcript job the engine accepted."""

    id: str
    status: TranscriptStatus


@dataclass(frozen=True)
class Word:
    text: str
    start: int  # ms from the start of the audio
    end: int  # ms
    confidence: float | None
    speaker: str | None
    channel: str | None


@dataclass(frozen=True)
class Utterance:
    """One turn of the dialogue: a speaker's (or a channel's) words in a row."""

    text: str
    start: int
    end: int
    confidence: float | None
    speaker: str | None
    channel: str | None
    words: tuple[Word, ...]


@dataclass(frozen=True)
class TranscriptResult:
    """A transcript as the project keeps it, whichever engine made it."""

    id: str
    status: TranscriptStatus
    text: str | None = None
    words: tuple[Word, ...] = ()
    utterances: tuple[Utterance, ...] = ()
    confidence: float | None = None
    language: str | None = None
    duration: float | None = None  # seconds of audio
    model: str | None = None
    error: str | None = None


class TranscriptionEngine(Protocol):
    """What the pipeline needs of an engine. Every method raises ProviderError."""

    name: str

    def prepare(self, audio: Audio) -> str: ...

    def submit(self, audio_ref: str, options: TranscriptionOptions) -> Submission: ...

    def find_submission(self, audio_ref: str, *, since: datetime) -> Submission | None: ...

    def fetch(self, transcript_id: str) -> TranscriptResult: ...

    def delete(self, transcript_id: str) -> None: ...
