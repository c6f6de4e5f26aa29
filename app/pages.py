"""The private dashboard: the calls, their transcripts, and the dial form."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.datastructures import Range
from werkzeug.exceptions import BadRequest

from . import (
    audio,
    callbacks,
    clients,
    deletion,
    dialing,
    dialogue,
    listing,
    media,
    pipeline,
    uploads,
    wording,
)
from .access import Permission, public, requires, wants_json
from .config import current_settings, language_code
from .hardening import large_body
from .models import Call, CallEvent, Recording, db, utcnow
from .numbers import whole_number
from .providers import ProviderError
from .providers.twilio import RangeNotSatisfiable
from .states import ACTIVE_STAGES, CallStatus, RecordingStatus, Stage, TranscriptStatus

log = logging.getLogger(__name__)
bp = Blueprint("pages", __name__)


def webhook_urls() -> list[tuple[str, str]]:
    """What to paste where in the Twilio console, for the setup checklist."""
    settings = current_settings()
    base = settings.base_url or "https://YOUR-PUBLIC-HOST"
    return [
        ("Phone number → A call comes in (HTTP POST)", callbacks.public_url(base, callbacks.TWILIO_VOICE)),
        (
            "Phone number → Call status changes (HTTP POST)",
            callbacks.public_url(base, callbacks.TWILIO_CALL_STATUS),
        ),
    ]


def _dial_refused(reason: str) -> None:
    """A /dial refused by role or scope is on the audit trail too."""
    dialing.record_refusal(_requested_number(), _caller(), reason)


@bp.get("/")
@requires(Permission.READ, open_until_configured=True)
def home(status: int = 200, dial_error: str | None = None) -> Any:
    """The calls list: filters, search and keyset pages (:mod:`app.listing`).

    A value that means nothing is dropped with a sentence saying so; an old
    ``?page=N`` link goes to the first page of the same list.
    """
    settings = current_settings()
    if not current_user.is_authenticated:
        # Nothing to protect yet, and the newcomer needs to see what to set.
        return render_template("setup.html", missing=settings.missing(), urls=webhook_urls())
    if "page" in request.args and request.method == "GET":
        kept = {k: request.args.getlist(k) for k in request.args if k not in ("page", "before")}
        return redirect(url_for("pages.home", **kept))
    filters, notices = listing.read_filters(request.args, strict=False)
    limit, problems = listing.read_limit(request.args.get("limit"), strict=False)
    notices += problems
    before = None
    if request.args.get("before"):
        try:
            before = listing.decode_cursor(request.args["before"])
        except listing.BadFilter as bad:
            notices.append(f"{bad} Showing the newest calls.")
    page = listing.list_calls(filters, before=before, limit=limit)
    count, more = listing.count_calls(filters)
    link_args = filters.link_args()
    if limit != listing.DEFAULT_LIMIT:
        link_args["limit"] = [str(limit)]
    return (
        render_template(
            "calls.html",
            page=page,
            filters=filters,
            count=count,
            more_than=more,
            notices=notices,
            link_args=link_args,
            first_page=before is None,
            as_of=utcnow().isoformat().replace("+00:00", "Z"),
            statuses=list(CallStatus),
            missing=settings.missing(),
            urls=webhook_urls(),
            request_key=dialing.new_request_key(),
            dial_error=dial_error,
            dial_to=_requested_number() if dial_error else None,
            live_query=urlencode(link_args, doseq=True),
        ),
        status,
    )


def find_call(call_sid: str) -> Call:
    """The call with this CallSid, or a 404: for every route that names a call."""
    call = db.session.scalar(select(Call).where(Call.call_sid == call_sid[:64]))
    if call is None:
        abort(404, "No such call.")
    return call


@bp.get("/calls/<call_sid>")
@requires(Permission.READ)
def call_detail(call_sid: str) -> str:
    call = find_call(call_sid)
    return render_template(
        "call.html",
        call=call,
        speakers=dialogue.speakers(call),
        turns={r.id: dialogue.of_recording(r) for r in call.recordings},
        history=call.events,
        refresh=any(r.stage in ACTIVE_STAGES for r in call.recordings),
    )


@bp.post("/calls/<call_sid>/delete")
@requires(Permission.DELETE)
def delete_call(call_sid: str) -> Response:
    """The call page's confirmed Delete: mark it and let the worker delete it everywhere."""
    try:
        deletion.request_deletion(call_sid[:64], current_user.username)
    except deletion.NoSuchCall as missing:
        abort(404, str(missing))
    flash(f"Deleting {call_sid}: its recordings, transcript and audio are being removed.", "info")
    return redirect(url_for(".home"))  # type: ignore[return-value]


@bp.post("/calls/<call_sid>/speakers")
@requires(Permission.EDIT)
def rename_speaker(call_sid: str) -> Response:
    """The call page's form: name one speaker (fields ``label`` and ``name``)."""
    call = find_call(call_sid)
    label, name = request.form.get("label") or "", request.form.get("name") or ""
    try:
        dialogue.rename(call, {label: name})
    except dialogue.NamingError as refused:
        flash(str(refused), "error")
    else:
        flash(f"Speaker {label} is now {name.strip()}." if name.strip() else "Name removed.", "info")
    return redirect(url_for("pages.call_detail", call_sid=call.call_sid))  # type: ignore[return-value]


@bp.get("/recordings/<row_id:recording_id>/audio")
@requires(Permission.READ)
def recording_audio(recording_id: int) -> Response:
    """The recording, streamed through us: the browser never sees a Twilio URL or credential.

    A ``Range`` request (a player seeking in a long call) is passed on to
    Twilio; when Twilio answers with the whole file instead, the range is cut
    from the stream here, never held in memory. One ``bytes`` range only; any
    other ``Range`` is ignored.
    """
    recording = db.session.get(Recording, recording_id)
    if recording is None or recording.status != RecordingStatus.COMPLETED:
        abort(404, "No such recording.")
    sid, channels = recording.recording_sid, recording.channels
    media_key, media_type = recording.media_key, recording.media_type
    if recording.twilio_deleted_at is not None and media_key is None:
        abort(404, "The audio was deleted at Twilio once transcribed, and no copy was kept (KEEP_AUDIO).")
    db.session.commit()  # no transaction stays open while Twilio answers
    # RFC 9110 section 14.2: a Range this cannot serve (another unit, several ranges, one that
    # does not parse) is ignored and the whole file is sent; only a range past the end is a 416.
    wanted = request.range
    if wanted is not None and (wanted.units != "bytes" or len(wanted.ranges) != 1):
        wanted = None
    if media_key is not None:
        return _stored_audio(media_key, media_type or "application/octet-stream", wanted)
    asked = request.headers["Range"].strip() if wanted is not None else None
    stack = ExitStack()
    try:
        download = stack.enter_context(clients.twilio().open_media(sid, channels=channels, byte_range=asked))
    except RangeNotSatisfiable as refused:
        stack.close()
        return _unsatisfiable(refused.content_range)
    except ProviderError as error:
        stack.close()
        log.warning("recording %s: audio not available (%s)", sid, error)
        abort(502, "Twilio did not hand over the recording; try again shortly.")

    headers = {"Cache-Control": "private, no-store", "Accept-Ranges": "bytes"}
    status, start, stop = 200, 0, None
    if download.partial and download.content_range:
        status, headers["Content-Range"] = 206, download.content_range
    elif wanted is not None and download.expected_length is not None:
        span = wanted.range_for_length(download.expected_length)
        if span is None:
            stack.close()
            return _unsatisfiable(f"bytes */{download.expected_length}")
        status, (start, stop) = 206, span
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{download.expected_length}"
    length = (stop - start) if stop is not None else download.expected_length
    if length is not None:
        headers["Content-Length"] = str(length)

    def body() -> Iterator[bytes]:
        with stack:
            yield from _byte_slice(download.chunks(), start, stop)

    return Response(body(), status=status, mimetype="audio/wav", headers=headers)


def _stored_audio(key: str, mimetype: str, wanted: Range | None) -> Response:
    """An uploaded file, from our own media store, with the same Range answers as a recording."""
    store = media.store()
    try:
        size = store.size(key)
    except FileNotFoundError:
        abort(404, "The audio file is no longer stored.")
    headers = {"Cache-Control": "private, no-store", "Accept-Ranges": "bytes"}
    status, start, stop = 200, 0, size
    if wanted is not None:
        span = wanted.range_for_length(size)
        if span is None:
            return _unsatisfiable(f"bytes */{size}")
        status, (start, stop) = 206, span
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    headers["Content-Length"] = str(stop - start)
    body = store.chunks(key, start=start, length=stop - start)
    return Response(body, status=status, mimetype=mimetype, headers=headers)


def _byte_slice(chunks: Iterator[bytes], start: int, stop: int | None) -> Iterator[bytes]:
    """Bytes ``start`` to ``stop`` of a stream, as it flows."""
    offset = 0
    for chunk in chunks:
        begin, end = offset, offset + len(chunk)
        offset = end
        if stop is not None and begin >= stop:
            return
        if end <= start:
            continue
        yield chunk[max(0, start - begin) : (stop - begin) if stop is not None else None]


def _unsatisfiable(content_range: str | None) -> Response:
    message = "That byte range is not in the recording."
    if wants_json():
        response = jsonify(error=message)
        response.status_code = 416
    else:
        response = Response(message, status=416, mimetype="text/plain")
    if content_range:
        response.headers["Content-Range"] = content_range
    return response


@bp.post("/recordings/<row_id:recording_id>/retry")
@requires(Permission.EDIT)
def retry_recording(recording_id: int) -> Response:
    recording = db.session.get(Recording, recording_id)
    if recording is None:
        abort(404, "No such recording.")
    call_sid = recording.call.call_sid
    if pipeline.retry_failed(recording_id):
        flash("Trying again.", "info")
    else:
        flash("Only a failed recording can be retried.", "error")
    return redirect(url_for("pages.call_detail", call_sid=call_sid))  # type: ignore[return-value]


@bp.post("/dial")
@requires(Permission.DIAL, on_refusal=_dial_refused)
def dial() -> Any:
    """Place an outbound recorded call: the form on the page, or JSON {"to": "+1..."}.

    A form carries its own one-time key, a script an ``Idempotency-Key``
    header: either way a repeated request is answered, not dialled again.
    """
    # A script (JSON, or any request with a token) gets JSON; the page's form gets the page.
    scripted = wants_json()
    key = request.headers.get("Idempotency-Key") if scripted else request.form.get("request_key")
    answer = dialing.dial_once(_requested_number(), _caller(), key)
    if scripted:
        return jsonify(answer.body), answer.status
    if "call_sid" in answer.body:
        flash(f"Calling {answer.body['to']}.", "info")
        return redirect(url_for("pages.call_detail", call_sid=answer.body["call_sid"]))
    return home(answer.status, dial_error=answer.body["error"])


def _requested_number() -> str:
    if request.is_json:
        body = request.get_json(silent=True)
        to = body.get("to") if isinstance(body, dict) else None
    else:
        to = request.form.get("to")
    return to if isinstance(to, str) else ""


def _caller() -> dialing.Caller:
    return dialing.Caller(current_user.username, current_user.auth_method, request.remote_addr)


@bp.get("/upload")
@requires(Permission.EDIT)
def upload_form() -> str:
    """Audio files to transcribe: the form, which sends each file on its own with a progress bar."""
    return render_template(
        "upload.html",
        max_mb=current_settings().max_upload_mb,
        accepted=audio.ACCEPTED,
        extensions=sorted(audio.EXTENSIONS),
        max_speakers=uploads.MAX_SPEAKERS,
    )


@bp.post("/upload")
@requires(Permission.EDIT)
@large_body(lambda: current_settings().max_upload_mb, "MAX_UPLOAD_MB")
def upload_files() -> Any:
    """Store each file sent (form field ``files``) as a call to transcribe; the worker takes it on.

    Werkzeug writes a file part over 500 KB to a temporary file as it
    arrives, so no upload is ever held whole in memory.
    """
    options = _upload_options()
    files = [f for f in request.files.getlist("files") if f.filename]
    if not files:
        raise BadRequest("Choose at least one audio file.")
    stored, errors = [], []
    for sent in files:
        try:
            recording = uploads.store_upload(
                iter(functools.partial(sent.stream.read, media.CHUNK_BYTES), b""),
                sent.filename or "",
                options,
                uploaded_by=current_user.username,
            )
        except uploads.UploadError as error:
            errors.append(str(error))
            continue
        sid = recording.recording_sid
        url = url_for(".call_detail", call_sid=sid)
        stored.append({"call_sid": sid, "title": recording.call.title, "url": url})
    status = 201 if stored else 400
    if wants_json():
        return jsonify(uploaded=stored, errors=errors), status
    for message in errors:
        flash(message, "error")
    if not stored:
        return redirect(url_for(".upload_form"))
    flash(f"Uploaded {len(stored)} file{'s' if len(stored) > 1 else ''}; transcribing now.", "info")
    if len(stored) == 1:
        return redirect(stored[0]["url"])
    return redirect(url_for(".home", direction=uploads.UPLOAD_DIRECTION))


def _upload_options() -> uploads.UploadOptions:
    language = request.form.get("language", "").strip() or None
    if language is not None:
        try:
            language = language_code(language)
        except ValueError as error:
            raise BadRequest(str(error)) from None
    raw_speakers = request.form.get("speakers", "").strip()
    speakers = whole_number(raw_speakers, low=1, high=uploads.MAX_SPEAKERS) if raw_speakers else None
    if raw_speakers and speakers is None:
        raise BadRequest(f"Speakers must be a whole number from 1 to {uploads.MAX_SPEAKERS}.")
    channels = bool(request.form.get("channels"))
    return uploads.UploadOptions(language=language, speakers=speakers, channels=channels)


@bp.get("/healthz")
@public
def healthz() -> tuple[dict[str, str], int]:
    """For the platform's health check: 200 when the database answers."""
    try:
        db.session.execute(text("SELECT 1"))
        db.session.rollback()
    except SQLAlchemyError:
        log.exception("health check: database unreachable")
        return {"status": "database unreachable"}, 503
    return {"status": "ok"}, 200


# -- how states read on the page ---------------------------------------------


@bp.app_template_filter("recording_state")
def recording_state(recording: Recording) -> str:
    if recording.status == RecordingStatus.IN_PROGRESS:
        return "Recording…"
    if recording.status == RecordingStatus.ABSENT:
        return "No audio: the recording was too short or silent" + _code(recording.error_code)
    if recording.status == RecordingStatus.FAILED:
        return "Twilio could not make the recording" + _code(recording.error_code)
    retrying = f" (attempt {recording.attempts + 1} soon)" if recording.attempts else ""
    transcript = recording.transcript
    return {
        Stage.PENDING: "Waiting to send the audio to AssemblyAI" + retrying,
        Stage.DELIVERED: "Submitting to AssemblyAI" + retrying,
        Stage.SUBMITTED: f"Transcribing ({transcript.status if transcript else 'queued'})…",
        Stage.TRANSCRIBED: "Transcribed",
        Stage.FAILED: "Transcription failed",
    }.get(recording.stage or "", "—")


def _code(code: str | None) -> str:
    return f" (Twilio error {code})." if code else "."


@dataclass(frozen=True)
class Problem:
    """What went wrong with a recording, for the person reading its page."""

    explanation: str  # our plain words
    detail: str | None = None  # the provider's own words, shown as they are (escaped)
    retry: bool = False  # whether "Try again" can help
    twilio_error: str | None = None  # a Twilio error code, linked to Twilio's page for it


@bp.app_template_filter("problem")
def problem(recording: Recording) -> Problem | None:
    """Why a recording has no transcript, when something stopped it; None while all is well."""
    if recording.status == RecordingStatus.ABSENT:
        return Problem(
            "Twilio kept no audio: the call was too short or silent to record. "
            "There is nothing to transcribe, so trying again would not help.",
            twilio_error=recording.error_code,
        )
    if recording.status == RecordingStatus.FAILED:
        return Problem(
            "Twilio could not make the recording, so there is no audio to transcribe.",
            twilio_error=recording.error_code,
        )
    if recording.stage != Stage.FAILED:
        return None
    transcript = recording.transcript
    if transcript is not None and transcript.status == TranscriptStatus.ERROR:
        return Problem("AssemblyAI could not transcribe the audio. It said:", transcript.error, retry=True)
    if transcript is not None:
        return Problem(
            "AssemblyAI has the transcript, but we could not read it from there.",
            recording.last_error,
            retry=True,
        )
    return Problem(
        "We could not fetch the audio from Twilio or send it to AssemblyAI.", recording.last_error, retry=True
    )


@bp.app_template_filter("event_words")
def event_words(event: CallEvent) -> str:
    return wording.event(event.kind, event.status)


@bp.app_template_filter("clock")
def clock(ms: int) -> str:
    """A time into a recording as people read it: 1:05, or 1:02:05 past the hour."""
    minutes, seconds = divmod(max(0, ms) // 1000, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


@bp.app_template_filter("seconds")
def seconds(ms: int) -> str:
    """Milliseconds as the seconds an audio element's currentTime takes: 1240 -> "1.24"."""
    return f"{max(0, ms) / 1000:.3f}".rstrip("0").rstrip(".")


@bp.app_template_filter("duration_words")
def duration_words(total: int | None) -> str:
    """A duration in seconds, in words: "42 s", "3 min 5 s", "1 h 2 min"."""
    if total is None:
        return "—"
    minutes, rest = divmod(total, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"
