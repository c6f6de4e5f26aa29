"""The calls, recordings, transcripts and speaker names of one benchmark run, as table rows.

Rows are made in batches by :func:`batch`, which needs only numbers (so that
worker processes can make batches while the main process inserts them), and
are the same for the same seed whichever store they go to.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from app.states import CallStatus, RecordingStatus, Stage, TranscriptStatus
from bench.dashboard.corpus import PHRASE, PHRASE_CALLS, RARE_CALLS, RARE_WORD, Corpus, check_shape
from tests.helpers import ACCOUNT_SID, TWILIO_NUMBER

# The newest call; the others go back a year from here, oldest first.
NEWEST = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SPAN = timedelta(days=365)
ENGINE = "assemblyai"
SPEECH_MODEL = "universal-3-pro"
FIRST_NAMES = ("Dana", "Sam", "Priya", "Luis", "Mei", "Tom", "Aisha", "Jonas", "Olga", "Kwame")
UNCONNECTED = (CallStatus.BUSY, CallStatus.NO_ANSWER, CallStatus.FAILED, CallStatus.CANCELED)


def planted(total: int) -> tuple[frozenset[int], frozenset[int]]:
    """The calls (by number) that carry the rare word, and those that carry the phrase: spread out."""
    rare = frozenset((2 * k + 1) * total // (2 * RARE_CALLS) for k in range(RARE_CALLS))
    phrase = frozenset(((2 * k + 1) * total // (2 * PHRASE_CALLS) + 1) % total for k in range(PHRASE_CALLS))
    return rare, phrase - rare


@dataclass
class Batch:
    calls: list[dict[str, Any]] = field(default_factory=list)
    recordings: list[dict[str, Any]] = field(default_factory=list)
    transcripts: list[dict[str, Any]] = field(default_factory=list)
    speaker_names: list[dict[str, Any]] = field(default_factory=list)
    # CallSids of transcribed calls, and of those with the rare word and the phrase.
    transcribed: list[str] = field(default_factory=list)
    rare: list[str] = field(default_factory=list)
    phrase: list[str] = field(default_factory=list)
    words: int = 0


def sid(prefix: str, rng: random.Random) -> str:
    return f"{prefix}{rng.getrandbits(128):032x}"


def phone(rng: random.Random) -> str:
    return f"+1{rng.choice((415, 628, 510, 212, 312))}555{rng.randrange(10_000):04d}"


_corpus: Corpus | None = None


def corpus(seed: int) -> Corpus:
    """One corpus per process (its vocabulary takes a moment to build)."""
    global _corpus
    if _corpus is None or _corpus.seed != seed:
        _corpus = Corpus(seed)
    return _corpus


def batch(seed: int, start: int, stop: int, total: int) -> Batch:
    """Rows for calls ``start`` to ``stop - 1`` of ``total``; row ids are the call's number + 1."""
    words = corpus(seed)
    rare, phrase = planted(total)
    out = Batch()
    for n in range(start, stop):
        rng = random.Random(f"{seed}-call-{n}")
        row_id = n + 1
        created = NEWEST - SPAN * (total - 1 - n) / max(total, 1) - timedelta(seconds=rng.randrange(60))
        inbound = rng.random() < 0.7
        customer = phone(rng)
        must_transcribe = n in rare or n in phrase
        status = CallStatus.COMPLETED
        if not must_transcribe and rng.random() < 0.06:
            status = rng.choice(UNCONNECTED)
        call_sid = sid("CA", rng)
        call = {
            "id": row_id,
            "call_sid": call_sid,
            "account_sid": ACCOUNT_SID,
            "direction": "inbound" if inbound else "outbound-api",
            "from_number": customer if inbound else TWILIO_NUMBER,
            "to_number": TWILIO_NUMBER if inbound else customer,
            "status": status,
            "started_at": created + timedelta(seconds=1),
            "duration": 0,
            "recordings_checked_at": None,
            "created_at": created,
            "updated_at": created,
        }
        out.calls.append(call)
        if status != CallStatus.COMPLETED:
            continue

        two_channel = (not inbound) or rng.random() < 0.4
        channels = 2 if two_channel else 1
        source = ("DialVerb" if inbound else "OutboundAPI") if two_channel else "RecordVerb"
        recorded = created + timedelta(seconds=3)
        recording = {
            "id": row_id,
            "recording_sid": sid("RE", rng),
            "call_id": row_id,
            "account_sid": ACCOUNT_SID,
            "status": RecordingStatus.COMPLETED,
            "duration": None,
            "channels": channels,
            "source": source,
            "error_code": None,
            "started_at": recorded,
            "stage": Stage.TRANSCRIBED,
            "engine": ENGINE,
            "stage_changed_at": recorded,
            "upload_url": None,
            "claimed_until": None,
            "claim_token": None,
            "submit_started_at": None,
            "attempts": 0,
            "next_attempt_at": None,
            "last_error": None,
            "created_at": recorded,
            "updated_at": recorded,
        }
        out.recordings.append(recording)
        outcome = rng.random()
        if not must_transcribe and outcome < 0.02:  # too short or silent: Twilio kept nothing
            recording.update(status=RecordingStatus.ABSENT, stage=None, error_code=None)
            call["duration"] = rng.randint(1, 3)
            continue
        if not must_transcribe and outcome < 0.03:
            recording.update(
                stage=Stage.FAILED,
                attempts=5,
                last_error="AssemblyAI could not transcribe it: the audio has no speech",
            )
            call["duration"] = rng.randint(5, 30)
            recording["duration"] = call["duration"] - 2
            continue

        plant = [RARE_WORD] if n in rare else PHRASE.split() if n in phrase else []
        generated = words.transcript(n, channels, plant)
        if n == start:
            check_shape(generated)
        seconds = generated.duration_ms // 1000 + 1
        recording["duration"] = seconds
        call["duration"] = seconds + rng.randint(2, 12)
        done = recorded + timedelta(seconds=seconds + rng.randint(20, 90))
        recording.update(stage_changed_at=done, updated_at=done)
        transcript_id = f"{rng.getrandbits(128):032x}"
        out.transcripts.append(
            {
                "id": row_id,
                "transcript_id": "-".join(
                    (
                        transcript_id[:8],
                        transcript_id[8:12],
                        transcript_id[12:16],
                        transcript_id[16:20],
                        transcript_id[20:],
                    )
                ),
                "recording_id": row_id,
                "status": TranscriptStatus.COMPLETED,
                "text": generated.text,
                "words": generated.words_json,
                "utterances": generated.utterances_json,
                "confidence": generated.confidence,
                "audio_duration": generated.duration_ms / 1000,
                "language_code": "en_us",
                "speech_model_used": SPEECH_MODEL,
                "error": None,
                "created_at": recorded,
                "updated_at": done,
                "completed_at": done,
            }
        )
        out.words += generated.text.count(" ") + 1
        out.transcribed.append(call_sid)
        if n in rare:
            out.rare.append(call_sid)
        if n in phrase:
            out.phrase.append(call_sid)
        if rng.random() < 0.03:
            for label in generated.labels[: rng.randint(1, len(generated.labels))]:
                out.speaker_names.append({"call_id": row_id, "label": label, "name": rng.choice(FIRST_NAMES)})
    return out
