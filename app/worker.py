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

from . import calls, jobs, pipeline
from .config import current_settings
from .models import Call, Recording, db, utcnow
from .states import CallStatus, Stage

log = logging.getLogger(__name__)


def process_recording(recording_id: int) -> None:
    """Deliver a recording's audio to the engine and submit it."""
    try:
        pipeline.advance_recording(recording_id)
    except pipeline.RetryLater as later:
        jobs.queue().process_recording(recording_id, delay=later.delay)


def fetch_transcript(recording_id: int) -> None:
    """Read a finished transcript from the engine and store it."""
    try:
        pipeline.fetch_transcript(recording_id)
    except pipeline.RetryLater as later:
        jobs.queue().fetch_transcript(recording_id, delay=later.delay)


def recover_recordings(call_id: int) -> None:
    """Ask Twilio for the recordings of a call whose callback never came."""
    calls.recover_recordings(call_id)


BODIES: dict[str, Callable[[int], None]] = {
    jobs.PROCESS_RECORDING: process_recording,
    jobs.FETCH_TRANSCRIPT: fetch_transcript,
    jobs.RECOVER_RECORDINGS: recover_recordings,
}


def init_app(app: Flask) -> None:
    queue: jobs.Jobs = app.extensions["jobs"]
    for name, body in BODIES.items():
        queue.define(name, _in_app_context(app, body))


def _in_app_context(app: Flask, body: Callable[[int], None]) -> Callable[[int], None]:
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
            Call.status == CallStatus.COMPLETED,
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
