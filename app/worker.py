"""The worker: the queue's task bodies, the consumer that runs them, and the reconciler.

``init_app`` defines the bodies of :data:`app.jobs.TASKS` on the app's
queue; ``flask worker`` runs :func:`run`. Each body takes an id, runs one
service function in an app context, and puts a step that may pass later
back on the queue with its backoff delay.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from flask import Flask
from sqlalchemy import func, or_, select

from . import calls, deletion, jobs, pipeline
from .config import current_settings
from .models import Call, Recording, db, utcnow
from .states import CallStatus, Stage

log = logging.getLogger(__name__)


def _retried(name: str, step: Callable[[int], object]) -> Callable[[int], None]:
    """A task body: run the step; one that may pass later goes back on the queue, after its delay."""

    def body(key: int) -> None:
        try:
            step(key)
        except pipeline.RetryLater as later:
            jobs.queue().again(name, key, delay=later.delay)

    body.__name__ = name
    body.__doc__ = step.__doc__
    return body


BODIES: dict[str, Callable[[int], object]] = {
    # Deliver a recording's audio to the engine and submit it.
    jobs.PROCESS_RECORDING: _retried(jobs.PROCESS_RECORDING, pipeline.advance_recording),
    # Read a finished transcript from the engine and store it.
    jobs.FETCH_TRANSCRIPT: _retried(jobs.FETCH_TRANSCRIPT, pipeline.fetch_transcript),
    # Ask Twilio for the recordings of a call whose callback never came.
    jobs.RECOVER_RECORDINGS: calls.recover_recordings,
    # Delete a call marked for deletion, everywhere.
    jobs.DELETE_CALL: _retried(jobs.DELETE_CALL, deletion.delete_call),
    # Delete a transcribed recording at Twilio (DELETE_TWILIO_RECORDING_AFTER).
    jobs.FORGET_TWILIO_RECORDING: _retried(jobs.FORGET_TWILIO_RECORDING, deletion.forget_twilio_recording),
}


def init_app(app: Flask) -> None:
    queue: jobs.Jobs = app.extensions["jobs"]
    for name, body in BODIES.items():
        queue.define(name, _in_app_context(app, body))


def _in_app_context(app: Flask, body: Callable[[int], object]) -> Callable[[int], None]:
    def run(key: int) -> None:
        with app.app_context():
            body(key)

    run.__name__ = body.__name__
    run.__doc__ = body.__doc__
    return run


# -- reconciliation ----------------------------------------------------------


def reconcile(now: datetime | None = None) -> dict[str, int]:
    """Move on every recording that waited past its deadline; the queue may have lost it.

    Returns how many recordings were sent to each job, for the log and tests.
    """
    now = now or utcnow()
    queue = jobs.queue()
    waiting = queue.backlog()
    if waiting:
        # Whatever looks stuck may just be waiting its turn; adding to a
        # backlog only makes it longer. Anything lost is found once it drains.
        log.info("reconcile: %d jobs still queued; looking again next round", waiting)
        return {"advance": 0, "poll": 0, "recover": 0, "delete": 0, "forget": 0, "expire": 0}
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
            Call.status == CallStatus.COMPLETED,
            Call.recordings_checked_at.is_(None),
            Call.updated_at < deadline,
            ~select(Recording.id).where(Recording.call_id == Call.id).exists(),
        )
    ).all()
    deleting = deletion.stuck(now, timedelta(seconds=current_settings().reconcile_interval))
    db.session.commit()
    for call_id in deleting:
        queue.delete_call(call_id)
    for recording_id in stuck:
        queue.process_recording(recording_id)
    for recording_id in unheard:
        queue.fetch_transcript(recording_id)
    for call_id in silent:
        queue.recover_recordings(call_id)
    counts = {"advance": len(stuck), "poll": len(unheard), "recover": len(silent), "delete": len(deleting)}
    counts.update(deletion.sweep(now, current_settings()))
    if any(counts.values()):
        log.info(
            "reconcile: %(advance)d to advance, %(poll)d to poll, %(recover)d calls to check, "
            "%(delete)d deletions to finish, %(forget)d recordings to delete at Twilio, "
            "%(expire)d calls past RETENTION_DAYS",
            counts,
        )
    return counts


# -- the consumer --------------------------------------------------------------


def run(app: Flask, *, threads: int, reconcile_here: bool) -> None:
    """Run the Huey consumer until stopped, and, if asked, the reconciliation.

    Reconciliation runs on a timer thread of its own, every
    RECONCILE_INTERVAL seconds, starting at once: Huey's periodic tasks only
    tick once a minute. Run it in one worker process (the others take
    ``--no-periodic``); two would only do the same checks twice.
    """
    queue: jobs.Jobs = app.extensions["jobs"]
    consumer = queue.huey.create_consumer(
        workers=threads,
        periodic=False,
        worker_type="thread",
        # Redis hands a job to a waiting worker at once. An SQLite queue is
        # polled: every 20 ms after a job, backing off to every 100 ms when
        # idle (Huey's default backs off to 10 s), since a recording needs
        # several jobs in a row and each poll is one indexed read.
        initial_delay=0.02,
        max_delay=0.1,
    )
    stop = threading.Event()
    if reconcile_here:
        interval = app.extensions["settings"].reconcile_interval
        timer = threading.Thread(
            target=_reconcile_every, args=(app, interval, stop), name="reconciler", daemon=True
        )
        timer.start()
    try:
        consumer.run()
    finally:
        stop.set()


def _reconcile_every(app: Flask, interval: float, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            with app.app_context():
                reconcile()
        except Exception:
            # A database that is down now may be back next time.
            log.exception("reconciliation failed; trying again in %s s", interval)
        stop.wait(interval)
