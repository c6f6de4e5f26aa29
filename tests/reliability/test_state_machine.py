"""A stateful property test: webhooks duplicated and reordered, providers failing,
workers crashing, jobs lost, time passing and reconciliation running, in any
interleaving Hypothesis can find. Throughout:

* no recording is ever submitted to AssemblyAI twice;
* no status moves backwards (call status, recording stage, transcript status);

and once the faults stop and the providers behave, every completed recording
ends with exactly one transcript.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from flask import Flask
from flask_migrate import upgrade
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import delete, select, update

from app import create_app
from app.config import Settings
from app.models import Call, Recording, Transcript, db, utcnow
from app.states import CALL_STATUS_RANK, TRANSCRIPT_STATUS_RANK, Stage
from tests.fakes.assemblyai_api import FakeAssemblyAI
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import (
    ACCOUNT_SID,
    ASSEMBLYAI_KEY,
    AUTH_TOKEN,
    call_sid,
    call_status_form,
    close,
    full_env,
    post_assemblyai_webhook,
    post_twilio,
    recording_sid,
)
from tests.reliability.inprocess import (
    audio_for,
    channels_uploaded,
    reconcile,
    recording_arrives,
    retries_fall_due,
    rows,
    run_queued_jobs,
)

STAGE_ORDER = {Stage.PENDING: 0, Stage.DELIVERED: 1, Stage.SUBMITTED: 2, Stage.TRANSCRIBED: 3}
JOB_TIMEOUT = 60
EXAMPLES = int(os.environ.get("CALLSCRIBE_STATE_MACHINE_EXAMPLES", "12"))


class PipelineUnderFire(RuleBasedStateMachine):
    """One service, one fake Twilio, one fake AssemblyAI, and everything going wrong."""

    calls = Bundle("calls")

    def __init__(self, build: Callable[[FakeTwilio, FakeAssemblyAI], Flask]) -> None:
        super().__init__()
        self.twilio = FakeTwilio(ACCOUNT_SID, AUTH_TOKEN).start()
        self.assemblyai = FakeAssemblyAI(ASSEMBLYAI_KEY, auto_complete=False).start()
        self.app = build(self.twilio, self.assemblyai)
        self.client = self.app.test_client()
        self.count = 0
        self.channels: dict[int, int] = {}
        self.seen: dict[tuple[str, str], int] = {}

    # -- what happens ----------------------------------------------------------

    @rule(target=calls, channels=st.sampled_from([1, 2]))
    def a_call_is_recorded(self, channels: int) -> int:
        """The call ends with a recording at Twilio; whether we hear of it is up to the rules."""
        self.count += 1
        self.channels[self.count] = channels
        self.twilio.add_recording(
            recording_sid(self.count), audio_for(self.count, channels), call_sid(self.count), channels
        )
        return self.count

    @rule(n=calls, status=st.sampled_from(["ringing", "in-progress", "completed"]))
    def twilio_reports_call_status(self, n: int, status: str) -> None:
        form = call_status_form(call_sid(n), status, CallDuration="9")
        assert post_twilio(self.client, "/twilio/call-status", form).status_code == 204

    @rule(n=calls)
    def twilio_reports_the_recording(self, n: int) -> None:
        assert recording_arrives(self.client, self.twilio, n, channels=self.channels[n]).status_code == 204

    @rule()
    def a_worker_runs_one_job(self) -> None:
        huey = self.app.extensions["jobs"].huey
        task = huey.dequeue() if huey.pending_count() else None
        if task is not None:
            huey.execute(task)

    @rule()
    def a_worker_runs_everything_queued(self) -> None:
        run_queued_jobs(self.app)

    @rule()
    def a_worker_is_killed_and_its_job_lost(self) -> None:
        huey = self.app.extensions["jobs"].huey
        if huey.pending_count():
            huey.dequeue()

    @rule(n=calls)
    def a_worker_dies_holding_a_recording(self, n: int) -> None:
        """What SIGKILL leaves behind mid-step: a claim nobody will release."""
        with self.app.app_context():
            db.session.execute(
                update(Recording)
                .where(
                    Recording.recording_sid.endswith(f"{n:032x}"),
                    Recording.stage.in_(("pending", "delivered")),
                )
                .values(claimed_until=utcnow() + timedelta(seconds=JOB_TIMEOUT), claim_token="dead")
            )
            db.session.commit()

    @rule(
        kind=st.sampled_from(["upload", "submit", "fetch", "list"]),
        fault=st.sampled_from(["429", "500", "503", "drop", "drop-after"]),
    )
    def assemblyai_has_a_bad_moment(self, kind: str, fault: str) -> None:
        if fault == "429":
            self.assemblyai.fail_next(kind, status=429, retry_after=1)
        elif fault in ("500", "503"):
            self.assemblyai.fail_next(kind, status=int(fault))
        else:
            self.assemblyai.drop_next(kind, after_handling=fault == "drop-after")

    @rule(fault=st.sampled_from(["500", "truncate"]))
    def twilio_media_has_a_bad_moment(self, fault: str) -> None:
        if fault == "truncate":
            self.twilio.truncate_next_media()
        else:
            self.twilio.fail_next("media", status=500)

    @rule()
    def assemblyai_finishes_its_work(self) -> None:
        for transcript_id, job in list(self.assemblyai.jobs.items()):
            if job.transcript["status"] in ("queued", "processing"):
                self.assemblyai.complete(transcript_id, text=f"Words of {job.params['audio_url'][-8:]}")

    @rule(n=calls, times=st.integers(1, 3))
    def assemblyai_calls_back(self, n: int, times: int) -> None:
        for recording_id, transcript_id in self._finished_transcripts(n):
            for _ in range(times):
                assert (
                    post_assemblyai_webhook(self.client, self.app, recording_id, transcript_id).status_code
                    == 200
                )

    @rule()
    def time_passes_and_reconciliation_runs(self) -> None:
        retries_fall_due(self.app, JOB_TIMEOUT + 200)
        reconcile(self.app)

    # -- what must always hold -------------------------------------------------------

    @invariant()
    def nothing_is_submitted_twice(self) -> None:
        per_recording: dict[str, int] = {}
        for body in self.assemblyai.submissions:
            per_recording[body["webhook_url"]] = per_recording.get(body["webhook_url"], 0) + 1
        assert all(count == 1 for count in per_recording.values()), per_recording

    @invariant()
    def no_status_moves_backwards(self) -> None:
        for call in rows(self.app, Call):
            self._forward(("call", call.call_sid), CALL_STATUS_RANK.get(call.status or "", -1))
        for recording in rows(self.app, Recording):
            assert recording.stage != Stage.FAILED, recording.last_error
            self._forward(("recording", recording.recording_sid), STAGE_ORDER.get(recording.stage or "", -1))
        for transcript in rows(self.app, Transcript):
            self._forward(("transcript", transcript.transcript_id), TRANSCRIPT_STATUS_RANK[transcript.status])

    def teardown(self) -> None:
        try:
            self._everything_ends_transcribed_once()
        finally:
            close(self.app)
            self.twilio.stop()
            self.assemblyai.stop()

    # -- helpers ----------------------------------------------------------------------

    def _forward(self, key: tuple[str, str], rank: int) -> None:
        before = self.seen.get(key, -1)
        assert rank >= before, f"{key} moved backwards"
        self.seen[key] = rank

    def _finished_transcripts(self, n: int) -> list[tuple[int, str]]:
        found = []
        for transcript_id, job in self.assemblyai.jobs.items():
            recording_id = int(job.params["webhook_url"].rsplit("=", 1)[1])
            sid = next((r.recording_sid for r in rows(self.app, Recording) if r.id == recording_id), "")
            if sid == recording_sid(n) and job.transcript["status"] == "completed":
                found.append((recording_id, transcript_id))
        return found

    def _everything_ends_transcribed_once(self) -> None:
        """The faults stop; Twilio and AssemblyAI do what they promise; all ends well."""
        self.twilio.clear_faults()
        self.assemblyai.clear_faults()
        for n in range(1, self.count + 1):
            self.twilio_reports_call_status(n, "completed")
        for _ in range(8):
            run_queued_jobs(self.app)
            self.assemblyai_finishes_its_work()
            for n in range(1, self.count + 1):
                self.assemblyai_calls_back(n, 1)
            run_queued_jobs(self.app)
            if self._all_transcribed():
                break
            self.time_passes_and_reconciliation_runs()
        recordings = rows(self.app, Recording)
        # Every call got its recording: by callback, or found through Twilio's API.
        assert len(recordings) == self.count
        assert [r.stage for r in recordings] == [Stage.TRANSCRIBED] * self.count, [
            (r.stage, r.last_error) for r in recordings
        ]
        transcripts = rows(self.app, Transcript)
        assert sorted(t.recording_id for t in transcripts) == sorted(r.id for r in recordings)
        assert {t.status for t in transcripts} <= {"completed"}
        assert len(self.assemblyai.submissions) == self.count
        # AssemblyAI got each recording with all its channels, not Twilio's mono mix-down.
        by_id = {r.id: r.channels for r in recordings}
        for body in self.assemblyai.submissions:
            recording_id = int(body["webhook_url"].rsplit("=", 1)[1])
            assert channels_uploaded(self.assemblyai, body) == by_id[recording_id], body
        self.nothing_is_submitted_twice()

    def _all_transcribed(self) -> bool:
        recordings = rows(self.app, Recording)
        return len(recordings) == self.count and all(r.stage == Stage.TRANSCRIBED for r in recordings)


def test_pipeline_survives_any_interleaving(backend: dict[str, str], tmp_path: Path) -> None:
    examples = iter(range(10**6))

    def build(twilio: FakeTwilio, assemblyai: FakeAssemblyAI) -> Flask:
        instance = str(tmp_path / f"example{next(examples)}")
        env = {
            **full_env(twilio, assemblyai),
            **backend,
            "JOB_MAX_ATTEMPTS": "50",  # faults here always pass; giving up is another test's subject
            "JOB_TIMEOUT": str(JOB_TIMEOUT),
            "HTTP_TIMEOUT": "2",
        }
        app = create_app(Settings.from_env(env, instance_path=instance), instance_path=instance)
        with app.app_context():
            upgrade()
            # On PostgreSQL the schema outlives one example: start empty.
            for model in (Transcript, Recording, Call):
                db.session.execute(delete(model))
            db.session.commit()
            assert db.session.scalar(select(Call.id)) is None
        app.extensions["jobs"].huey.flush()
        return app

    run_state_machine_as_test(
        lambda: PipelineUnderFire(build),
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
