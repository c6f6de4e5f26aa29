"""Background jobs on Huey: SQLite storage by default, Redis with REDIS_URL.

Jobs take ids, reload rows, and are idempotent: the database row is the
truth, and a job only says "look at recording N now". A consumer killed
mid-task loses that task, and the periodic reconciliation finds the row.
Callers enqueue only after the commit that made the row visible.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import Flask, current_app
from huey import Huey, RedisHuey, SqliteHuey

log = logging.getLogger(__name__)


class Jobs:
    """The app's queue and its tasks. ``queue()`` finds it from a request or job."""

    def __init__(self, app: Flask, huey: Huey) -> None:
        self.huey = huey
        self._app = app
        settings = app.extensions["settings"]

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

        interval = settings.reconcile_interval

        def every_interval(moment: datetime) -> bool:
            # Huey looks at periodic tasks once a minute, so the interval
            # counts in whole minutes.
            minutes = max(1, interval // 60)
            return int(moment.timestamp() // 60) % minutes == 0

        @huey.periodic_task(every_interval, name="reconcile")
        @in_app
        def reconcile() -> None:
            """Find recordings that waited past their deadline and move them on."""
            from .pipeline import reconcile as run_reconcile

            run_reconcile()

        self._process = process_recording
        self._fetch = fetch_transcript
        self.reconcile = reconcile

    def process_recording(self, recording_id: int) -> None:
        self._process(recording_id)

    def fetch_transcript(self, recording_id: int) -> None:
        self._fetch(recording_id)


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


def init_app(app: Flask) -> None:
    app.extensions["jobs"] = Jobs(app, create_huey(app))


def queue() -> Jobs:
    jobs: Jobs = current_app.extensions["jobs"]
    return jobs
