"""Webhook routes: authenticate, read the fields, call one service function, answer.

Twilio waits 15 s for an answer and retries once; AssemblyAI waits 10 s,
retries up to 10 times about 10 s apart, and never retries after a 4xx. So
every route answers at once, leaves slow work to the queue, and answers
5xx (never 4xx) when the failure is ours, such as a database that is down.
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, request
from werkzeug.exceptions import BadRequest

from . import calls, pipeline, twiml
from .config import current_settings
from .webhook_auth import assemblyai_authenticated, twilio_signed

bp = Blueprint("webhooks", __name__)
# AssemblyAI's ids are UUIDs today; allow any short id of that alphabet.
TRANSCRIPT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _twiml(document: str) -> Response:
    return Response(document, mimetype="text/xml")


def _url(path: str) -> str:
    settings = current_settings()
    assert settings.base_url is not None  # twilio_signed refuses requests without it
    return f"{settings.base_url}{path}"


@bp.post("/twilio/voice")
@twilio_signed
def inbound_call() -> Response:
    """Twilio, when someone calls the number: forward and record, or take a message."""
    settings = current_settings()
    if settings.forward_to:
        return _twiml(
            twiml.forward(to=settings.forward_to, recording_callback=_url("/twilio/recording-status"))
        )
    return _twiml(
        twiml.voicemail(
            greeting=settings.greeting,
            max_seconds=settings.max_recording_seconds,
            recording_callback=_url("/twilio/recording-status"),
            after_url=_url("/twilio/recorded"),
        )
    )


@bp.post("/twilio/outbound")
@twilio_signed
def outbound_call() -> Response:
    """Twilio, when the callee of a /dial call answers: say it is recorded, record."""
    settings = current_settings()
    return _twiml(
        twiml.outbound(
            max_seconds=settings.max_recording_seconds,
            recording_callback=_url("/twilio/recording-status"),
            after_url=_url("/twilio/recorded"),
        )
    )


@bp.post("/twilio/recorded")
@twilio_signed
def recording_finished() -> Response:
    """Twilio, when a <Record> ends: hang up politely."""
    return _twiml(twiml.goodbye())


@bp.post("/twilio/call-status")
@twilio_signed
def call_status() -> tuple[str, int]:
    """Twilio's call status callback (initiated, ringing, answered, completed...)."""
    calls.call_status_changed(calls.CallUpdate.from_form(request.form))
    return "", 204


@bp.post("/twilio/recording-status")
@twilio_signed
def recording_status() -> tuple[str, int]:
    """Twilio's recording status callback: completed, absent (or failed)."""
    calls.recording_status_changed(calls.RecordingUpdate.from_form(request.form))
    return "", 204


@bp.post("/assemblyai/webhook")
@assemblyai_authenticated
def transcript_ready() -> tuple[dict[str, object], int]:
    """AssemblyAI, when a transcript is completed or failed: fetch it in the background."""
    recording = request.args.get("recording", "")
    if not recording.isdigit() or len(recording) > 18:
        raise BadRequest("The webhook URL lacks our recording id.")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("Expected a JSON object.")
    transcript_id = body.get("transcript_id")
    if not isinstance(transcript_id, str) or not TRANSCRIPT_ID.match(transcript_id):
        raise BadRequest("Missing or malformed transcript_id.")
    queued = pipeline.transcript_webhook(int(recording), transcript_id)
    return {"accepted": queued}, 200
