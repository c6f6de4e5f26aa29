"""Webhooks lost, repeated, concurrent or out of order: each recording is transcribed once.

Twilio retries a callback once at most and AssemblyAI at most ten times,
never after a 4xx; the service must make up for what they drop and ignore
what they repeat.
"""

from __future__ import annotations

import itertools
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.models import Call, Recording, Transcript
from app.states import CALL_STATUS_RANK, Stage
from tests.fakes.assemblyai_api import FakeAssemblyAI
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import call_sid, call_status_form, post_assemblyai_webhook, post_twilio, recording_sid
from tests.reliability.inprocess import (
    audio_for,
    call_completes,
    channels_uploaded,
    reconcile,
    recording_arrives,
    recording_id_of,
    rows,
    run_jobs,
    time_passes,
)

INTERVAL = 120  # the default RECONCILE_INTERVAL


def test_lost_assemblyai_webhook_is_replaced_by_polling(
    app: Flask, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    recording_arrives(app.test_client(), twilio_api, 1)
    run_jobs(app)
    (transcript_id,) = assemblyai_api.jobs
    assemblyai_api.complete(transcript_id, text="Nobody called back.")  # and no webhook comes

    assert reconcile(app)["poll"] == 0, "too early to give up on the webhook"
    time_passes(app, INTERVAL + 1)
    assert reconcile(app)["poll"] == 1
    run_jobs(app)
    (transcript,) = rows(app, Transcript)
    assert (transcript.status, transcript.text) == ("completed", "Nobody called back.")
    assert rows(app, Recording)[0].stage == Stage.TRANSCRIBED


def test_still_processing_transcript_is_polled_again_later(
    app: Flask, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    recording_arrives(app.test_client(), twilio_api, 1)
    run_jobs(app)
    (transcript_id,) = assemblyai_api.jobs
    time_passes(app, INTERVAL + 1)
    reconcile(app)
    run_jobs(app)
    assert rows(app, Recording)[0].stage == Stage.SUBMITTED
    assemblyai_api.complete(transcript_id, text="Slow one.")
    time_passes(app, INTERVAL + 1)
    reconcile(app)
    run_jobs(app)
    assert rows(app, Transcript)[0].text == "Slow one."
    assert assemblyai_api.fetches(transcript_id) == 2


def test_lost_twilio_recording_callback_is_recovered_from_the_rest_api(
    app: Flask, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    client = app.test_client()
    call_completes(client, 1)
    twilio_api.add_recording(recording_sid(1), audio_for(1, 2), call_sid(1), channels=2, source="DialVerb")
    # ...and the recording-status callback never arrives.
    assert reconcile(app)["recover"] == 0, "too early: Twilio may still call back"
    time_passes(app, INTERVAL + 1)
    assert reconcile(app)["recover"] == 1
    run_jobs(app)

    (recording,) = rows(app, Recording)
    assert (recording.recording_sid, recording.channels, recording.source) == (
        recording_sid(1),
        2,
        "DialVerb",
    )
    assert recording.stage == Stage.SUBMITTED
    (submission,) = assemblyai_api.submissions
    assert submission["multichannel"] is True
    assert channels_uploaded(assemblyai_api, submission) == 2, "AssemblyAI got a mono mix-down"
    (listing,) = twilio_api.requests_of("recordings_list")
    assert listing.path.endswith(f"/Calls/{call_sid(1)}/Recordings.json")
    time_passes(app, INTERVAL + 1)
    assert reconcile(app)["recover"] == 0, "a call is looked up once"


def test_call_without_any_recording_is_looked_up_once(
    app: Flask, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    call_completes(app.test_client(), 1)
    time_passes(app, INTERVAL + 1)
    assert reconcile(app)["recover"] == 1
    run_jobs(app)
    assert rows(app, Recording) == []
    assert rows(app, Call)[0].recordings_checked_at is not None
    assert reconcile(app)["recover"] == 0


def test_recording_still_processing_at_twilio_is_looked_up_again(
    app: Flask, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    call_completes(app.test_client(), 1)
    twilio_api.add_recording(recording_sid(1), audio_for(1), call_sid(1), status="processing")
    time_passes(app, INTERVAL + 1)
    reconcile(app)
    run_jobs(app)
    assert rows(app, Recording) == []
    assert reconcile(app)["recover"] == 1, "not marked as checked while Twilio still works on it"


def calls_checked_by_reconcile(app: Flask) -> int:
    """Run ``flask reconcile`` as an operator would; returns how many calls it sent to be checked."""
    result = app.test_cli_runner().invoke(args=["reconcile"])
    assert result.exit_code == 0, result.output
    counted = re.search(r"(\d+) calls to check", result.output)
    assert counted, result.output
    return int(counted.group(1))


def test_a_failed_listing_of_recordings_is_tried_again_next_round(
    app: Flask, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    call_completes(app.test_client(), 1)
    twilio_api.add_recording(recording_sid(1), audio_for(1), call_sid(1))
    twilio_api.fail_next("recordings_list", status=500)
    time_passes(app, INTERVAL + 1)
    assert calls_checked_by_reconcile(app) == 1
    run_jobs(app)
    assert rows(app, Recording) == []
    assert rows(app, Call)[0].recordings_checked_at is None, "a 500 may pass: not checked yet"

    assert calls_checked_by_reconcile(app) == 1
    run_jobs(app)
    (recording,) = rows(app, Recording)
    assert recording.recording_sid == recording_sid(1)
    assert recording.stage == Stage.SUBMITTED
    assert len(twilio_api.requests_of("recordings_list")) == 2
    assert rows(app, Call)[0].recordings_checked_at is not None


def test_a_listing_twilio_answers_404_marks_the_call_checked_and_invents_no_recording(
    app: Flask, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    call_completes(app.test_client(), 1)
    twilio_api.fail_next("recordings_list", status=404)
    time_passes(app, INTERVAL + 1)
    assert calls_checked_by_reconcile(app) == 1
    run_jobs(app)
    assert rows(app, Recording) == []
    assert rows(app, Call)[0].recordings_checked_at is not None
    assert calls_checked_by_reconcile(app) == 0, "asking again would only get the same 404"
    assert len(twilio_api.requests_of("recordings_list")) == 1
    assert assemblyai_api.requests == []


@pytest.mark.parametrize("times", [2, 10])
def test_repeated_callbacks_do_everything_once(
    app: Flask, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI, times: int
) -> None:
    client = app.test_client()
    for _ in range(times):
        call_completes(client, 1)
        assert recording_arrives(client, twilio_api, 1).status_code == 204
    run_jobs(app)
    (transcript_id,) = assemblyai_api.jobs
    assemblyai_api.complete(transcript_id, text="Once.")
    for _ in range(times):
        assert post_assemblyai_webhook(client, app, recording_id_of(app, 1), transcript_id).status_code == 200
    run_jobs(app)
    assert_once(app, twilio_api, assemblyai_api, calls=1)


def test_concurrent_duplicates_with_several_workers_do_everything_once(
    app: Flask, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    """Ten deliveries of each callback at once, and four workers taking jobs at once."""
    calls = 3
    for n in range(1, calls + 1):
        twilio_api.add_recording(recording_sid(n), audio_for(n), call_sid(n))

    def deliver(n: int) -> int:
        return recording_arrives(app.test_client(), twilio_api, n).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(deliver, [n for n in range(1, calls + 1) for _ in range(10)]))
        assert set(codes) == {204}
        list(pool.map(lambda _: run_jobs(app), range(4)))
        assert len(assemblyai_api.jobs) == calls
        for transcript_id in assemblyai_api.jobs:
            assemblyai_api.complete(transcript_id, text="Once.")
        by_recording = {}
        for transcript_id, job in assemblyai_api.jobs.items():
            recording_id = int(job.params["webhook_url"].rsplit("=", 1)[1])
            by_recording[recording_id] = transcript_id
        assert sorted(by_recording) == sorted(recording_id_of(app, n) for n in range(1, calls + 1))
        hooks = [(r, t) for r, t in by_recording.items() for _ in range(10)]
        answers = list(
            pool.map(lambda rt: post_assemblyai_webhook(app.test_client(), app, *rt).status_code, hooks)
        )
        assert set(answers) == {200}
        list(pool.map(lambda _: run_jobs(app), range(4)))
    assert_once(app, twilio_api, assemblyai_api, calls=calls)


def assert_once(app: Flask, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI, *, calls: int) -> None:
    assert len(rows(app, Call)) == calls
    recordings = rows(app, Recording)
    assert len(recordings) == calls
    assert {r.stage for r in recordings} == {Stage.TRANSCRIBED}
    transcripts = rows(app, Transcript)
    assert len(transcripts) == calls
    assert {t.text for t in transcripts} == {"Once."}
    for n in range(1, calls + 1):
        assert twilio_api.media_downloads(recording_sid(n)) == 1
    assert len(assemblyai_api.uploads) == calls
    assert len(assemblyai_api.submissions) == calls


STATUSES = ["queued", "initiated", "ringing", "in-progress", "completed"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(st.sampled_from(STATUSES), min_size=1, max_size=12))
def test_call_status_never_moves_backwards(app: Flask, events: list[str]) -> None:
    client = app.test_client()
    sid = call_sid(abs(hash(tuple(events))) % 10**9)
    seen = -1
    for status in events:
        assert post_twilio(client, "/twilio/call-status", call_status_form(sid, status)).status_code == 204
        (call,) = [c for c in rows(app, Call) if c.call_sid == sid]
        rank = CALL_STATUS_RANK[call.status]
        assert rank >= seen, f"{call.status} after rank {seen}"
        seen = rank
    assert CALL_STATUS_RANK[call.status] == max(CALL_STATUS_RANK[s] for s in events)


@pytest.mark.parametrize("order", list(itertools.permutations(["call", "recording", "webhook-early"])))
def test_any_arrival_order_ends_transcribed(
    app: Flask, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI, order: tuple[str, ...]
) -> None:
    """Call status, recording status and an early AssemblyAI webhook, in every order."""
    client = app.test_client()
    assemblyai_api.drop_next("submit", after_handling=True)  # the submit answer comes late
    for event in order:
        if event == "call":
            call_completes(client, 1)
        elif event == "recording":
            recording_arrives(client, twilio_api, 1)
            run_jobs(app)
        elif assemblyai_api.jobs:
            (transcript_id,) = assemblyai_api.jobs
            assemblyai_api.complete(transcript_id, text="Once.")
            post_assemblyai_webhook(client, app, recording_id_of(app, 1), transcript_id)
            run_jobs(app)
    if not assemblyai_api.jobs or rows(app, Recording)[0].stage != Stage.TRANSCRIBED:
        # The webhook came before anything was submitted: AssemblyAI's own
        # retry, or our reconciliation, finishes the job.
        time_passes(app, 4000)
        reconcile(app)
        run_jobs(app)
        (transcript_id,) = assemblyai_api.jobs
        assemblyai_api.complete(transcript_id, text="Once.")
        post_assemblyai_webhook(client, app, recording_id_of(app, 1), transcript_id)
        run_jobs(app)
    assert_once(app, twilio_api, assemblyai_api, calls=1)
    assert rows(app, Call)[0].status == "completed"
