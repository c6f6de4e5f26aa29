"""Every status the service keeps, with the only moves each may make.

* A call's status is Twilio's CallStatus, and only ever moves forward
  (:data:`CALL_STATUS_RANK`), whatever order the callbacks arrive in.
* A recording's status is Twilio's RecordingStatus, forward only too.
* A recording's stage is our pipeline: :data:`STAGE_TRANSITIONS`.
* A transcript's status is the engine's, forward only.

The values are the strings stored in the database and shown on the page;
a ``StrEnum`` member compares equal to its string.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar

S = TypeVar("S", bound=StrEnum)


def ranked(*steps: list[S]) -> Mapping[str, int]:
    """A rank table from the steps in order; the statuses of one step share its rank."""
    return {status: rank for rank, step in enumerate(steps) for status in step}


class CallStatus(StrEnum):
    QUEUED = "queued"
    INITIATED = "initiated"
    RINGING = "ringing"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    BUSY = "busy"
    FAILED = "failed"
    NO_ANSWER = "no-answer"
    CANCELED = "canceled"


# Several final statuses share the top rank: once a call has ended, a late
# "ringing" must not bring it back to life.
CALL_STATUS_RANK = ranked(
    [CallStatus.QUEUED],
    [CallStatus.INITIATED],
    [CallStatus.RINGING],
    [CallStatus.IN_PROGRESS],
    [CallStatus.COMPLETED, CallStatus.BUSY, CallStatus.FAILED, CallStatus.NO_ANSWER, CallStatus.CANCELED],
)
# Calls that ended without anyone to record.
UNCONNECTED_CALL_STATUSES = frozenset(
    {CallStatus.BUSY, CallStatus.FAILED, CallStatus.NO_ANSWER, CallStatus.CANCELED}
)


class RecordingStatus(StrEnum):
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    ABSENT = "absent"  # too short or silent; Twilio deleted it
    FAILED = "failed"


RECORDING_STATUS_RANK = ranked(
    [RecordingStatus.IN_PROGRESS],
    [RecordingStatus.COMPLETED, RecordingStatus.ABSENT, RecordingStatus.FAILED],
)
FINAL_RECORDING_STATUSES = frozenset(s for s, rank in RECORDING_STATUS_RANK.items() if rank == 1)


class Stage(StrEnum):
    """Where a completed recording is on its way to a transcript."""

    PENDING = "pending"  # stored; its audio still has to reach the engine
    DELIVERED = "delivered"  # the engine can read the audio (upload_url)
    SUBMITTED = "submitted"  # the engine has a transcript job for it
    TRANSCRIBED = "transcribed"  # the transcript is stored: done
    FAILED = "failed"  # gave up; last_error says why; a person may retry


# The only moves the pipeline may make. FAILED goes back only through a
# person's retry (to the step that failed); TRANSCRIBED is final.
STAGE_TRANSITIONS: Mapping[Stage, frozenset[Stage]] = {
    Stage.PENDING: frozenset({Stage.DELIVERED, Stage.FAILED}),
    Stage.DELIVERED: frozenset({Stage.SUBMITTED, Stage.FAILED}),
    Stage.SUBMITTED: frozenset({Stage.TRANSCRIBED, Stage.FAILED}),
    Stage.FAILED: frozenset({Stage.PENDING, Stage.DELIVERED, Stage.SUBMITTED}),
    Stage.TRANSCRIBED: frozenset(),
}
ACTIVE_STAGES = (Stage.PENDING, Stage.DELIVERED, Stage.SUBMITTED)


def stages_leading_to(stage: Stage) -> tuple[Stage, ...]:
    return tuple(s for s, targets in STAGE_TRANSITIONS.items() if stage in targets)


class TranscriptStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    ERROR = "error"


TRANSCRIPT_STATUS_RANK = ranked(
    [TranscriptStatus.QUEUED],
    [TranscriptStatus.PROCESSING],
    [TranscriptStatus.COMPLETED, TranscriptStatus.ERROR],
)
FINAL_TRANSCRIPT_STATUSES = frozenset(s for s, rank in TRANSCRIPT_STATUS_RANK.items() if rank == 2)

# The rank table of each status that only moves forward.
RANKS: Mapping[type[StrEnum], Mapping[str, int]] = {
    CallStatus: CALL_STATUS_RANK,
    RecordingStatus: RECORDING_STATUS_RANK,
    TranscriptStatus: TRANSCRIPT_STATUS_RANK,
}


class EventKind(StrEnum):
    """What moved, for a call's history (``call_events.kind``); the status it moved to is beside it."""

    CALL = "call"  # the call's status (CallStatus)
    RECORDING = "recording"  # a recording's status (RecordingStatus)
    STAGE = "stage"  # a recording's stage in our pipeline (Stage)
    RETRY = "retry"  # a person's retry took a failed recording back to a stage


class DialOutcome(StrEnum):
    """What came of a /dial attempt (its audit row)."""

    PENDING = "pending"  # written before Twilio hears of it
    PLACED = "placed"
    REFUSED = "refused"  # by policy or a limit
    FAILED = "failed"  # Twilio refused, or an error on our side


# Attempts that count towards the /dial limits.
COUNTED_DIAL_OUTCOMES = (DialOutcome.PENDING, DialOutcome.PLACED)
