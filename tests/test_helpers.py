"""The helpers the other tests lean on: if these are wrong, those prove nothing."""

from __future__ import annotations

import pytest
from flask import Flask

from tests.helpers import run_jobs


def test_run_jobs_drains_a_queue_of_exactly_limit_jobs(app: Flask) -> None:
    huey = app.extensions["jobs"].huey
    ran: list[int] = []

    @huey.task(name="test_count")
    def count(n: int) -> None:
        ran.append(n)

    for n in range(50):
        count(n)
    assert run_jobs(app, limit=50) == 50
    assert sorted(ran) == list(range(50)) and huey.pending_count() == 0


def test_run_jobs_raises_when_jobs_remain_after_limit(app: Flask) -> None:
    huey = app.extensions["jobs"].huey

    @huey.task(name="test_forever")
    def forever() -> None:
        forever()  # each run queues the next: the queue never drains

    forever()
    with pytest.raises(AssertionError, match="did not drain after 5 jobs"):
        run_jobs(app, limit=5)
    assert huey.pending_count() == 1
