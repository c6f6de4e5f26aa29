"""Webhook routes: authenticate, read the fields, call one service function, answer.

This is the only module that reads the fields of Twilio's webhooks: each
form is validated here and handed on as typed values (:mod:`app.calls`).

Twilio waits 15 s for an answer and retries once; AssemblyAI waits 10 s,
retries up to 10 times about 10 s apart, and never retries after a 4xx. So
every route answers at once, leaves slow work to the queue, and answers
5xx (never 4xx) when the failure is ours, such as a database that is down.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import TypeVar

from flask import Blueprint, Response, request
from werkzeug.exceptions import BadRequest

from . import callbacks, calls, pipeline, twiml
from .config import current_settings
from .numbers import row_id, whole_number
from .providers.assemblyai import MalformedNotice, webhook_transcript_id
from .providers.twilio import ACCOUNT_SID, CALL_SID, RECORDING_SID
from .states import CallStatus, RecordingStatus
from .webhook_auth import assemblyai_authenticated, twilio_signed

bp = Blueprint("webhooks", __name__)
S = TypeVar("S", bound=StrEnum)
# Durations and channel counts: nine digits always fit an INTEGER column.
MAX_TWILIO_NUMBER = 999_999_999


def _twiml(document: str) -> Response:
    return Response(document, mimetype="text/xml")


def _url(path: str) -> str:
    settings = current_settings()
    assert settings.base_url is not None  # twilio_signed refuses requests without it
    return callbacks.public_url(settings.base_url, path)


@bp.post(callbacks.TWILIO_VOICE)
@twilio_signed
def inbound_call() -> Response:
    """Twilio, when someone calls the number: forward and record, or take a message."""
    settings = current_settings()
    if settings.forward_to:
        return _twiml(
            twiml.forward(to=settings.forward_to, recording_callback=_url(callbacks.TWILIO_RECORDING_STATUS))
        )
    return _twiml(
        twiml.voicemail(
            greeting=settings.greeting,
            max_seconds=settings.max_recording_seconds,
            recording_callback=_url(callbacks.TWILIO_RECORDING_STATUS),
            after_url=_url(callbacks.TWILIO_RECORDED),
        )
    )


@bp.post(callbacks.TWILIO_OUTBOUND)
@twilio_signed
def outbound_call() -> Response:
    """Twilio, when the callee of a /dial call answers: say it is recorded, record."""
    settings = current_settings()
    return _twiml(
        twiml.outbound(
            max_seconds=settings.max_recording_seconds,
            recording_callback=_url(callbacks.TWILIO_RECORDING_STATUS),
            after_url=_url(callbacks.TWILIO_RECORDED),
        )
    )


@bp.post(callbacks.TWILIO_RECORDED)
@twilio_signed
def recording_finished() -> Response:
    """Twilio, when a <Record> ends: hang up politely."""
    return _twiml(twiml.goodbye())


@bp.post(callbacks.TWILIO_CALL_STATUS)
@twilio_signed
def call_status() -> tuple[str, int]:
    """Twilio's call status callback (initiated, ringing, answered, completed...)."""
    calls.call_status_changed(call_update(request.form))
    return "", 204


@bp.post(callbacks.TWILIO_RECORDING_STATUS)
@twilio_signed
def recording_status() -> tuple[str, int]:
    """Twilio's recording status callback: completed, absent (or failed)."""
    calls.recording_status_changed(recording_update(request.form))
    return "", 204


@bp.post(callbacks.ASSEMBLYAI_WEBHOOK)
@assemblyai_authenticated
def transcript_ready() -> tuple[dict[str, object], int]:
    """AssemblyAI, when a transcript is completed or failed: fetch it in the background."""
    recording = row_id(request.args.get("recording"))
    if recording is None:
        raise BadRequest("The webhook URL lacks our recording id.")
    try:
        transcript_id = webhook_transcript_id(request.get_json(silent=True))
    except MalformedNotice as malformed:
        raise BadRequest(str(malformed)) from None
    queued = pipeline.transcript_webhook(recording, transcript_id)
    return {"accepted": queued}, 200


# -- reading Twilio's forms ---------------------------------------------------


def call_update(form: Mapping[str, str]) -> calls.CallUpdate:
    return calls.CallUpdate(
        call_sid=_field(form, "CallSid", CALL_SID),
        account_sid=_field(form, "AccountSid", ACCOUNT_SID),
        status=_status(form, "CallStatus", CallStatus),
        direction=_optional(form, "Direction", 32),
        from_number=_optional(form, "From"),
        to_number=_optional(form, "To"),
        timestamp=_timestamp(form, "Timestamp"),
        duration=_number(form, "CallDuration"),
    )


def recording_update(form: Mapping[str, str]) -> calls.RecordingUpdate:
    return calls.RecordingUpdate(
        recording_sid=_field(form, "RecordingSid", RECORDING_SID),
        call_sid=_field(form, "CallSid", CALL_SID),
        account_sid=_field(form, "AccountSid", ACCOUNT_SID),
        status=_status(form, "RecordingStatus", RecordingStatus),
        duration=_number(form, "RecordingDuration"),
        channels=2 if _number(form, "RecordingChannels") == 2 else 1,
        source=_optional(form, "RecordingSource", 32),
        error_code=_optional(form, "ErrorCode", 16),
        started_at=_timestamp(form, "RecordingStartTime"),
    )


def _field(form: Mapping[str, str], name: str, pattern: re.Pattern[str] | None = None) -> str:
    value = (form.get(name) or "").strip()
    if not value:
        raise BadRequest(f"Missing {name}.")
    if pattern is not None and not pattern.match(value):
        raise BadRequest(f"{name} is not valid.")
    return value


def _status(form: Mapping[str, str], name: str, kind: type[S]) -> S:
    value = _field(form, name)
    try:
        return kind(value)
    except ValueError:
        raise BadRequest(f"{name} is not one Twilio sends.") from None


def _optional(form: Mapping[str, str], name: str, limit: int = 255) -> str | None:
    value = (form.get(name) or "").replace("\x00", "").strip()
    return value[:limit] or None


def _number(form: Mapping[str, str], name: str) -> int | None:
    """An optional count: a malformed one is ignored, as if Twilio had left it out."""
    return whole_number((form.get(name) or "").strip(), high=MAX_TWILIO_NUMBER)


def _timestamp(form: Mapping[str, str], name: str) -> datetime | None:
    value = form.get(name)
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
