"""Process-level faults: a worker killed mid-job, the web restarted, the database down, a crowd of calls.

The service runs as deployed (the Procfile's release, gunicorn and ``flask
worker``) with short timings: RECONCILE_INTERVAL=5, JOB_TIMEOUT=5,
HTTP_TIMEOUT=3. Faults come only from outside: SIGKILL, fault queues on the
fake providers, and the database itself. Every scenario ends the same way:
each completed recording transcribed exactly once, AssemblyAI paid for one
submission per recording, and no status ever seen going backwards.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from tests.helpers import BACKENDS, storage_env
from tests.reliability.harness import (
    DATABASE_LOCKED,
    HOLD_SECONDS,
    RECOVERY_TIMEOUT,
    Answer,
    Harness,
    PlannedCall,
    dedicated_database,
    sqlite_path,
    sqlite_write_lock,
)

pytestmark = pytest.mark.e2e

# How long another connection holds SQLite's write lock; well inside the app's 15 s busy timeout.
LOCK_SECONDS = 2.0


@dataclass(frozen=True)
class Storage:
    backend: str
    env: dict[str, str]


@pytest.fixture(params=BACKENDS)
def storage(request: pytest.FixtureRequest) -> Iterator[Storage]:
    with storage_env(request.param) as env:
        yield Storage(request.param, env)


def ok(answer: Answer) -> bool:
    return answer.status is not None and 200 <= answer.status < 300


def described(answers: list[Answer]) -> list[str]:
    return [f"{a.delivery.label}: {a.status or a.error} after {a.seconds:.2f} s" for a in answers]


# -- 1. a worker killed with SIGKILL mid-job ------------------------------------------


@pytest.fixture(scope="class", params=BACKENDS)
def killable(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    """One service per storage configuration for every kill point; each kills the worker, starts a new one."""
    with storage_env(request.param) as env:
        folder = tmp_path_factory.mktemp(f"killed-{request.param.replace('+', '-')}")
        with Harness(folder, env, processing_delay=0.5) as h:
            yield h


@dataclass(frozen=True)
class Killed:
    """A worker killed inside one provider request of one call's job."""

    call: PlannedCall
    at: float
    row: dict[str, Any]

    @property
    def claimed_until(self) -> float:
        """When the dead worker's claim on the recording runs out (epoch seconds)."""
        claimed_until = self.row["claimed_until"]
        assert claimed_until is not None and claimed_until.timestamp() > self.at, (
            f"the dead worker held no live claim: {self.row}"
        )
        return float(claimed_until.timestamp())


def kill_worker_inside(h: Harness, kind: str, *, answer_lost: bool = False) -> Killed:
    """Hold a call's ``kind`` request at AssemblyAI, SIGKILL the worker while it waits, read the row."""
    # Held until the worker dies; before handling, the request then never takes effect.
    h.assemblyai.delay_next(kind, HOLD_SECONDS, after_handling=answer_lost, cancel_on_hangup=True)
    call = h.plan_call()
    h.call_ends(call)
    h.recording_completes(call)
    if answer_lost:
        h.wait_until("AssemblyAI accepted the submission", lambda: h.submissions_for(call))
    else:
        h.wait_until(f"the {kind} request at AssemblyAI", lambda: h.requests_for(call, kind))
    h.running.worker.kill()
    killed_at = time.time()
    row = h.recording(call)
    assert row is not None
    return Killed(call, killed_at, row)


def recovered(h: Harness, killed: Killed) -> None:
    """A new worker; once the dead one's claim runs out, the reconciliation finishes the job once."""
    h.running.restart("worker")
    h.wait_transcribed([killed.call], RECOVERY_TIMEOUT)
    h.assert_transcribed_once([killed.call])


class TestWorkerKilledMidJob:
    """SIGKILL mid-job loses the Huey task; the row, its claim and the reconciliation bring it back."""

    @pytest.fixture
    def h(self, killable: Harness) -> Harness:
        killable.next_scenario()
        return killable

    def test_between_download_and_upload(self, h: Harness) -> None:
        killed = kill_worker_inside(h, "upload")
        assert killed.row["stage"] == "pending"
        h.wait_until(
            "the upload cancelled", lambda: h.requests_for(killed.call, "upload", h.assemblyai.abandoned)
        )
        assert not [u for u in h.assemblyai.uploads if u["data"] == killed.call.audio]

        recovered(h, killed)
        media = h.requests_for(killed.call, "media")
        assert len(media) == 2, [r.target for r in media]
        assert media[1].time >= killed.claimed_until, "taken again before the dead worker's claim ran out"
        assert any("reconcile: 1 to advance" in line for line in h.running.worker.tail(200).splitlines())

    def test_between_upload_and_submit(self, h: Harness) -> None:
        killed = kill_worker_inside(h, "submit")
        assert killed.row["stage"] == "delivered" and killed.row["submit_started_at"] is not None
        h.wait_until(
            "the submit cancelled", lambda: h.requests_for(killed.call, "submit", h.assemblyai.abandoned)
        )
        assert not h.submissions_for(killed.call), "AssemblyAI acted on the held submission"

        recovered(h, killed)
        # The new worker asked AssemblyAI's transcript list before paying for a submission.
        lists = [r for r in h.assemblyai.requests_of("list") if r.time > killed.at]
        assert lists, "AssemblyAI's transcript list was never consulted"
        assert lists[0].time >= killed.claimed_until, "taken again before the dead worker's claim ran out"
        assert lists[0].time < h.requests_for(killed.call, "submit")[-1].time

    def test_between_submit_and_commit_found_in_transcript_list(self, h: Harness) -> None:
        h.assemblyai.lose_webhooks(1)  # only AssemblyAI's transcript list can tell the new worker
        killed = kill_worker_inside(h, "submit", answer_lost=True)
        assert killed.row["stage"] == "delivered" and killed.row["submit_started_at"] is not None

        recovered(h, killed)
        lists = [r for r in h.assemblyai.requests_of("list") if r.time > killed.at]
        assert lists and lists[0].time >= killed.claimed_until, "taken again before the claim ran out"
        assert len(h.requests_for(killed.call, "submit")) == 1
        assert any(
            killed.call.recording_sid in line and "found submission" in line
            for line in h.running.worker.tail(200).splitlines()
        ), h.running.worker.tail(50)

    def test_between_submit_and_commit_adopted_from_webhook(self, h: Harness) -> None:
        killed = kill_worker_inside(h, "submit", answer_lost=True)
        # With no worker alive, the web process learns the transcript id from AssemblyAI's webhook.
        h.wait_until("the webhook's transcript id adopted", lambda: h.stage(killed.call) == "submitted")

        recovered(h, killed)
        assert not [r for r in h.assemblyai.requests_of("list") if r.time > killed.at]
        transcript_id = h.transcript_id_for(killed.call)
        attempts = [a["status"] for a in h.assemblyai.webhook_attempts if a["transcript_id"] == transcript_id]
        assert attempts == [200], attempts


# -- 2. the web process restarted --------------------------------------------------------


def test_web_restart_loses_no_webhook(storage: Storage, tmp_path: Path) -> None:
    # AssemblyAI retries its webhook for about 100 s (10 attempts, 10 s apart); here for
    # 60 s, every 2 s, as long as a restart may take on a loaded machine.
    with Harness(
        tmp_path, storage.env, processing_delay=2.0, webhook_retry_interval=2.0, webhook_max_attempts=30
    ) as h:
        call = h.plan_call()
        # The call is still in progress: only Twilio's retry can bring its recording
        # (the reconciliation asks Twilio only about calls that have ended).
        ringing, answered, completed = h.call_status_deliveries(call)
        for delivery in (ringing, answered):
            assert h.send(delivery).status_code == 204

        h.running.web.kill()
        recording = h.recording_delivery(call)
        with pytest.raises(requests.ConnectionError):
            h.send(recording)
        with pytest.raises(requests.ConnectionError):
            h.healthz()
        h.running.restart("web")
        response = h.send(recording)  # Twilio's retry of the callback
        assert response.status_code == 204, response.text

        # Down again at once: the worker transcribes without it, and AssemblyAI's webhook
        # (two seconds later at the soonest) meets a closed port until the web is back.
        h.running.web.kill()
        h.wait_until(
            "a webhook attempt refused", lambda: any(a["error"] for a in h.assemblyai.webhook_attempts), 30
        )
        h.running.restart("web")
        assert h.send(completed).status_code == 204

        h.wait_transcribed([call])
        h.assert_transcribed_once([call])
        transcript_id = h.transcript_id_for(call)
        statuses = [a["status"] for a in h.assemblyai.webhook_attempts if a["transcript_id"] == transcript_id]
        assert statuses[0] is None and statuses[-1] == 200, statuses
        assert len(h.twilio_api.requests_of("media")) == 1
        assert not h.twilio_api.requests_of("recordings_list"), "recovered by the reconciliation instead"


# -- 3. the database restarted, or locked -------------------------------------------------


def test_database_restarted_or_locked_loses_no_webhook(storage: Storage, tmp_path: Path) -> None:
    """PostgreSQL goes away and comes back; SQLite is write-locked by another connection for a while."""
    if storage.backend == "sqlite":
        _sqlite_locked(storage, tmp_path)
    else:
        _postgres_restarted(storage, tmp_path)


def _first_call_waiting_for_its_webhook(h: Harness) -> PlannedCall:
    """A call submitted to AssemblyAI, its transcript ready, its webhook not yet delivered."""
    call = h.plan_call()
    h.assemblyai.lose_webhooks(1)  # the test sends this webhook itself, while the database is out
    h.call_ends(call)
    h.recording_completes(call)
    h.wait_until("the first call submitted", lambda: h.stage(call) == "submitted")
    transcript_id = h.transcript_id_for(call)
    h.assemblyai.wait_for(lambda: h.assemblyai.jobs[transcript_id].transcript["status"] == "completed")
    return call


def _postgres_restarted(storage: Storage, tmp_path: Path) -> None:
    with dedicated_database(os.environ["TEST_DATABASE_URL"]) as database:
        with Harness(tmp_path, {**storage.env, "DATABASE_URL": database.url}) as h:
            first = _first_call_waiting_for_its_webhook(h)
            second = h.plan_call()
            twilio_callbacks = [*h.call_status_deliveries(second), h.recording_delivery(second)]

            assert database.make_unavailable() > 0, "no connection of the service was open to end"
            down = [h.send_answered(d) for d in twilio_callbacks]
            assemblyai_down = h.assemblyai_webhook(first).status_code
            health_down = h.healthz()
            database.make_available()

            assert all(a.status is not None and 500 <= a.status < 600 for a in down), described(down)
            assert 500 <= assemblyai_down < 600, (
                f"AssemblyAI's webhook answered {assemblyai_down}: a 4xx is final"
            )
            assert health_down == 503

            # Twilio and AssemblyAI try again; the pool replaces its dead connections.
            up = [h.send_answered(d) for d in twilio_callbacks]
            assert all(ok(a) for a in up), described(up)
            assert h.assemblyai_webhook(first).status_code == 200
            assert h.healthz() == 200

            h.wait_transcribed([first, second])
            h.assert_transcribed_once([first, second])


@pytest.mark.parametrize("storage", [b for b in BACKENDS if b != "sqlite"], indirect=True)
def test_sessions_ended_by_postgres_cost_no_webhook(storage: Storage, tmp_path: Path) -> None:
    """PostgreSQL ends the service's idle connections and stays up: the next callbacks all succeed at once."""
    with dedicated_database(os.environ["TEST_DATABASE_URL"]) as database:
        with Harness(tmp_path, {**storage.env, "DATABASE_URL": database.url}) as h:
            warm = [h.plan_call() for _ in range(4)]
            with ThreadPoolExecutor(8) as pool:  # several pooled connections in each web worker
                list(
                    pool.map(
                        h.send,
                        [d for c in warm for d in (*h.call_status_deliveries(c), h.recording_delivery(c))],
                    )
                )
            h.wait_transcribed(warm)

            assert database.end_sessions() > 0, "no connection of the service was open to end"
            calls = [h.plan_call() for _ in range(4)]
            deliveries = [d for c in calls for d in (*h.call_status_deliveries(c), h.recording_delivery(c))]
            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(h.send_answered, deliveries))
            assert all(ok(a) for a in answers), described(answers)
            assert h.healthz() == 200

            h.wait_transcribed(calls)
            h.assert_transcribed_once([*warm, *calls])


def _sqlite_locked(storage: Storage, tmp_path: Path) -> None:
    with Harness(tmp_path, storage.env) as h:
        first = _first_call_waiting_for_its_webhook(h)
        second = h.plan_call()
        twilio_callbacks = [*h.call_status_deliveries(second), h.recording_delivery(second)]

        with ThreadPoolExecutor(len(twilio_callbacks) + 2) as pool:
            with sqlite_write_lock(sqlite_path(h.database_url)):
                twilio = [pool.submit(h.send_answered, d) for d in twilio_callbacks]
                assemblyai = pool.submit(lambda: h.assemblyai_webhook(first).status_code)
                health = pool.submit(h.healthz)
                time.sleep(LOCK_SECONDS)  # the other transaction's length: the point of the test
                assert not any(f.done() for f in [*twilio, assemblyai]), "a write answered while locked"
                # A read takes no write lock: the health check answers at once.
                assert health.done() and health.result() == 200, "a read waited for the write lock"
            released_at = time.monotonic()
            answers = [f.result() for f in twilio]

        # Each waited for the lock (SQLite's busy timeout), rather than failing at once.
        assert all(ok(a) for a in answers), described(answers)
        assert all(released_at - a.started >= LOCK_SECONDS / 2 for a in answers), described(answers)
        assert assemblyai.result() == 200
        assert health.result() == 200

        h.wait_transcribed([first, second])
        h.assert_transcribed_once([first, second])
        assert not h.log_lines(DATABASE_LOCKED)


# -- 4. many calls at once, on several processes ------------------------------------------


def test_concurrent_calls_on_several_processes_are_each_transcribed_once(
    storage: Storage, tmp_path: Path
) -> None:
    with Harness(tmp_path, storage.env, web_concurrency=3, workers=2) as h:
        calls = [h.plan_call() for _ in range(30)]
        started = time.monotonic()
        answers = h.push_calls(calls, duplicates=(2, 3), threads=12)
        pushed = time.monotonic() - started
        assert all(ok(a) for a in answers), [
            d for d, a in zip(described(answers), answers, strict=True) if not ok(a)
        ]

        seconds = h.wait_transcribed(calls, timeout=60)
        h.assert_transcribed_once(calls)
        with h.database.connect() as connection:
            statuses = connection.execute(sa.text("SELECT call_sid, status, duration FROM calls")).all()
        assert sorted(statuses) == sorted((c.call_sid, "completed", 12) for c in calls)
        assert not h.log_lines(DATABASE_LOCKED)
        assert not h.log_lines(r'" 5\d\d '), h.log_lines(r'" 5\d\d ')  # gunicorn's access log
        assert not h.log_lines(r"Traceback|unhandled error"), h.log_lines(r"Traceback|unhandled error")
        assert all(a["status"] == 200 for a in h.assemblyai.webhook_attempts), h.assemblyai.webhook_attempts
        print(f"{storage.backend}: {len(answers)} callbacks in {pushed:.1f} s, done {seconds:.1f} s later")
