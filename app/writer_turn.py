"""Turns at SQLite's write lock, taken by waiting on a lock, not by polling SQLite.

SQLite lets one writer in at a time, and one that finds the lock taken
sleeps in its busy handler in steps of up to 100 ms, whether the lock came
free a moment later or not: under a burst the lock sits idle while the
waiters sleep, which is where the webhooks' p99 of a second came from. A
``WriterTurn`` makes the writers queue instead, and the next one goes the
moment the lock is free:

* the threads of one process take turns through a ``threading.Lock``;
* the processes on one database file (gunicorn's workers, the queue worker,
  a ``flask`` command) through an ``flock`` on a file beside it,
  ``<database>-writer``, and a second one, ``<database>-writer-gate``, that
  makes the turns alternate between processes (``WriterTurn.acquire``). The
  kernel frees both when a process ends, however it ends.

Each wait is bounded by ``timeout`` seconds. A writer that has waited that
long goes on without its turn, to SQLite's own wait (the busy timeout),
rather than fail; a process that cannot open the lock file takes turns
between its own threads only. Either way SQLite still keeps the database
right: the turns only make waiting faster.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time

log = logging.getLogger(__name__)

# How long the wait for another process's turn sleeps between tries: short,
# since a turn lasts about a millisecond; only one thread a process waits so.
_FIRST_PAUSE, _LONGEST_PAUSE = 0.0001, 0.002


class WriterTurn:
    """One writer at a time on a SQLite file, across threads and processes."""

    def __init__(self, database: str | None, timeout: float) -> None:
        self.timeout = timeout
        self._threads = threading.Lock()
        self._path = f"{database}-writer" if database and database != ":memory:" else None
        self._files: tuple[int, int] | None = None  # the gate's and the turn's
        self._pid = 0  # the process that opened them: a child opens its own

    def acquire(self) -> bool:
        """Wait for the turn; False when the wait ran out and the caller goes on without it.

        A process waits for the turn holding the gate, and takes the gate
        before the turn: so when a turn ends, a busy process cannot hand it
        straight to another of its own threads while a process that polls
        for it keeps missing it. Turns alternate between the processes that
        want them.
        """
        deadline = time.monotonic() + self.timeout
        if not self._threads.acquire(timeout=self.timeout):
            return False
        files = self._lock_files()
        if files is None:
            return True
        gate, turn = files
        if _wait_for(gate, deadline):
            got = _wait_for(turn, deadline)
            fcntl.flock(gate, fcntl.LOCK_UN)
            if got:
                return True
        self._threads.release()
        return False

    def release(self) -> None:
        if self._files is not None and self._pid == os.getpid():
            fcntl.flock(self._files[1], fcntl.LOCK_UN)
        self._threads.release()

    def _lock_files(self) -> tuple[int, int] | None:
        if self._path is None:
            return None
        if self._files is None or self._pid != os.getpid():
            try:
                self._files = (_open(f"{self._path}-gate"), _open(self._path))
            except OSError as error:
                log.warning("no writer lock file %s (%s): turns within this process only", self._path, error)
                self._path = None
                return None
            self._pid = os.getpid()
        return self._files


def _open(path: str) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def _wait_for(fd: int, deadline: float) -> bool:
    """Take the flock on ``fd``, trying again after ever longer pauses; False at ``deadline``."""
    pause = _FIRST_PAUSE
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, _LONGEST_PAUSE)
