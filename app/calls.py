"""The Twilio side of the life cycle: calls placed, call and recording callbacks.

Each function owns its transaction. Statuses only move forward, whatever
order Twilio's callbacks arrive in, and a duplicate callback changes
nothing, because every write is a conditional UPDATE on the provider's id.
"""

from __future__ import annotations

import email.utils
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import phonenumbers
from sqlalchemy import select, update
from werkzeug.exceptions import BadRequest

from . import jobs
from .config import current_settings, require
from .models import (
    CALL_STATUS_RANK,
    RECORDING_STATUS_RANK,
    Call,
    Recording,
    Stage,
    db,
    insert_ignore,
    rank_below,
    utcnow,
)
from .providers import ProviderError
from .providers.twilio import ACCOUNT_SID, CALL_SID, RECORDING_SID, Twilio

log = logging.getLogger(__name__)


def twilio() -> Twilio:
    """The Twilio adapter, or a 503 naming what is missing."""
    from flask import current_app

    client: Twilio | None = current_app.extensions["twilio"]
    if client is None:
        settings = current_settings()
        require(
            "Twilio",
            TWILIO_ACCOUNT_SID=settings.twilio_account_sid,
            TWILIO_AUTH_TOKEN=settings.twilio_auth_token,
        )
        raise AssertionError("the Twilio adapter exists whenever its settings do")
    return client


# -- reading callbacks ---------------------------------------------------


def _field(form: Mapping[str, str], name: str, pattern: re.Pattern[str] | None = None) -> str:
    value = (form.get(name) or "").strip()
    if not value:
        raise BadRequest(f"Missing {name}.")
    if pattern is not None and not pattern.match(value):
        raise BadRequest(f"{name} is not valid.")
    return value


def _optional(form: Mapping[str, str], name: str, limit: int = 255) -> str | None:
    value = (form.get(name) or "").replace("\x00", "").strip()
    return value[:limit] or None


def _number(form: Mapping[str, str], name: str) -> int | None:
    value = (form.get(name) or "").strip()
    return int(value) if value.isdigit() and len(value) < 10 else None


def _timestamp(form: Mapping[str, str], name: str) -> datetime | None:
    value = form.get(name)
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass(frozen=True)
class CallUpdate:
    call_sid: str
    account_sid: str
    status: str
    direction: str | None
    from_number: str | None
    to_number: str | None
    timestamp: datetime | None
    duration: int | None

    @classmethod
    def from_form(cls, form: Mapping[str, str]) -> CallUpdate:
        status = _field(form, "CallStatus")
        if status not in CALL_STATUS_RANK:
            raise BadRequest("CallStatus is not one Twilio sends.")
        return cls(
            call_sid=_field(form, "CallSid", CALL_SID),
            account_sid=_field(form, "AccountSid", ACCOUNT_SID),
            status=status,
            direction=_optional(form, "Direction", 32),
            from_number=_optional(form, "From"),
            to_number=_optional(form, "To"),
            timestamp=_timestamp(form, "Timestamp"),
            duration=_number(form, "CallDuration"),
        )


@dataclass(frozen=True)
class RecordingUpdate:
    recording_sid: str
    call_sid: str
    account_sid: str
    status: str
    duration: int | None
    channels: int
    source: str | None
    error_code: str | None
    started_at: datetime | None

    @classmethod
    def from_form(cls, form: Mapping[str, str]) -> RecordingUpdate:
        status = _field(form, "RecordingStatus")
        if status not in RECORDING_STATUS_RANK:
            raise BadRequest("RecordingStatus is not one Twilio sends.")
        return cls(
            recording_sid=_field(form, "RecordingSid", RECORDING_SID),
            call_sid=_field(form, "CallSid", CALL_SID),
            account_sid=_field(form, "AccountSid", ACCOUNT_SID),
            status=status,
            duration=_number(form, "RecordingDuration"),
            channels=2 if _number(form, "RecordingChannels") == 2 else 1,
            source=_optional(form, "RecordingSource", 32),
            error_code=_optional(form, "ErrorCode", 16),
            started_at=_timestamp(form, "RecordingStartTime"),
        )


# -- storing them --------------------------------------------------------


def _ensure_call(call_sid: str, account_sid: str | None) -> None:
    insert_ignore(Call, {"call_sid": call_sid, "account_sid": account_sid}, "call_sid")


def call_status_changed(change: CallUpdate) -> None:
    """Twilio's call status callback: keep the call's row up to date."""
    _ensure_call(change.call_sid, change.account_sid)
    details = {
        "direction": change.direction,
        "from_number": change.from_number,
        "to_number": change.to_number,
        "duration": change.duration,
    }
    details = {k: v for k, v in details.items() if v is not None}
    if details:
        db.session.execute(update(Call).where(Call.call_sid == change.call_sid).values(**details))
    started = None
    if change.timestamp is not None and change.status == "in-progress":
        started = change.timestamp
    elif change.timestamp is not None and change.status == "completed" and change.duration is not None:
        started = change.timestamp - timedelta(seconds=change.duration)
    if started is not None:
        db.session.execute(
            update(Call)
            .where(Call.call_sid == change.call_sid, Call.started_at.is_(None))
            .values(started_at=started)
        )
    db.session.execute(
        update(Call)
        .where(Call.call_sid == change.call_sid, rank_below(Call.status, CALL_STATUS_RANK, change.status))
        .values(status=change.status)
    )
    db.session.commit()


def recording_status_changed(change: RecordingUpdate) -> None:
    """Twilio's recording status callback: store it; a completed one goes to transcription."""
    _ensure_call(change.call_sid, change.account_sid)
    call_id = db.session.scalar(select(Call.id).where(Call.call_sid == change.call_sid))
    insert_ignore(
        Recording,
        {
            "recording_sid": change.recording_sid,
            "call_id": call_id,
            "account_sid": change.account_sid,
            "channels": change.channels,
        },
        "recording_sid",
    )
    values: dict[str, object] = {
        "status": change.status,
        "channels": change.channels,
        "duration": change.duration,
        "source": change.source,
        "error_code": change.error_code,
        "started_at": change.started_at,
    }
    if change.status == "completed":
        values.update(stage=Stage.PENDING, stage_changed_at=utcnow())
    moved = db.session.execute(
        update(Recording)
        .where(
            Recording.recording_sid == change.recording_sid,
            rank_below(Recording.status, RECORDING_STATUS_RANK, change.status),
        )
        .values(**values)
    ).rowcount
    recording_id = db.session.scalar(
        select(Recording.id).where(Recording.recording_sid == change.recording_sid)
    )
    db.session.commit()
    # Only the request that moved the recording to "completed" starts the
    # work, and only now that the row is committed for the worker to see.
    if moved and change.status == "completed" and recording_id is not None:
        jobs.queue().process_recording(recording_id)
    elif not moved:
        log.info("recording %s: %s callback changed nothing", change.recording_sid, change.status)


FINAL_RECORDING_STATUSES = ("completed", "absent", "failed")


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
    client = twilio()
    try:
        found = client.call_recordings(sid)
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
                account_sid=client.account_sid,
                status=info.status,
                duration=info.duration,
                channels=info.channels,
                source=info.source,
                error_code=None,
                started_at=None,
            )
        )
    return len(found)


# -- placing calls -------------------------------------------------------


class InvalidNumber(ValueError):
    pass


def parse_e164(raw: str) -> str:
    """A dialable E.164 number, or InvalidNumber saying what is wrong."""
    raw = (raw or "").strip()
    if not raw:
        raise InvalidNumber("Enter the number to call.")
    if not raw.startswith("+"):
        raise InvalidNumber("Write the number in E.164 form: + then country code, e.g. +14155550100.")
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        raise InvalidNumber("That is not a phone number.") from None
    formatted = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if formatted != raw.replace(" ", "").replace("-", ""):
        raise InvalidNumber("Write the number in E.164 form, with digits only after the +.")
    if not phonenumbers.is_valid_number(number):
        raise InvalidNumber(f"{formatted} is not a valid number in any country's numbering plan.")
    return formatted


def place_call(to: str) -> Call:
    """Ask Twilio to call ``to``, record the callee, and store the call."""
    settings = current_settings()
    number = parse_e164(to)
    require("placing calls", TWILIO_PHONE_NUMBER=settings.twilio_phone_number, BASE_URL=settings.base_url)
    assert settings.twilio_phone_number is not None and settings.base_url is not None
    placed = twilio().place_call(
        to=number,
        from_=settings.twilio_phone_number,
        twiml_url=f"{settings.base_url}/twilio/outbound",
        status_callback=f"{settings.base_url}/twilio/call-status",
    )
    _ensure_call(placed.sid, settings.twilio_account_sid)
    db.session.execute(
        update(Call)
        .where(Call.call_sid == placed.sid)
        .values(
            direction=placed.direction or "outbound-api",
            from_number=placed.from_number or settings.twilio_phone_number,
            to_number=placed.to_number or number,
        )
    )
    status = placed.status if placed.status in CALL_STATUS_RANK else "queued"
    db.session.execute(
        update(Call)
        .where(Call.call_sid == placed.sid, rank_below(Call.status, CALL_STATUS_RANK, status))
        .values(status=status)
    )
    db.session.commit()
    call = db.session.scalar(select(Call).where(Call.call_sid == placed.sid))
    assert call is not None
    log.info("placed call %s", placed.sid)
    return call
