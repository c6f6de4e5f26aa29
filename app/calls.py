"""The Twilio side of the life cycle: what Twilio reports of calls and recordings, stored.

Each function takes typed values (the webhook layer reads Twilio's forms)
and owns its transaction. Statuses only move forward, whatever order
Twilio's callbacks arrive in, and a duplicate callback changes nothing,
because every write is a conditional UPDATE on the provider's id.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import CompoundSelect, Insert, Select, bindparam, insert, or_, select, update

from . import clients, deletion, jobs, search
from .models import (
    Call,
    CallEvent,
    Recording,
    db,
    dialect_insert,
    dialect_name,
    insert_ignore,
    move_forward,
    rank,
    record_event,
    utcnow,
)
from .providers import ProviderError
from .providers.twilio import PlacedCall
from .states import (
    CALL_STATUS_RANK,
    FINAL_RECORDING_STATUSES,
    CallStatus,
    EventKind,
    RecordingStatus,
    Stage,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CallUpdate:
    """One call status callback."""

    call_sid: str
    account_sid: str
    status: CallStatus
    direction: str | None
    from_number: str | None
    to_number: str | None
    timestamp: datetime | None
    duration: int | None


@dataclass(frozen=True)
class RecordingUpdate:
    """One recording status callback (or what Twilio's API lists for a lost one)."""

    recording_sid: str
    call_sid: str
    account_sid: str
    status: RecordingStatus
    duration: int | None
    channels: int
    source: str | None
    error_code: str | None
    started_at: datetime | None


def _ensure_call(call_sid: str, account_sid: str | None) -> None:
    insert_ignore(Call, {"call_sid": call_sid, "account_sid": account_sid}, "call_sid")


def _set_numbers(call_sid: str, from_number: str | None, to_number: str | None) -> None:
    """Store the call's numbers; when they change, so does what search finds it by."""
    numbers = {"from_number": from_number, "to_number": to_number}
    numbers = {k: v for k, v in numbers.items() if v is not None}
    if not numbers:
        return
    changed = db.session.execute(
        update(Call)
        .where(
            Call.call_sid == call_sid,
            or_(*(getattr(Call, k).is_distinct_from(v) for k, v in numbers.items())),
        )
        .values(**numbers)
        .returning(Call.id)
    ).scalar()
    if changed is not None:
        search.reindex(db.session.connection(), changed)


def call_status_changed(change: CallUpdate) -> None:
    """Twilio's call status callback: keep the call's row up to date (a deleted call's: nothing)."""
    if deletion.gone(change.call_sid):
        db.session.rollback()
        log.info("call %s: deleted, %s callback ignored", change.call_sid, change.status)
        return
    _ensure_call(change.call_sid, change.account_sid)
    details = {"direction": change.direction, "duration": change.duration}
    details = {k: v for k, v in details.items() if v is not None}
    if details:
        db.session.execute(update(Call).where(Call.call_sid == change.call_sid).values(**details))
    _set_numbers(change.call_sid, change.from_number, change.to_number)
    started = None
    if change.timestamp is not None and change.status == CallStatus.IN_PROGRESS:
        started = change.timestamp
    elif (
        change.timestamp is not None and change.status == CallStatus.COMPLETED and change.duration is not None
    ):
        started = change.timestamp - timedelta(seconds=change.duration)
    if started is not None:
        db.session.execute(
            update(Call)
            .where(Call.call_sid == change.call_sid, Call.started_at.is_(None))
            .values(started_at=started)
        )
    if move_forward(Call.status, change.status, Call.call_sid == change.call_sid):
        record_event(EventKind.CALL, change.status, Call.call_sid == change.call_sid)
    db.session.commit()


def call_placed(placed: PlacedCall, *, account_sid: str, from_number: str, to_number: str) -> Call:
    """A call Twilio accepted from /dial: store it, whichever of its callbacks came first."""
    _ensure_call(placed.sid, account_sid)
    db.session.execute(
        update(Call).where(Call.call_sid == placed.sid).values(direction=placed.direction or "outbound-api")
    )
    _set_numbers(placed.sid, placed.from_number or from_number, placed.to_number or to_number)
    status = CallStatus(placed.status) if placed.status in CALL_STATUS_RANK else CallStatus.QUEUED
    if move_forward(Call.status, status, Call.call_sid == placed.sid):
        record_event(EventKind.CALL, status, Call.call_sid == placed.sid)
    db.session.commit()
    call = db.session.scalar(select(Call).where(Call.call_sid == placed.sid))
    assert call is not None
    log.info("placed call %s", placed.sid)
    return call


@dataclass(frozen=True)
class _RecordingWrites:
    """The recording callback's statements, built once per kind of database.

    Its transaction is the busiest write of the service (a burst of calls
    ending at once is a burst of these), so it is two or three prebuilt Core
    statements rather than ORM statements built and compiled per request.
    """

    call: Insert  # the call, unless it is stored: RETURNING its id
    call_id: Select[tuple[int]]  # the id of a call that was stored
    moves: dict[bool, Insert]  # completed or not: the recording, its status moved forward, RETURNING it
    event: Insert  # a row of the call's history
    gone: CompoundSelect  # a row when the call is deleted or being deleted: the callback changes nothing


@cache
def _recording_writes(dialect: str) -> _RecordingWrites:
    calls, recordings = Call.__table__, Recording.__table__
    call = dialect_insert(calls, dialect)
    moves = {}
    for completed in (False, True):
        upsert = dialect_insert(recordings, dialect)
        moved = ["status", "channels", "duration", "source", "error_code", "started_at", "updated_at"]
        if completed:
            moved += ["stage", "stage_changed_at"]
        moves[completed] = upsert.on_conflict_do_update(
            index_elements=["recording_sid"],
            set_={name: upsert.excluded[name] for name in moved},
            # A late or repeated callback finds the row further on and changes nothing.
            where=or_(
                recordings.c.status.is_(None),
                rank(recordings.c.status, RecordingStatus) < rank(upsert.excluded.status, RecordingStatus),
            ),
        ).returning(recordings.c.id, recordings.c.call_id)
    return _RecordingWrites(
        call=call.on_conflict_do_nothing(index_elements=["call_sid"]).returning(calls.c.id),
        call_id=select(calls.c.id).where(calls.c.call_sid == bindparam("call_sid")),
        moves=moves,
        event=insert(CallEvent.__table__),
        gone=deletion.gone_statement(),
    )


def recording_status_changed(change: RecordingUpdate) -> None:
    """Twilio's recording status callback: store it; a completed one goes to transcription.

    A deleted call's (or one being deleted) changes nothing: it is neither
    stored again nor paid for again.
    """
    writes = _recording_writes(dialect_name())
    connection = db.session.connection()  # Core statements: no ORM step between them and the driver
    sids = {"call_sid": change.call_sid, "recording_sid": change.recording_sid}
    if connection.execute(writes.gone, sids).first() is not None:
        db.session.rollback()
        log.info("recording %s: call deleted, %s callback ignored", change.recording_sid, change.status)
        return
    call = {"call_sid": change.call_sid, "account_sid": change.account_sid}
    call_id = connection.execute(writes.call, call).scalar()
    if call_id is None:
        call_id = connection.execute(writes.call_id, call).scalar_one()
    completed = change.status == RecordingStatus.COMPLETED
    now = utcnow()
    recording: dict[str, object] = {
        "recording_sid": change.recording_sid,
        "call_id": call_id,
        "account_sid": change.account_sid,
        "status": change.status,
        "channels": change.channels,
        "duration": change.duration,
        "source": change.source,
        "error_code": change.error_code,
        "started_at": change.started_at,
        "updated_at": now,
    }
    if completed:
        recording.update(stage=Stage.PENDING, stage_changed_at=now)
    moved = connection.execute(writes.moves[completed], recording).first()
    if moved is not None:
        event = {"call_id": moved.call_id, "recording_id": moved.id, "kind": EventKind.RECORDING}
        connection.execute(writes.event, {**event, "status": change.status})
    db.session.commit()
    # Only the request that moved the recording to "completed" starts the
    # work, and only now that the row is committed for the worker to see.
    if moved is not None and completed:
        jobs.queue().process_recording(moved.id)
    elif moved is None:
        log.info("recording %s: %s callback changed nothing", change.recording_sid, change.status)


def recover_recordings(call_id: int) -> int:
    """A call ended and no recording callback came: ask Twilio for its recordings.

    Twilio retries a callback once at most; this is how a lost one is found.
    Each recording found goes through the same path as its callback would
    have. Returns how many were found.
    """
    call = db.session.get(Call, call_id)
    if call is None or call.recordings_checked_at is not None:
        return 0
    sid = call.call_sid
    db.session.commit()  # no transaction open while Twilio answers
    twilio = clients.twilio()
    try:
        found = twilio.call_recordings(sid)
    except ProviderError as error:
        if error.retryable:
            log.warning("call %s: listing recordings failed (%s); will retry", sid, error)
            return 0
        log.warning("call %s: Twilio has no recordings for it (%s)", sid, error)
        found = []
    if any(r.status not in FINAL_RECORDING_STATUSES for r in found):
        return 0  # still being processed by Twilio: look again next time
    db.session.execute(update(Call).where(Call.id == call_id).values(recordings_checked_at=utcnow()))
    db.session.commit()
    for info in found:
        log.info("call %s: recovered recording %s (%s)", sid, info.sid, info.status)
        recording_status_changed(
            RecordingUpdate(
                recording_sid=info.sid,
                call_sid=sid,
                account_sid=twilio.account_sid,
                status=RecordingStatus(info.status),
                duration=info.duration,
                channels=info.channels,
                source=info.source,
                error_code=None,
                started_at=None,
            )
        )
    return len(found)
