"""Background jobs on Huey: SQLite storage by default, Redis with REDIS_URL.

Jobs take ids, reload rows, and are idempotent: the database row is the
truth, and a job only says "look at recording N now". A consumer killed
mid-task loses that task, and the periodic reconciliation finds the row.
Callers enqueue only after the commit that made the row visible.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app
from huey import Huey, RedisHuey, SqliteHuey

log = logging.getLogger(__name__)


class Jobs:
    """The app's queue and its tasks. ``queue()`` finds it from a request or job."""

    def __init__(self, app: Flask, huey: Huey) -> None:
        self.huey = huey
        self._app = app

        def in_app(step: Callable[..., None]) -> Callable[..., None]:
            def run(*args: Any) -> None:
                with app.app_context():
                    step(*args)

            run.__name__ = step.__name__
            run.__doc__ = step.__doc__
            return run

        @huey.task(name="process_recording")
        @in_app
        def process_recording(recording_id: int) -> None:
            """Deliver a recording's audio to AssemblyAI and submit it."""
            from .pipeline import RetryLater, advance_recording

            try:
                advance_recording(recording_id)
            except RetryLater as later:
                self._process.schedule((recording_id,), delay=later.delay)

        @huey.task(name="fetch_transcript")
        @in_app
        def fetch_transcript(recording_id: int) -> None:
            """Read a finished transcript from AssemblyAI and store it."""
            from .pipeline import RetryLater
            from .pipeline import fetch_transcript as fetch

            try:
                fetch(recording_id)
            except RetryLater as later:
                self._fetch.schedule((recording_id,), delay=later.delay)

        @huey.task(name="recover_recordings")
        @in_app
        def recover_recordings(call_id: int) -> None:
            """Ask Twilio for the recordings of a call whose callback never came."""
            from .calls import recover_recordings as recover

            recover(call_id)

        self._process = process_recording
        self._fetch = fetch_transcript
        self._recover = recover_recordings

    def process_recording(self, recording_id: int) -> None:
        self._process(recording_id)

    def fetch_transcript(self, recording_id: int) -> None:
        self._fetch(recording_id)

    def recover_recordings(self, call_id: int) -> None:
        self._recover(call_id)


def create_huey(app: Flask) -> Huey:
    settings = app.extensions["settings"]
    if settings.redis_url:
        return RedisHuey(settings.queue_name, url=settings.redis_url, results=False)
    os.makedirs(app.instance_path, exist_ok=True)
    return SqliteHuey(
        settings.queue_name,
        filename=os.path.join(app.instance_path, "queue.db"),
        timeout=15,
        results=False,
    )


def run_worker(app: Flask, *, threads: int, reconcile: bool) -> None:
    """Run the Huey consumer until stopped, and, if asked, the reconciliation.

    Reconciliation runs on a timer thread of its own, every
    RECONCILE_INTERVAL seconds, starting at once: Huey's periodic tasks only
    tick once a minute. Run it in one worker process (the others take
    ``--no-periodic``); two would only do the same checks twice.
    """
    consumer = queue().huey.create_consumer(
        workers=threads,
        periodic=False,
        worker_type="thread",
        # Look at an idle queue at least every second (Huey's default backs
        # off to 10 s): a recording needs several jobs in a row.
        max_delay=1.0,
    )
    stop = threading.Event()
    if reconcile:
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
    from .pipeline import reconcile

    while not stop.is_set():
        try:
            with app.app_context():
                reconcile()
        except Exception:
            # A database that is down now may be back next time.
            log.exception("reconciliation failed; trying again in %s s", interval)
        stop.wait(interval)


def init_app(app: Flask) -> None:
    app.extensions["jobs"] = Jobs(app, create_huey(app))


def queue() -> Jobs:
    jobs: Jobs = current_app.extensions["jobs"]
    return jobs
