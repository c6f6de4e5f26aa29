"""Audio a person already has: a file uploaded at ``/upload``, or named to ``flask transcribe``.

An upload becomes a call like any other, so the list, search, the call
page, the exports and the API all show it: a call and a recording whose
id is ``UP`` and 32 hex digits (where Twilio's CallSid would be), with
direction ``upload`` and the file's name as its title. Its audio is kept
in the media store (:mod:`app.media`), which the pipeline streams to the
engine and the call page plays from.

Nothing is half stored: the file is checked (:func:`app.audio.probe`)
before any row is written, and a file whose rows could not be written is
removed again.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select

from . import audio, auth, jobs, media, pipeline
from .access import ROLE_PERMISSIONS, Permission, Role
from .models import Call, Recording, User, db, record_event, utcnow
from .states import CallStatus, EventKind, RecordingStatus, Stage

log = logging.getLogger(__name__)

UPLOAD_PREFIX = "UP"
UPLOAD_DIRECTION = "upload"
UPLOAD_SOURCE = "upload"
MAX_SPEAKERS = 10  # AssemblyAI's speaker labels tell apart up to ten
MAX_TITLE = 255
# flask transcribe polls the engine at these pauses, growing, as it waits.
FIRST_POLL_SECONDS, LONGEST_POLL_SECONDS = 1.0, 5.0
MAX_WAIT_SECONDS = 60.0  # the longest it sleeps before trying a failed step again


@dataclass(frozen=True)
class UploadOptions:
    """What the uploader asks for; None leaves it to the settings or to the file."""

    language: str | None = None  # a language code, or "auto"
    speakers: int | None = None  # how many people speak (mono audio)
    channels: bool = False  # two-channel audio: one party per channel


class UploadError(ValueError):
    """An upload that cannot be transcribed; ``str()`` says why, for a person."""


def new_upload_id() -> str:
    return UPLOAD_PREFIX + uuid.uuid4().hex


def is_upload(sid: str) -> bool:
    return sid.startswith(UPLOAD_PREFIX)


def store_upload(
    chunks: Iterable[bytes],
    name: str,
    options: UploadOptions,
    *,
    uploaded_by: str | None,
    enqueue: bool = True,
) -> Recording:
    """Keep the file, check it is audio, and store it as a call to transcribe.

    Raises UploadError (the file is gone again) for a file that is not
    audio this service accepts. ``enqueue=False`` leaves the pipeline's
    steps to the caller (``flask transcribe`` runs them itself).
    """
    name = clean_name(name)
    extension = os.path.splitext(name)[1].lower()
    if extension not in audio.EXTENSIONS:
        raise UploadError(_unsupported(name))
    if options.speakers is not None and not 1 <= options.speakers <= MAX_SPEAKERS:
        raise UploadError(f"Speakers must be between 1 and {MAX_SPEAKERS}.")
    store = media.store()
    upload_id = new_upload_id()
    key = f"uploads/{upload_id}{extension}"
    store.save(chunks, key)
    try:
        found = audio.probe(store.path(key), name)
        channels = 2 if options.channels or found.channels == 2 else 1
        if options.channels and found.channels == 1:
            raise UploadError(f"{name} has one channel: --channels needs two-channel audio.")
        recording = _store_rows(upload_id, name, key, found, channels, options, uploaded_by)
    except audio.NotAudio as error:
        store.delete(key)
        raise UploadError(str(error)) from None
    except BaseException:
        db.session.rollback()
        store.delete(key)
        raise
    log.info("upload %s: %s, %d bytes, %d channel(s)", upload_id, found.format, found.size, channels)
    if enqueue:
        jobs.queue().process_recording(recording.id)
    return recording


def _store_rows(
    upload_id: str,
    name: str,
    key: str,
    found: audio.AudioFile,
    channels: int,
    options: UploadOptions,
    uploaded_by: str | None,
) -> Recording:
    seconds = round(found.duration) if found.duration is not None else None
    now = utcnow()
    call = Call(
        call_sid=upload_id,
        direction=UPLOAD_DIRECTION,
        title=name,
        uploaded_by=uploaded_by,
        status=CallStatus.COMPLETED,
        started_at=now,
        duration=seconds,
    )
    db.session.add(call)
    db.session.flush()
    recording = Recording(
        recording_sid=upload_id,
        call_id=call.id,
        account_sid="",
        status=RecordingStatus.COMPLETED,
        channels=channels,
        duration=seconds,
        source=UPLOAD_SOURCE,
        stage=Stage.PENDING,
        stage_changed_at=now,
        media_key=key,
        media_type=found.content_type,
        language=options.language,
        speakers=options.speakers,
    )
    db.session.add(recording)
    db.session.flush()
    record_event(EventKind.RECORDING, RecordingStatus.COMPLETED, Recording.id == recording.id)
    db.session.commit()
    return recording


def clean_name(name: str) -> str:
    """The file's own name, without folders, control characters or excess length."""
    base = os.path.basename(name.replace("\\", "/"))
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    if not base:
        raise UploadError("The file has no name.")
    stem, extension = os.path.splitext(base)
    return stem[: MAX_TITLE - len(extension)] + extension


def _unsupported(name: str) -> str:
    formats = ", ".join(audio.ACCEPTED[:-1]) + f" or {audio.ACCEPTED[-1]}"
    return f"{name}: not an audio file this service accepts ({formats})."


# -- flask transcribe: the pipeline's steps run here, without a worker -----------


def uploader(username: str | None) -> str:
    """Who an upload from the command line is recorded as: ``username``, or the first admin."""
    if username is not None:
        account = auth.find_account(username)
        if account is None:
            raise UploadError(f"There is no user {username}.")
        if Permission.EDIT not in ROLE_PERMISSIONS[account.role]:
            raise UploadError(f"{username} is a {account.role}, who may not upload audio.")
        return account.username
    first = db.session.scalar(select(User.username).where(User.role == Role.ADMIN).order_by(User.id))
    if first is None and auth.find_account(auth.ADMIN) is not None:
        first = auth.ADMIN
    if first is None:
        raise UploadError("There is no admin to record the upload as: pass --as USER.")
    return first


def transcribe_now(recording_id: int, *, progress: pipeline.Progress | None = None) -> None:
    """Deliver and submit the audio, as the worker would, retrying after each backoff here."""
    while stage_of(recording_id) in (Stage.PENDING, Stage.DELIVERED):
        try:
            pipeline.advance_recording(recording_id, progress=progress)
        except pipeline.RetryLater as later:
            time.sleep(min(later.delay, MAX_WAIT_SECONDS))
            continue
        if stage_of(recording_id) in (Stage.PENDING, Stage.DELIVERED):
            # Claimed by someone else (a worker), or waiting for a setting: not ours to loop on.
            return


def wait_for_transcript(recording_id: int, *, timeout: float | None = None) -> Stage:
    """Poll the engine while the transcript is submitted; returns the stage it ended at.

    That is transcribed or failed, or still submitted after ``timeout``; a
    recording not (yet) submitted is returned at once: there is nothing to poll.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    pause = FIRST_POLL_SECONDS
    while True:
        stage = stage_of(recording_id)
        if stage != Stage.SUBMITTED:
            return stage
        try:
            pipeline.fetch_transcript(recording_id)
        except pipeline.RetryLater as later:
            pause = max(pause, min(later.delay, MAX_WAIT_SECONDS))
        stage = stage_of(recording_id)
        if stage != Stage.SUBMITTED:
            return stage
        if deadline is not None and time.monotonic() + pause > deadline:
            return stage
        time.sleep(pause)
        pause = min(pause * 1.5, LONGEST_POLL_SECONDS)


def stage_of(recording_id: int) -> Stage:
    """Where the recording is now (read in a transaction of its own)."""
    stage = db.session.scalar(select(Recording.stage).where(Recording.id == recording_id))
    db.session.commit()
    return Stage(stage)
