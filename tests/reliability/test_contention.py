"""Slow providers and long queues must not slow everything else down."""

from __future__ import annotations

import sqlite3
import threading

import pytest
from flask import Flask

from app.models import db
from tests.fakes.assemblyai_api import FakeAssemblyAI
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import NOTHING_DUE, call_sid, call_status_form, post_assemblyai_webhook, post_twilio
from tests.reliability.inprocess import reconcile, recording_arrives, run_jobs, time_passes


@pytest.mark.parametrize("step", ["upload", "submit", "fetch"])
def test_no_database_lock_is_held_while_a_provider_is_slow(
    app: Flask, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI, step: str
) -> None:
    """On SQLite an open transaction holds the write lock: webhooks would queue behind an upload."""
    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            pytest.skip("SQLite only: PostgreSQL locks rows, not the database")
        path = db.engine.url.database
    client = app.test_client()
    recording_arrives(client, twilio_api, 1)
    if step == "fetch":
        run_jobs(app)
        (transcript_id,) = assemblyai_api.jobs
        assemblyai_api.complete(transcript_id, text="Slowly.")
        from tests.reliability.inprocess import recording_id_of

        post_assemblyai_webhook(client, app, recording_id_of(app, 1), transcript_id)
    assemblyai_api.delay_next(step, 1.5)
    worker = threading.Thread(target=run_jobs, args=(app,))
    worker.start()
    try:
        assemblyai_api.wait_for(lambda: assemblyai_api.requests_of(step)[-1:], timeout=5)
        # While AssemblyAI takes its time, another writer gets in at once...
        other = sqlite3.connect(path, timeout=0.2, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
        finally:
            other.close()
        # ...and so does Twilio's next webhook.
        form = call_status_form(call_sid(2), "ringing")
        assert post_twilio(client, "/twilio/call-status", form).status_code == 204
    finally:
        worker.join(timeout=10)


def test_reconciliation_does_not_add_to_a_backlog(
    app: Flask, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    client = app.test_client()
    for n in (1, 2, 3):
        recording_arrives(client, twilio_api, n)
    huey = app.extensions["jobs"].huey
    assert huey.pending_count() == 3
    time_passes(app, 10_000)
    assert reconcile(app) == NOTHING_DUE
    assert huey.pending_count() == 3, "the jobs already queued are enough"
    huey.flush()  # now they are lost
    assert reconcile(app)["advance"] == 3
