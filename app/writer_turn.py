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
  ``<database>-writer``. The kernel frees it when a process ends, however
  it ends.

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
        self._fd: int | None = None
        self._pid = 0  # the process that opened _fd: a child opens its own

    def acquire(self) -> bool:
        """Wait for the turn; False when the wait ran out and the caller goes on without it."""
        deadline = time.monotonic() + self.timeout
        if not self._threads.acquire(timeout=self.timeout):
            return False
        fd = self._lock_file()
        if fd is None:
            return True
        pause = _FIRST_PAUSE
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    self._threads.release()
                    return False
                time.sleep(pause)
                pause = min(pause * 2, _LONGEST_PAUSE)

    def release(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    def _lock_file(self) -> int | None:
        if self._path is None:
            return None
        if self._fd is None or self._pid != os.getpid():
            try:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as error:
                log.warning("no writer lock file %s (%s): turns within this process only", self._path, error)
                self._path = None
                return None
            self._pid = os.getpid()
        return self._fd
