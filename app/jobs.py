"""The queue: Huey on SQLite by default, on Redis with REDIS_URL.

This module is the queue and its enqueue methods, and imports nothing from
the rest of the app. The task bodies live in :mod:`app.worker`, which
defines them here when the app is built.

Jobs take ids, reload rows, and are idempotent: the database row is the
truth, and a job only says "look at recording N now". A consumer killed
mid-task loses that task, and the periodic reconciliation finds the row.
Callers enqueue only after the commit that made the row visible.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable

from flask import Flask, current_app
from huey import Huey, RedisHuey
from huey.api import TaskWrapper
from huey.storage import SqliteStorage

PROCESS_RECORDING = "process_recording"
FETCH_TRANSCRIPT = "fetch_transcript"
RECOVER_RECORDINGS = "recover_recordings"
DELETE_CALL = "delete_call"
FORGET_TWILIO_RECORDING = "forget_twilio_recording"
TASKS = (PROCESS_RECORDING, FETCH_TRANSCRIPT, RECOVER_RECORDINGS, DELETE_CALL, FORGET_TWILIO_RECORDING)


class Jobs:
    """The app's queue. ``queue()`` finds it from a request, a job or a command."""

    def __init__(self, huey: Huey) -> None:
        self.huey = huey
        self._tasks: dict[str, TaskWrapper] = {}

    def define(self, name: str, body: Callable[[int], None]) -> None:
        """Register the body of task ``name`` (app.worker does, for each of TASKS).

        Huey names a task by the module of its function: defined here, every
        task is ``app.jobs.<name>``, the name queued messages carry, so jobs
        waiting in a deployed queue still run after the worker is upgraded.
        """
        assert name in TASKS, f"unknown task {name}"

        def task(key: int) -> None:
            body(key)

        task.__doc__ = body.__doc__
        self._tasks[name] = self.huey.task(name=name)(task)

    def process_recording(self, recording_id: int, *, delay: float | None = None) -> None:
        """Deliver a recording's audio to the engine and submit it."""
        self._enqueue(PROCESS_RECORDING, recording_id, delay)

    def fetch_transcript(self, recording_id: int, *, delay: float | None = None) -> None:
        """Read a finished transcript from the engine and store it."""
        self._enqueue(FETCH_TRANSCRIPT, recording_id, delay)

    def recover_recordings(self, call_id: int) -> None:
        """Ask Twilio for the recordings of a call whose callback never came."""
        self._enqueue(RECOVER_RECORDINGS, call_id, None)

    def delete_call(self, call_id: int, *, delay: float | None = None) -> None:
        """Delete a call marked for deletion, everywhere (app.deletion)."""
        self._enqueue(DELETE_CALL, call_id, delay)

    def forget_twilio_recording(self, recording_id: int, *, delay: float | None = None) -> None:
        """Delete a transcribed recording at Twilio (DELETE_TWILIO_RECORDING_AFTER)."""
        self._enqueue(FORGET_TWILIO_RECORDING, recording_id, delay)

    def again(self, name: str, key: int, *, delay: float) -> None:
        """Put task ``name`` for ``key`` back on the queue, to run after ``delay`` seconds."""
        self._enqueue(name, key, delay)

    def backlog(self) -> int:
        """How many jobs wait to run now (scheduled retries not counted)."""
        return int(self.huey.pending_count())

    def _enqueue(self, name: str, key: int, delay: float | None) -> None:
        task = self._tasks[name]
        if delay:
            task.schedule((key,), delay=delay)
        else:
            task(key)


class QueueFile(SqliteStorage):
    """Huey's SQLite queue, in WAL mode with ``synchronous=NORMAL``, as the app's own database.

    Huey syncs each enqueue to disk by default (``FULL``; its ``fsync``
    option offers that or no syncing at all), which made an enqueue cost
    more than the webhook's own transaction. With ``NORMAL`` a committed job
    survives any crash of the process and stays consistent; only a power
    cut can lose the last ones, and the periodic reconciliation finds their
    recordings again, as it finds those of a worker killed mid-job.
    """

    def _create_connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection = super()._create_connection()
        connection.execute("pragma synchronous=NORMAL")
        return connection


def create_huey(*, redis_url: str | None, name: str, folder: str) -> Huey:
    if redis_url:
        return RedisHuey(name, url=redis_url, results=False)
    os.makedirs(folder, exist_ok=True)
    return Huey(
        name, storage_class=QueueFile, filename=os.path.join(folder, "queue.db"), timeout=15, results=False
    )


def init_app(app: Flask, *, redis_url: str | None, name: str) -> None:
    app.extensions["jobs"] = Jobs(create_huey(redis_url=redis_url, name=name, folder=app.instance_path))


def queue() -> Jobs:
    jobs: Jobs = current_app.extensions["jobs"]
    return jobs
