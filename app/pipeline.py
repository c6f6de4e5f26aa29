"""From a completed recording to a stored transcript.

The database row is the truth; the queue only says "look at recording N
now". Every step claims the row with a conditional UPDATE, so two workers
(or a job and the reconciler) never work on one recording at once, and a
crashed worker's claim simply runs out. Every step is safe to run twice.

    pending --deliver--> delivered --submit--> submitted --fetch--> transcribed
       \\________________________\\__________________\\______> failed (a person's retry: back to that step)
"""

from __future__ import annotations

import logging
import random
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, or_, select, update

from . import jobs
from .calls import twilio
from .config import WEBHOOK_HEADER_NAME, NotConfigured, Settings, current_settings
from .models import (
    TRANSCRIPT_STATUS_RANK,
    Call,
    Recording,
    Stage,
    Transcript,
    db,
    insert_ignore,
    rank_below,
    stages_leading_to,
    utcnow,
)
from .providers import ProviderError
from .providers.assemblyai import AssemblyAI, TranscriptResult

log = logging.getLogger(__name__)

BACKOFF_BASE_SECONDS = 5.0
BACKOFF_CAP_SECONDS = 3600.0


def assemblyai() -> AssemblyAI:
    client: AssemblyAI | None = current_app.extensions["assemblyai"]
    if client is None:
        raise NotConfigured(["ASSEMBLYAI_API_KEY"], "transcription")
    return client


@dataclass(frozen=True)
class RetryLater(Exception):
    """The step failed in a way that may pass; run it again after ``delay`` seconds."""

    delay: float


def backoff_delay(attempt: int, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter, never sooner than the provider asked."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, attempt - 1))
    delay = random.uniform(ceiling / 2, ceiling)  # noqa: S311 (jitter, not a secret)
    return max(delay, retry_after or 0.0)


def transcript_params(recording: Work, audio_url: str, settings: Settings) -> dict[str, Any]:
    """The body of ``POST /v2/transcript`` for one recording."""
    params: dict[str, Any] = {
        "audio_url": audio_url,
        "speech_models": list(settings.assemblyai_speech_models),
        # Our own id rides along, so the webhook can be matched even when it
        # arrives before the answer to this very request was stored.
        "webhook_url": f"{settings.base_url}/assemblyai/webhook?recording={recording.id}",
        "webhook_auth_header_name": WEBHOOK_HEADER_NAME,
        "webhook_auth_header_value": settings.webhook_secret,
    }
    if recording.channels == 2:
        params["multichannel"] = True
    else:
        params["speaker_labels"] = True
    if settings.assemblyai_language == "auto":
        params["language_detection"] = True
    elif settings.assemblyai_language:
        params["language_code"] = settings.assemblyai_language
    return params


# -- claims ----------------------------------------------------------------


def _claim(recording_id: int, stages: tuple[str, ...]) -> str | None:
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
        )
        .values(claimed_until=now + timedelta(seconds=current_settings().job_timeout), claim_token=token)
    ).rowcount
    db.session.commit()
    return token if claimed else None


def _move(
    recording_id: int,
    token: str | None,
    to: str,
    *,
    from_: tuple[str, ...] | None = None,
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
    upload_url: str | None
    submit_started_at: datetime | None


def _load(recording_id: int) -> Work:
    recording = db.session.get(Recording, recording_id)
    assert recording is not None, "a claimed recording exists"
    work = Work(
        id=recording.id,
        recording_sid=recording.recording_sid,
        channels=recording.channels,
        upload_url=recording.upload_url,
        submit_started_at=recording.submit_started_at,
    )
    db.session.commit()
    return work


def advance_recording(recording_id: int) -> None:
    """Deliver and submit a recording, as far as it still needs. Raises RetryLater."""
    token = _claim(recording_id, (Stage.PENDING, Stage.DELIVERED))
    if token is None:
        return
    try:
        work = _load(recording_id)
        if work.upload_url is None:
            upload_url = _deliver(work)
            if not _move(recording_id, None, Stage.DELIVERED, upload_url=upload_url):
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


def _deliver(work: Work) -> str:
    """Make the audio readable by AssemblyAI; returns the URL to transcribe."""
    settings = current_settings()
    if settings.recording_delivery == "url":
        return twilio().media_url(work.recording_sid)
    client = assemblyai()
    with twilio().open_media(work.recording_sid, channels=work.channels) as media:
        upload_url = client.upload(media.chunks())
    log.info("recording %s: uploaded %d bytes to AssemblyAI", work.recording_sid, media.received)
    return upload_url


def _submit(work: Work, token: str) -> None:
    settings = current_settings()
    if not settings.base_url:
        raise NotConfigured(["BASE_URL"], "transcription webhooks")
    assert work.upload_url is not None
    client = assemblyai()
    if work.submit_started_at is not None:
        # An earlier attempt sent a submission and never stored the answer
        # (a crash, or a timeout): find that one rather than pay twice.
        earlier = client.find_by_audio_url(work.upload_url, since=work.submit_started_at)
        if earlier is not None:
            transcript_id, status = earlier
            log.info("recording %s: found submission %s (%s)", work.recording_sid, transcript_id, status)
            _submitted(work.id, token, transcript_id, "queued")
            if status in ("completed", "error"):
                # Its webhook may well have come and gone while nobody knew the id.
                jobs.queue().fetch_transcript(work.id)
            return
    db.session.execute(
        update(Recording)
        .where(Recording.id == work.id, Recording.claim_token == token)
        .values(submit_started_at=utcnow())
    )
    db.session.commit()
    result = client.submit(transcript_params(work, work.upload_url, settings))
    log.info("recording %s: submitted as transcript %s", work.recording_sid, result.id)
    _submitted(work.id, token, result.id, result.status)


def _submitted(recording_id: int, token: str | None, transcript_id: str, status: str) -> None:
    """Store the transcript id we got (or found) for a recording."""
    insert_ignore(
        Transcript,
        {
            "transcript_id": transcript_id,
            "recording_id": recording_id,
            "status": status if status in TRANSCRIPT_STATUS_RANK else "queued",
        },
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
        _submitted(recording_id, None, transcript_id, "queued")
    elif transcript.transcript_id != transcript_id:
        log.warning("webhook for recording %s names another transcript; ignored", recording_id)
        return False
    db.session.commit()
    jobs.queue().fetch_transcript(recording_id)
    return True


def fetch_transcript(recording_id: int) -> None:
    """Read the transcript from AssemblyAI and store it. Raises RetryLater."""
    transcript = db.session.scalar(select(Transcript).where(Transcript.recording_id == recording_id))
    transcript_id = transcript.transcript_id if transcript else None
    done = transcript is None or transcript.status in ("completed", "error")
    db.session.commit()  # no transaction open while AssemblyAI answers
    if done or transcript_id is None:
        return
    try:
        result = assemblyai().get(transcript_id)
    except ProviderError as error:
        _failed_attempt(recording_id, None, error)
        return
    store_transcript(recording_id, result)


def store_transcript(recording_id: int, result: TranscriptResult) -> None:
    if result.status not in TRANSCRIPT_STATUS_RANK:
        return
    values: dict[str, Any] = {"status": result.status}
    if result.status == "completed":
        values.update(
            text=result.text or "",
            words=result.words,
            utterances=result.utterances,
            confidence=result.confidence,
            audio_duration=result.audio_duration,
            language_code=result.language_code,
            speech_model_used=result.speech_model_used,
            completed_at=utcnow(),
        )
    elif result.status == "error":
        values.update(error=(result.error or "unknown error")[:2000], completed_at=utcnow())
    db.session.execute(
        update(Transcript)
        .where(
            Transcript.recording_id == recording_id,
            Transcript.transcript_id == result.id,
            rank_below(Transcript.status, TRANSCRIPT_STATUS_RANK, result.status),
        )
        .values(**values)
    )
    db.session.commit()
    if result.status == "completed":
        _move(recording_id, None, Stage.TRANSCRIBED, last_error=None)
        log.info("recording %s: transcript stored", recording_id)
    elif result.status == "error":
        _move(
            recording_id, None, Stage.FAILED, last_error=f"AssemblyAI could not transcribe it: {result.error}"
        )


# -- reconciliation ----------------------------------------------------------


def reconcile(now: datetime | None = None) -> dict[str, int]:
    """Move on every recording that waited past its deadline; the queue may have lost it.

    Returns how many recordings were sent to each job, for the log and tests.
    """
    now = now or utcnow()
    queue = jobs.queue()
    waiting = queue.huey.pending_count()
    if waiting:
        # Whatever looks stuck may just be waiting its turn; adding to a
        # backlog only makes it longer. Anything lost is found once it drains.
        log.info("reconcile: %d jobs still queued; looking again next round", waiting)
        return {"advance": 0, "poll": 0, "recover": 0}
    deadline = now - timedelta(seconds=current_settings().reconcile_interval)
    waited = func.coalesce(Recording.next_attempt_at, Recording.stage_changed_at) < deadline
    free = or_(Recording.claimed_until.is_(None), Recording.claimed_until < now)
    stuck = db.session.scalars(
        select(Recording.id).where(Recording.stage.in_((Stage.PENDING, Stage.DELIVERED)), free, waited)
    ).all()
    unheard = db.session.scalars(select(Recording.id).where(Recording.stage == Stage.SUBMITTED, waited)).all()
    # Calls that ended a while ago without any recording callback.
    silent = db.session.scalars(
        select(Call.id).where(
            Call.status == "completed",
            Call.recordings_checked_at.is_(None),
            Call.updated_at < deadline,
            ~select(Recording.id).where(Recording.call_id == Call.id).exists(),
        )
    ).all()
    db.session.commit()
    for recording_id in stuck:
        queue.process_recording(recording_id)
    for recording_id in unheard:
        queue.fetch_transcript(recording_id)
    for call_id in silent:
        queue.recover_recordings(call_id)
    counts = {"advance": len(stuck), "poll": len(unheard), "recover": len(silent)}
    if any(counts.values()):
        log.info("reconcile: %(advance)d to advance, %(poll)d to poll, %(recover)d calls to check", counts)
    return counts


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
    if transcript is not None and transcript.status != "error":
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
