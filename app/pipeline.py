"""From a completed recording to a stored transcript.

The database row is the truth; the queue only says "look at recording N
now". Every step claims the row with a conditional UPDATE, so two workers
(or a job and the reconciler) never work on one recording at once, and a
crashed worker's claim simply runs out. Every step is safe to run twice.

    pending --deliver--> delivered --submit--> submitted --fetch--> transcribed
       \\________________________\\__________________\\______> failed (a person's retry: back to that step)

The steps speak to a transcription engine only through the seam in
:mod:`app.providers.transcription`: which audio, how many channels, which
language, where to call back.
"""

from __future__ import annotations

import logging
import random
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update

from . import callbacks, clients, jobs, media, search
from .config import WEBHOOK_HEADER_NAME, NotConfigured, Settings, current_settings
from .models import Call, Recording, Transcript, db, insert_ignore, move_forward, record_event, utcnow
from .providers import ProviderError
from .providers.transcription import (
    AudioStream,
    AudioURL,
    Callback,
    TranscriptionOptions,
    TranscriptResult,
)
from .states import FINAL_TRANSCRIPT_STATUSES, EventKind, Stage, TranscriptStatus, stages_leading_to

log = logging.getLogger(__name__)

BACKOFF_BASE_SECONDS = 5.0
# Told the size of each chunk of audio as it goes to the engine.
Progress = Callable[[int], None]
BACKOFF_CAP_SECONDS = 3600.0


@dataclass(frozen=True)
class RetryLater(Exception):
    """The step failed in a way that may pass; run it again after ``delay`` seconds."""

    delay: float


def backoff_delay(attempt: int, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter, never sooner than the provider asked."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, attempt - 1))
    delay = random.uniform(ceiling / 2, ceiling)  # noqa: S311 (jitter, not a secret)
    return max(delay, retry_after or 0.0)


def transcription_options(work: Work, settings: Settings) -> TranscriptionOptions:
    """What to ask of the engine for one recording.

    A call's recording needs BASE_URL for the engine's webhook. An uploaded
    file does not: without BASE_URL its result is polled for (by
    ``flask transcribe`` as it waits, else by the reconciliation).
    """
    callback = None
    if settings.base_url:
        # Our own id rides along, so the webhook can be matched even when it
        # arrives before the answer to this very request was stored.
        url = callbacks.public_url(settings.base_url, callbacks.ASSEMBLYAI_WEBHOOK, recording=work.id)
        callback = Callback(url, WEBHOOK_HEADER_NAME, settings.webhook_secret)
    elif work.media_key is None:
        raise NotConfigured(["BASE_URL"], "transcription webhooks")
    return TranscriptionOptions(
        channels=work.channels,
        language=work.language or settings.assemblyai_language,
        models=settings.assemblyai_speech_models,
        callback=callback,
        speakers=work.speakers,
        redact=settings.redact_pii_policies if settings.redact_pii else (),
    )


# -- claims ----------------------------------------------------------------


def _claim(recording_id: int, stages: tuple[Stage, ...]) -> str | None:
    """Take the recording for one worker, if it is in ``stages``, free and due."""
    now = utcnow()
    token = secrets.token_hex(8)
    claimed = db.session.execute(
        update(Recording)
        .where(
            Recording.id == recording_id,
            Recording.stage.in_(stages),
            or_(Recording.claimed_until.is_(None), Recording.claimed_until < now),
            or_(Recording.next_attempt_at.is_(None), Recording.next_attempt_at <= now),
            # A call being deleted is not transcribed (nor paid for) again.
            Recording.call_id.not_in(select(Call.id).where(Call.deleting_at.is_not(None))),
        )
        .values(claimed_until=now + timedelta(seconds=current_settings().job_timeout), claim_token=token)
    ).rowcount
    db.session.commit()
    return token if claimed else None


def _move(
    recording_id: int,
    token: str | None,
    to: Stage,
    *,
    from_: tuple[Stage, ...] | None = None,
    **values: Any,
) -> bool:
    """Move the recording to stage ``to``, if that move is allowed from where it is."""
    allowed = stages_leading_to(to)
    if from_ is not None:
        assert set(from_) <= set(allowed), f"{from_} -> {to} is not a move the pipeline makes"
        allowed = from_
    conditions = [Recording.id == recording_id, Recording.stage.in_(allowed)]
    if token is not None:
        conditions.append(Recording.claim_token == token)
    moved = db.session.execute(
        update(Recording)
        .where(*conditions)
        .values(
            stage=to,
            stage_changed_at=utcnow(),
            claimed_until=None,
            claim_token=None,
            attempts=0,
            next_attempt_at=None,
            **values,
        )
    ).rowcount
    if moved:
        kind = EventKind.RETRY if allowed == (Stage.FAILED,) else EventKind.STAGE
        record_event(kind, to, Recording.id == recording_id)
    db.session.commit()
    return bool(moved)


def _release(recording_id: int, token: str) -> None:
    db.session.execute(
        update(Recording)
        .where(Recording.id == recording_id, Recording.claim_token == token)
        .values(claimed_until=None, claim_token=None)
    )
    db.session.commit()


def _failed_attempt(recording_id: int, token: str | None, error: ProviderError) -> None:
    """Count a failed attempt: retry later with backoff, or give up visibly."""
    db.session.rollback()
    recording = db.session.get(Recording, recording_id)
    if recording is None:
        return
    attempts = recording.attempts + 1
    limit = current_settings().job_max_attempts
    if not error.retryable or attempts >= limit:
        reason = str(error) if not error.retryable else f"{error} (gave up after {attempts} attempts)"
        log.warning("recording %s failed: %s", recording.recording_sid, reason)
        _move(recording_id, token, Stage.FAILED, last_error=reason)
        return
    delay = backoff_delay(attempts, error.retry_after)
    conditions = [Recording.id == recording_id]
    if token is not None:
        conditions.append(Recording.claim_token == token)
    db.session.execute(
        update(Recording)
        .where(*conditions)
        .values(
            attempts=attempts,
            next_attempt_at=utcnow() + timedelta(seconds=delay),
            last_error=str(error),
            claimed_until=None,
            claim_token=None,
        )
    )
    db.session.commit()
    log.info(
        "recording %s: attempt %d failed (%s); retrying in %.0f s",
        recording.recording_sid,
        attempts,
        error,
        delay,
    )
    raise RetryLater(delay)


# -- the steps ---------------------------------------------------------------


@dataclass(frozen=True)
class Work:
    """What a step needs to know of a recording.

    Read in a transaction that ends before any provider is called: on
    SQLite an open transaction holds the write lock, and every webhook and
    worker would wait for a slow upload.
    """

    id: int
    recording_sid: str
    channels: int
    engine: str | None
    upload_url: str | None
    submit_started_at: datetime | None
    media_key: str | None  # our own copy of the audio (an upload), else Twilio has it
    language: str | None
    speakers: int | None


def _load(recording_id: int) -> Work:
    recording = db.session.get(Recording, recording_id)
    assert recording is not None, "a claimed recording exists"
    work = Work(
        id=recording.id,
        recording_sid=recording.recording_sid,
        channels=recording.channels,
        engine=recording.engine,
        upload_url=recording.upload_url,
        submit_started_at=recording.submit_started_at,
        media_key=recording.media_key,
        language=recording.language,
        speakers=recording.speakers,
    )
    db.session.commit()
    return work


def advance_recording(recording_id: int, *, progress: Progress | None = None) -> None:
    """Deliver and submit a recording, as far as it still needs. Raises RetryLater.

    ``progress`` is told of each chunk of audio sent on (``flask transcribe``'s bar).
    """
    token = _claim(recording_id, (Stage.PENDING, Stage.DELIVERED))
    if token is None:
        return
    try:
        work = _load(recording_id)
        if work.upload_url is None:
            engine, audio_ref, kept = _deliver(work, progress)
            copy = {"media_key": kept, "media_type": "audio/wav"} if kept else {}
            if not _move(recording_id, None, Stage.DELIVERED, upload_url=audio_ref, engine=engine, **copy):
                return
            # _move let go of the claim; take it again for the next step.
            token = _claim(recording_id, (Stage.DELIVERED,))
            if token is None:
                return
            work = _load(recording_id)
        _submit(work, token)
    except ProviderError as error:
        _failed_attempt(recording_id, token, error)
    except NotConfigured as error:
        _release(recording_id, token)
        log.warning("recording %s waits: %s", recording_id, error)
    except BaseException:
        _release(recording_id, token)
        raise


def _deliver(work: Work, progress: Progress | None = None) -> tuple[str, str, str | None]:
    """Make the audio readable by the engine.

    Returns the engine's name, its reference to the audio, and the key of
    our own copy when one was kept on the way (KEEP_AUDIO).
    """
    settings = current_settings()
    engine = clients.engine()
    if work.media_key is not None:
        chunks = media.store().chunks(work.media_key)
        audio_ref = engine.prepare(AudioStream(_told(chunks, progress) if progress else chunks))
        log.info("recording %s: uploaded our copy to %s", work.recording_sid, engine.name)
        return engine.name, audio_ref, None
    twilio = clients.twilio()
    if settings.recording_delivery == "url":
        return engine.name, engine.prepare(AudioURL(twilio.media_url(work.recording_sid))), None
    kept = f"recordings/{work.recording_sid}.wav" if settings.keep_audio else None
    with twilio.open_media(work.recording_sid, channels=work.channels) as download:
        chunks = download.chunks()
        audio_ref = engine.prepare(AudioStream(media.store().tee(chunks, kept) if kept else chunks))
    log.info("recording %s: uploaded %d bytes to %s", work.recording_sid, download.received, engine.name)
    return engine.name, audio_ref, kept


def _told(chunks: Iterable[bytes], progress: Progress) -> Iterator[bytes]:
    for chunk in chunks:
        yield chunk
        progress(len(chunk))


def _submit(work: Work, token: str) -> None:
    options = transcription_options(work, current_settings())
    assert work.upload_url is not None
    engine = clients.engine(work.engine)
    if work.submit_started_at is not None:
        # An earlier attempt sent a submission and never stored the answer
        # (a crash, or a timeout): find that one rather than pay twice.
        earlier = engine.find_submission(work.upload_url, since=work.submit_started_at)
        if earlier is not None:
            log.info("recording %s: found submission %s (%s)", work.recording_sid, earlier.id, earlier.status)
            _submitted(work.id, token, earlier.id, TranscriptStatus.QUEUED)
            if earlier.status in FINAL_TRANSCRIPT_STATUSES:
                # Its webhook may well have come and gone while nobody knew the id.
                jobs.queue().fetch_transcript(work.id)
            return
    db.session.execute(
        update(Recording)
        .where(Recording.id == work.id, Recording.claim_token == token)
        .values(submit_started_at=utcnow())
    )
    db.session.commit()
    submission = engine.submit(work.upload_url, options)
    log.info("recording %s: submitted as transcript %s", work.recording_sid, submission.id)
    _submitted(work.id, token, submission.id, submission.status)


def _submitted(recording_id: int, token: str | None, transcript_id: str, status: TranscriptStatus) -> None:
    """Store the transcript id we got (or found) for a recording."""
    insert_ignore(
        Transcript,
        {"transcript_id": transcript_id, "recording_id": recording_id, "status": status},
        "recording_id",
    )
    _move(recording_id, token, Stage.SUBMITTED, from_=(Stage.DELIVERED,))


def transcript_webhook(recording_id: int, transcript_id: str) -> bool:
    """AssemblyAI says a transcript is done. Returns whether a fetch was queued.

    An id we never submitted is ignored. The one exception is a recording
    whose submission is in flight: the webhook can beat the answer of our
    own POST, and then it is how we learn the id.
    """
    recording = db.session.get(Recording, recording_id)
    if recording is None:
        log.warning("webhook for unknown recording %s ignored", recording_id)
        return False
    transcript = recording.transcript
    if transcript is None:
        in_flight = recording.stage == Stage.DELIVERED and recording.submit_started_at is not None
        if not in_flight:
            log.warning("webhook for recording %s names a transcript we never submitted", recording_id)
            return False
        _submitted(recording_id, None, transcript_id, TranscriptStatus.QUEUED)
    elif transcript.transcript_id != transcript_id:
        log.warning("webhook for recording %s names another transcript; ignored", recording_id)
        return False
    db.session.commit()
    jobs.queue().fetch_transcript(recording_id)
    return True


def fetch_transcript(recording_id: int) -> None:
    """Read the transcript from its engine and store it. Raises RetryLater."""
    found = db.session.execute(
        select(Transcript.transcript_id, Transcript.status, Recording.engine)
        .join(Recording, Recording.id == Transcript.recording_id)
        .join(Call, Call.id == Recording.call_id)
        .where(Transcript.recording_id == recording_id, Call.deleting_at.is_(None))
    ).first()
    db.session.commit()  # no transaction open while the engine answers
    if found is None or found.status in FINAL_TRANSCRIPT_STATUSES:
        return
    try:
        result = clients.engine(found.engine).fetch(found.transcript_id)
    except ProviderError as error:
        _failed_attempt(recording_id, None, error)
        return
    store_transcript(recording_id, result)


def store_transcript(recording_id: int, result: TranscriptResult) -> None:
    values: dict[str, Any] = {}
    if result.status == TranscriptStatus.COMPLETED:
        values.update(
            text=result.text or "",
            words=[asdict(w) for w in result.words] or None,
            utterances=[asdict(u) for u in result.utterances] or None,
            confidence=result.confidence,
            audio_duration=result.duration,
            language_code=result.language,
            speech_model_used=result.model,
            completed_at=utcnow(),
        )
    elif result.status == TranscriptStatus.ERROR:
        values.update(error=(result.error or "unknown error")[:2000], completed_at=utcnow())
    moved = move_forward(
        Transcript.status,
        result.status,
        Transcript.recording_id == recording_id,
        Transcript.transcript_id == result.id,
        **values,
    )
    if moved and result.status == TranscriptStatus.COMPLETED:
        # Found by search from the moment it is stored: the same transaction.
        call_id = db.session.scalar(select(Recording.call_id).where(Recording.id == recording_id))
        search.reindex(db.session.connection(), call_id)
    db.session.commit()
    if result.status == TranscriptStatus.COMPLETED:
        _move(recording_id, None, Stage.TRANSCRIBED, last_error=None)
        log.info("recording %s: transcript stored", recording_id)
        if current_settings().delete_twilio_recording_after == "transcribed":
            jobs.queue().forget_twilio_recording(recording_id)
    elif result.status == TranscriptStatus.ERROR:
        _move(
            recording_id, None, Stage.FAILED, last_error=f"AssemblyAI could not transcribe it: {result.error}"
        )


def retry_failed(recording_id: int) -> bool:
    """A person asks to try a failed recording again, from where it stopped.

    A transcript AssemblyAI still has (only our fetching failed) is fetched
    again rather than paid for twice; one that AssemblyAI failed is dropped
    and the audio submitted anew.
    """
    recording = db.session.get(Recording, recording_id)
    if recording is None or recording.stage != Stage.FAILED:
        return False
    transcript = recording.transcript
    if transcript is not None and transcript.status != TranscriptStatus.ERROR:
        to = Stage.SUBMITTED
    else:
        if transcript is not None:
            db.session.delete(transcript)
            db.session.flush()
        to = Stage.DELIVERED if recording.upload_url else Stage.PENDING
    if not _move(recording_id, None, to, from_=(Stage.FAILED,), last_error=None, submit_started_at=None):
        return False
    if to == Stage.SUBMITTED:
        jobs.queue().fetch_transcript(recording_id)
    else:
        jobs.queue().process_recording(recording_id)
    return True
