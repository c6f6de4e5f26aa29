"""Deleting a call: every copy of it, everywhere, and then its rows; a tombstone stays.

A deletion removes, in this order, each recording at Twilio, each
transcript at its engine (AssemblyAI blanks it and drops the uploaded
audio), each file of ours in the media store, and last, in one
transaction, the call's rows and search document, leaving a tombstone
(:class:`DeletedCall`, which is also the audit entry of what was deleted,
when, and at whose word).

Every step is idempotent: a copy already gone counts as deleted. Until
the last step the call stays, marked "deleting" with the reason a step
failed, if one did, and is tried again (the job's backoff, then the
reconciliation). While it is marked, and after, its callbacks change
nothing and its recordings are never sent for transcription again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import CompoundSelect, bindparam, delete, literal, select, union_all, update

from . import clients, jobs, media, search
from .config import Settings
from .models import (
    Call,
    CallEvent,
    DeletedCall,
    DeletedRecording,
    Recording,
    SpeakerName,
    Transcript,
    db,
    insert_ignore,
    utcnow,
)
from .pipeline import RetryLater
from .providers import ProviderError
from .providers.twilio import RECORDING_SID
from .states import Stage

log = logging.getLogger(__name__)

# A job at work on one of the call's recordings is waited for, this long at a time.
BUSY_RETRY_SECONDS = 5.0
RETRY_CAP_SECONDS = 3600.0


class NoSuchCall(LookupError):
    """No call by that id; ``str()`` says so, and whether it was deleted."""


@dataclass(frozen=True)
class _Copy:
    """One recording of the call, and where its copies are."""

    id: int
    recording_sid: str
    engine: str | None
    transcript_id: str | None
    media_key: str | None
    claimed_until: datetime | None


def request_deletion(call_sid: str, by: str) -> Call:
    """Mark the call for deletion and queue the work; asking twice is harmless."""
    call = db.session.scalar(select(Call).where(Call.call_sid == call_sid))
    if call is None:
        raise NoSuchCall(_missing(call_sid))
    db.session.execute(
        update(Call)
        .where(Call.id == call.id, Call.deleting_at.is_(None))
        .values(deleting_at=utcnow(), deleting_by=by[:64])
    )
    db.session.commit()
    log.info("call %s: deletion asked by %s", call_sid, by)
    jobs.queue().delete_call(call.id)
    return call


def _missing(call_sid: str) -> str:
    gone = db.session.scalar(select(DeletedCall.deleted_at).where(DeletedCall.call_sid == call_sid))
    db.session.rollback()
    if gone is not None:
        return f"Call {call_sid} was deleted on {gone:%Y-%m-%d %H:%M} UTC."
    return f"No call {call_sid}."


def delete_call(call_id: int) -> bool:
    """Run the deletion of a call marked for it. True once it is gone; raises RetryLater."""
    call = db.session.get(Call, call_id)
    if call is None or call.deleting_at is None:
        db.session.rollback()
        return call is None
    copies = [
        _Copy(
            r.id,
            r.recording_sid,
            r.engine,
            r.transcript.transcript_id if r.transcript else None,
            r.media_key,
            r.claimed_until,
        )
        for r in call.recordings
    ]
    call_sid, asked_at = call.call_sid, call.deleting_at
    db.session.commit()  # no transaction open while the providers answer
    now = utcnow()
    if any(c.claimed_until is not None and c.claimed_until > now for c in copies):
        raise RetryLater(BUSY_RETRY_SECONDS)  # a job is at work on one: let it finish first
    try:
        for copy in copies:
            _delete_copies(copy)
    except ProviderError as error:
        reason = f"{error}; trying again"
        db.session.execute(update(Call).where(Call.id == call_id).values(deletion_error=reason[:2000]))
        db.session.commit()
        log.warning("call %s: deletion step failed (%s)", call_sid, error)
        raise RetryLater(_retry_delay(now - asked_at, error.retry_after)) from None
    _delete_rows(call_id, copies)
    log.info("call %s deleted: %d recording(s)", call_sid, len(copies))
    return True


def _retry_delay(waited: timedelta, retry_after: float | None) -> float:
    """Half as long again as the deletion has waited so far: 5 s at first, an hour at most."""
    delay = min(RETRY_CAP_SECONDS, max(BUSY_RETRY_SECONDS, waited.total_seconds() / 2))
    return max(delay, retry_after or 0.0)


def _delete_copies(copy: _Copy) -> None:
    """Twilio's recording, the engine's transcript, our file; each gone already counts as done."""
    if RECORDING_SID.match(copy.recording_sid):
        clients.twilio().delete_recording(copy.recording_sid)
    if copy.transcript_id is not None:
        try:
            clients.engine(copy.engine).delete(copy.transcript_id)
        except ProviderError as error:
            if error.status != 404:
                raise
    if copy.media_key is not None:
        media.store().delete(copy.media_key)


def _delete_rows(call_id: int, copies: list[_Copy]) -> None:
    """The rows and the search document go in one transaction, and the tombstone comes."""
    call = db.session.get(Call, call_id)
    if call is None:
        return
    sids = [c.recording_sid for c in copies]
    insert_ignore(
        DeletedCall,
        {
            "call_sid": call.call_sid,
            "direction": call.direction,
            "recording_sids": sids,
            "transcript_ids": [c.transcript_id for c in copies if c.transcript_id],
            "media_keys": [c.media_key for c in copies if c.media_key],
            "requested_by": call.deleting_by,
            "requested_at": call.deleting_at,
            "deleted_at": utcnow(),
        },
        "call_sid",
    )
    for sid in sids:
        insert_ignore(DeletedRecording, {"recording_sid": sid, "call_sid": call.call_sid}, "recording_sid")
    recording_ids = [c.id for c in copies]
    search.forget(db.session.connection(), call_id)
    db.session.execute(delete(Transcript).where(Transcript.recording_id.in_(recording_ids)))
    db.session.execute(delete(CallEvent).where(CallEvent.call_id == call_id))
    db.session.execute(delete(SpeakerName).where(SpeakerName.call_id == call_id))
    db.session.execute(delete(Recording).where(Recording.call_id == call_id))
    db.session.execute(delete(Call).where(Call.id == call_id))
    db.session.commit()


# -- retention: DELETE_TWILIO_RECORDING_AFTER and RETENTION_DAYS -------------------

SWEEP_BATCH = 500  # at most this many of each per reconciliation round


def forget_twilio_recording(recording_id: int) -> None:
    """Delete a transcribed recording at Twilio (DELETE_TWILIO_RECORDING_AFTER=transcribed).

    Safe to run twice: a recording already deleted there, or not yet
    transcribed, is left as it is. Raises RetryLater when Twilio fails.
    """
    recording = db.session.get(Recording, recording_id)
    wanted = (
        recording is not None
        and recording.stage == Stage.TRANSCRIBED
        and recording.twilio_deleted_at is None
        and RECORDING_SID.match(recording.recording_sid) is not None
    )
    sid = recording.recording_sid if recording is not None else ""
    db.session.commit()
    if not wanted:
        return
    try:
        clients.twilio().delete_recording(sid)
    except ProviderError as error:
        log.warning("recording %s: deleting it at Twilio failed (%s); will retry", sid, error)
        raise RetryLater(max(BUSY_RETRY_SECONDS * 12, error.retry_after or 0.0)) from None
    db.session.execute(
        update(Recording)
        .where(Recording.id == recording_id, Recording.twilio_deleted_at.is_(None))
        .values(twilio_deleted_at=utcnow())
    )
    db.session.commit()
    log.info("recording %s: deleted at Twilio once transcribed", sid)


def sweep(now: datetime, settings: Settings) -> dict[str, int]:
    """The retention settings' periodic work: queue what is due; safe to run twice."""
    forgotten: list[int] = []
    if settings.delete_twilio_recording_after == "transcribed":
        forgotten = list(
            db.session.scalars(
                select(Recording.id)
                .where(
                    Recording.stage == Stage.TRANSCRIBED,
                    Recording.twilio_deleted_at.is_(None),
                    Recording.recording_sid.like("RE%"),
                )
                .limit(SWEEP_BATCH)
            )
        )
    expired: list[str] = []
    if settings.retention_days is not None:
        cutoff = now - timedelta(days=settings.retention_days)
        expired = list(
            db.session.scalars(
                select(Call.call_sid)
                .where(Call.created_at < cutoff, Call.deleting_at.is_(None))
                .order_by(Call.created_at)
                .limit(SWEEP_BATCH)
            )
        )
    db.session.commit()
    for recording_id in forgotten:
        jobs.queue().forget_twilio_recording(recording_id)
    for call_sid in expired:
        request_deletion(call_sid, f"RETENTION_DAYS={settings.retention_days}")
    return {"forget": len(forgotten), "expire": len(expired)}


@cache
def gone_statement() -> CompoundSelect:
    """A row when callbacks for ``:call_sid`` (or ``:recording_sid``) must change nothing.

    That is a call deleted, or being deleted, or a deleted recording. Built
    once: the recording callback, the busiest write, runs it first.
    """
    call_sid, recording_sid = bindparam("call_sid"), bindparam("recording_sid")
    return union_all(
        select(literal(1)).where(DeletedCall.call_sid == call_sid),
        select(literal(1)).where(DeletedRecording.recording_sid == recording_sid),
        select(literal(1)).where(Call.call_sid == call_sid, Call.deleting_at.is_not(None)),
    ).limit(1)


def gone(call_sid: str, recording_sid: str = "") -> bool:
    """Whether callbacks for this call (or recording) must change nothing: deleted, or being deleted."""
    found = db.session.connection().execute(
        gone_statement(), {"call_sid": call_sid, "recording_sid": recording_sid}
    )
    return found.first() is not None


def stuck(now: datetime, waited: timedelta) -> list[int]:
    """Calls marked for deletion longer than ``waited`` ago: their job may have been lost."""
    marked = select(Call.id).where(Call.deleting_at.is_not(None), Call.deleting_at < now - waited)
    return list(db.session.scalars(marked))


def deletions(limit: int = 50) -> list[DeletedCall]:
    """The audit log of deleted calls, newest first."""
    return list(db.session.scalars(select(DeletedCall).order_by(DeletedCall.deleted_at.desc()).limit(limit)))
