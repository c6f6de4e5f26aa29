"""Calls, recordings and transcripts, keyed by the providers' own ids.

Each row has one status column per life cycle, and every allowed move is
written down here, in one place:

* ``Call.status`` follows Twilio's CallStatus and only ever moves forward
  (:data:`CALL_STATUS_RANK`), whatever order the callbacks arrive in.
* ``Recording.status`` follows Twilio's RecordingStatus, forward only too.
* ``Recording.stage`` is our pipeline: :data:`STAGE_TRANSITIONS`.
* ``Transcript.status`` follows AssemblyAI's status, forward only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


# Twilio's call statuses by progress. Several final ones share the top rank:
# once a call has ended, a late "ringing" must not bring it back to life.
CALL_STATUS_RANK: dict[str, int] = {
    "queued": 0,
    "initiated": 1,
    "ringing": 2,
    "in-progress": 3,
    "completed": 4,
    "busy": 4,
    "failed": 4,
    "no-answer": 4,
    "canceled": 4,
}
FINAL_CALL_STATUSES = frozenset(s for s, rank in CALL_STATUS_RANK.items() if rank == 4)

RECORDING_STATUS_RANK: dict[str, int] = {
    "in-progress": 0,
    "completed": 1,
    "absent": 1,
    "failed": 1,
}

TRANSCRIPT_STATUS_RANK: dict[str, int] = {
    "queued": 0,
    "processing": 1,
    "completed": 2,
    "error": 2,
}


class Stage:
    """Where a completed recording is on its way to a transcript."""

    PENDING = "pending"  # stored; its audio still has to reach AssemblyAI
    DELIVERED = "delivered"  # AssemblyAI can read the audio (upload_url)
    SUBMITTED = "submitted"  # AssemblyAI has a transcript job for it
    TRANSCRIBED = "transcribed"  # the transcript is stored: done
    FAILED = "failed"  # gave up; last_error says why; a person may retry


# The only moves the pipeline may make. FAILED goes back only through a
# person's retry (to the step that failed); TRANSCRIBED is final.
STAGE_TRANSITIONS: dict[str, frozenset[str]] = {
    Stage.PENDING: frozenset({Stage.DELIVERED, Stage.FAILED}),
    Stage.DELIVERED: frozenset({Stage.SUBMITTED, Stage.FAILED}),
    Stage.SUBMITTED: frozenset({Stage.TRANSCRIBED, Stage.FAILED}),
    Stage.FAILED: frozenset({Stage.PENDING, Stage.DELIVERED, Stage.SUBMITTED}),
    Stage.TRANSCRIBED: frozenset(),
}
ACTIVE_STAGES = (Stage.PENDING, Stage.DELIVERED, Stage.SUBMITTED)


def stages_leading_to(stage: str) -> tuple[str, ...]:
    return tuple(s for s, targets in STAGE_TRANSITIONS.items() if stage in targets)


class Call(db.Model):
    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_sid: Mapped[str] = mapped_column(String(34), unique=True)
    account_sid: Mapped[str | None] = mapped_column(String(34))
    direction: Mapped[str | None] = mapped_column(String(32))
    # Caller ids may be "Anonymous", "client:alice" or a SIP URI: free text.
    from_number: Mapped[str | None] = mapped_column(String(255))
    to_number: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str | None] = mapped_column(String(16))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    duration: Mapped[int | None] = mapped_column(Integer)
    # When we last asked Twilio for this call's recordings because no
    # recording callback had come; NULL until then.
    recordings_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    recordings: Mapped[list[Recording]] = relationship(
        back_populates="call", order_by="Recording.id", lazy="selectin"
    )

    @property
    def transcript(self) -> Transcript | None:
        """The first finished transcript, else the first one in progress."""
        transcripts = [r.transcript for r in self.recordings if r.transcript]
        done = [t for t in transcripts if t.status == "completed"]
        return (done or transcripts or [None])[0]


class Recording(db.Model):
    __tablename__ = "recordings"

    id: Mapped[int] = mapped_column(primary_key=True)
    recording_sid: Mapped[str] = mapped_column(String(34), unique=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id"), index=True)
    account_sid: Mapped[str] = mapped_column(String(34))
    # NULL only for the instant between the row's insert and its first update.
    status: Mapped[str | None] = mapped_column(String(16))
    duration: Mapped[int | None] = mapped_column(Integer)
    channels: Mapped[int] = mapped_column(Integer, default=1)
    source: Mapped[str | None] = mapped_column(String(32))
    error_code: Mapped[str | None] = mapped_column(String(16))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    # Pipeline state. NULL for recordings that will never be transcribed
    # (absent, failed, still in progress).
    stage: Mapped[str | None] = mapped_column(String(16), index=True)
    stage_changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    upload_url: Mapped[str | None] = mapped_column(Text)
    # A worker holds a recording while it talks to a provider; a crashed
    # worker's claim simply runs out.
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claim_token: Mapped[str | None] = mapped_column(String(32))
    # Set before a submission is sent, so that after a crash or a timeout
    # we look for that submission instead of paying for a second one.
    submit_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    call: Mapped[Call] = relationship(back_populates="recordings")
    transcript: Mapped[Transcript | None] = relationship(back_populates="recording", lazy="selectin")


class Transcript(db.Model):
    __tablename__ = "transcripts"

    id: Mapped[int] = mapped_column(primary_key=True)
    transcript_id: Mapped[str] = mapped_column(String(64), unique=True)
    recording_id: Mapped[int] = mapped_column(ForeignKey("recordings.id"), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    text: Mapped[str | None] = mapped_column(Text)
    words: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    utterances: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    confidence: Mapped[float | None] = mapped_column(Float)
    audio_duration: Mapped[float | None] = mapped_column(Float)
    language_code: Mapped[str | None] = mapped_column(String(16))
    speech_model_used: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    recording: Mapped[Recording] = relationship(back_populates="transcript")


class User(db.Model):
    """A dashboard user. Only a password hash is kept, never the password."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    # SHA-256 of the user's API token for scripts; the token itself is shown once.
    api_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class DialAttempt(db.Model):
    """Who asked to call whom, when, and what came of it: written before Twilio is called."""

    __tablename__ = "dial_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The form's one-time key: a second submit of the same form dials nothing.
    request_key: Mapped[str] = mapped_column(String(64), unique=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    to_number: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))  # pending, placed, refused, failed
    reason: Mapped[str | None] = mapped_column(Text)
    call_sid: Mapped[str | None] = mapped_column(String(34))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class Attempt(db.Model):
    """One counted event for a rate limit (a failed login), shared by every process."""

    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


def insert_ignore(model: type[Base], values: dict[str, Any], key: str) -> None:
    """INSERT a row unless one with the same ``key`` exists, atomically.

    Two webhooks for a new CallSid may arrive at once; with ON CONFLICT DO
    NOTHING neither fails, and both go on to update the one row.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    statement = insert(model).values(**values).on_conflict_do_nothing(index_elements=[key])
    db.session.execute(statement)


def rank_below(column: Any, ranks: dict[str, int], status: str) -> Any:
    """SQL condition: ``column`` is unset or ranks below ``status`` (forward moves only)."""
    from sqlalchemy import case, or_

    return or_(column.is_(None), case(ranks, value=column, else_=-1) < ranks[status])
