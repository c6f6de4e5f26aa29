"""Calls, recordings and transcripts, keyed by the providers' own ids.

Each row has one status column per life cycle; the statuses and the moves
they may make are in :mod:`app.states`. :func:`move_forward` is the one
conditional UPDATE that keeps a status from moving backwards.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import (
    JSON,
    ColumnElement,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    case,
    insert,
    literal,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute, Mapped, mapped_column, relationship

from .states import RANKS, EventKind, TranscriptStatus


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


class Call(db.Model):
    __tablename__ = "calls"
    # The calls list pages newest first on (created_at, id), with no OFFSET.
    __table_args__ = (Index("ix_calls_created_at_id", "created_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    call_sid: Mapped[str] = mapped_column(String(34), unique=True)
    account_sid: Mapped[str | None] = mapped_column(String(34))
    direction: Mapped[str | None] = mapped_column(String(32))
    # Caller ids may be "Anonymous", "client:alice" or a SIP URI: free text.
    from_number: Mapped[str | None] = mapped_column(String(255), index=True)
    to_number: Mapped[str | None] = mapped_column(String(255), index=True)
    status: Mapped[str | None] = mapped_column(String(16))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    duration: Mapped[int | None] = mapped_column(Integer)
    # When we last asked Twilio for this call's recordings because no
    # recording callback had come; NULL until then.
    recordings_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Audio a person uploaded (flask transcribe, /upload) has a file name and an uploader.
    title: Mapped[str | None] = mapped_column(String(255))
    uploaded_by: Mapped[str | None] = mapped_column(String(64))  # a username
    # Asked to be deleted (app.deletion): by whom, when, and why the last step failed, if it did.
    deleting_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    deleting_by: Mapped[str | None] = mapped_column(String(64))
    deletion_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    # The list's live status asks for calls changed since a moment.
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow, index=True)

    recordings: Mapped[list[Recording]] = relationship(
        back_populates="call", order_by="Recording.id", lazy="selectin"
    )
    speaker_names: Mapped[list[SpeakerName]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, lazy="selectin"
    )
    # Read by the call page only: loaded when asked for.
    events: Mapped[list[CallEvent]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="(CallEvent.at, CallEvent.id)"
    )

    @property
    def names(self) -> dict[str, str]:
        """Speaker label -> the name a person gave it."""
        return {n.label: n.name for n in self.speaker_names}

    @property
    def transcript(self) -> Transcript | None:
        """The first finished transcript, else the first one in progress."""
        transcripts = [r.transcript for r in self.recordings if r.transcript]
        done = [t for t in transcripts if t.status == TranscriptStatus.COMPLETED]
        return (done or transcripts or [None])[0]


class SpeakerName(db.Model):
    """A person's name for a speaker or a channel of one call ("Speaker A" -> "Dana")."""

    __tablename__ = "speaker_names"
    __table_args__ = (UniqueConstraint("call_id", "label"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    # The transcript's own label: a diarized speaker ("A") or a channel ("1").
    label: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(80))


class CallEvent(db.Model):
    """One real move of a call's status, or of one of its recordings' status or stage: its history.

    Written by :func:`record_event` in the transaction of the move, and only
    when the conditional UPDATE moved a row, so that a duplicate or late
    callback leaves no trace here.
    """

    __tablename__ = "call_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    recording_id: Mapped[int | None] = mapped_column(ForeignKey("recordings.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # app.states.EventKind
    status: Mapped[str] = mapped_column(String(16))  # the CallStatus, RecordingStatus or Stage moved to
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


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
    # Our own copy of the audio (an upload's file): its key in app.media's store, and its type.
    media_key: Mapped[str | None] = mapped_column(String(255))
    media_type: Mapped[str | None] = mapped_column(String(64))
    # When it was deleted at Twilio once transcribed (DELETE_TWILIO_RECORDING_AFTER).
    twilio_deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # What the uploader asked the engine for; None: the settings' defaults.
    language: Mapped[str | None] = mapped_column(String(16))
    speakers: Mapped[int | None] = mapped_column(Integer)

    # Pipeline state. NULL for recordings that will never be transcribed
    # (absent, failed, still in progress).
    stage: Mapped[str | None] = mapped_column(String(16), index=True)
    # The transcription engine that took the audio (app.clients.ENGINES):
    # set on delivery, so that rows from two engines can live side by side.
    engine: Mapped[str | None] = mapped_column(String(16))
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
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow, index=True)

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


class DeletedCall(db.Model):
    """A deleted call's tombstone and audit entry: what was deleted, where, when, and at whose word.

    A late or retried Twilio callback for its CallSid finds this and is
    ignored, so a deleted call never comes back, nor is paid for again.
    """

    __tablename__ = "deleted_calls"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_sid: Mapped[str] = mapped_column(String(34), unique=True)
    direction: Mapped[str | None] = mapped_column(String(32))
    # Where each copy was deleted: Twilio's recordings, the engine's transcripts, our files.
    recording_sids: Mapped[list[str]] = mapped_column(JSON)
    transcript_ids: Mapped[list[str]] = mapped_column(JSON)
    media_keys: Mapped[list[str]] = mapped_column(JSON)
    requested_by: Mapped[str | None] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class DeletedRecording(db.Model):
    """A deleted call's RecordingSid: its late callbacks are ignored too."""

    __tablename__ = "deleted_recordings"

    recording_sid: Mapped[str] = mapped_column(String(34), primary_key=True)
    call_sid: Mapped[str] = mapped_column(String(34))


class User(db.Model):
    """A dashboard user. Only a password hash is kept, never the password."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    # admin, member or viewer (app.access.Role).
    role: Mapped[str] = mapped_column(String(16), default="member")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    tokens: Mapped[list[ApiToken]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True, order_by="ApiToken.id"
    )


class ApiToken(db.Model):
    """A script's bearer token: only its SHA-256 is kept; limited to its scopes and its user's role."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # Space-separated scopes (app.access.Scope).
    scopes: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Written at most once a minute, not on every request.
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship(back_populates="tokens")


class SessionGeneration(db.Model):
    """A user's session generation: bumping it ends every session opened before, server-side.

    Keyed by user name, so that the environment's admin, who has no row in
    ``users``, has one too.
    """

    __tablename__ = "session_generations"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, default=0)


class IdempotencyKey(db.Model):
    """A client's Idempotency-Key, scoped to its user, with the request it came with and its answer."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("username", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    # SHA-256 of the request (method, path and what it asks for).
    fingerprint: Mapped[str] = mapped_column(String(64))
    # NULL while the first request runs; then its answer.
    status: Mapped[int | None] = mapped_column(Integer)
    answer: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class DialAttempt(db.Model):
    """Who asked to call whom, when, and what came of it: written before Twilio is called."""

    __tablename__ = "dial_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Unique per attempt (a double submit is stopped by IdempotencyKey).
    request_key: Mapped[str] = mapped_column(String(64), unique=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    # "session", or "token:<id>" for a script's API token.
    auth_method: Mapped[str | None] = mapped_column(String(32))
    client_address: Mapped[str | None] = mapped_column(String(64))
    # As asked for: a refused one may be no number at all.
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


def dialect_name() -> str:
    """The kind of database the session talks to: "sqlite" or "postgresql"."""
    return db.session.get_bind().dialect.name


def dialect_insert(table: Table, dialect: str | None = None) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that can say ON CONFLICT, for ``dialect`` (default: the session's database)."""
    module = postgresql if (dialect or dialect_name()) == "postgresql" else sqlite
    return module.insert(table)


def insert_ignore(model: type[Base], values: dict[str, Any], key: str) -> None:
    """INSERT a row unless one with the same ``key`` exists, atomically.

    Two webhooks for a new CallSid may arrive at once; with ON CONFLICT DO
    NOTHING neither fails, and both go on to update the one row.
    """
    statement = dialect_insert(model.__table__).values(**values).on_conflict_do_nothing(index_elements=[key])
    db.session.execute(statement)


def rank(column: Any, kind: type[StrEnum]) -> ColumnElement[int]:
    """SQL: the rank of the status in ``column`` among ``kind``'s (-1 for none known)."""
    return case(dict(RANKS[kind]), value=column, else_=-1)


def rank_below(column: Any, status: StrEnum) -> ColumnElement[bool]:
    """SQL condition: ``column`` is unset or ranks below ``status``."""
    return or_(column.is_(None), rank(column, type(status)) < RANKS[type(status)][status])


def move_forward(
    column: InstrumentedAttribute[Any], status: StrEnum, *where: ColumnElement[bool], **values: Any
) -> int:
    """Set ``column`` to ``status`` (and ``values``) on the rows ``where`` it ranks below it.

    The one way a status changes: a late or repeated callback finds the
    row already further on and changes nothing. Returns how many rows moved.
    """
    model = column.class_
    statement = update(model).where(*where, rank_below(column, status)).values({column.key: status, **values})
    return db.session.execute(statement).rowcount  # type: ignore[attr-defined, no-any-return]


def record_event(kind: EventKind, status: StrEnum, *where: ColumnElement[bool]) -> None:
    """Add to the history of the call, or of the recording, that ``where`` picks: one INSERT ... SELECT.

    ``where`` is on :class:`Recording` for the recording kinds, on :class:`Call`
    for a call's status. Called right after a move, in its transaction.
    """
    if kind == EventKind.CALL:
        source = select(Call.id, null(), literal(str(kind)), literal(str(status)))
    else:
        source = select(Recording.call_id, Recording.id, literal(str(kind)), literal(str(status)))
    db.session.execute(
        insert(CallEvent).from_select(["call_id", "recording_id", "kind", "status"], source.where(*where))
    )
