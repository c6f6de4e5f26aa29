"""Deleting a call (page, CLI, API): every copy goes, a tombstone stays, late callbacks do nothing."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, text, update

from app import worker
from app.models import Call, CallEvent, DeletedCall, Recording, SpeakerName, Transcript, db, utcnow
from tests.fakes.assemblyai_api import FakeAssemblyAI
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import (
    call_sid,
    call_status_form,
    media_files,
    post_twilio,
    recording_form,
    recording_sid,
    run_jobs,
    stored_calls,
    wav_bytes,
)
from tests.pages import Calls


def count(app: Flask, model: type) -> int:
    with app.app_context():
        n = db.session.scalar(select(func.count()).select_from(model)) or 0
        db.session.rollback()
        return n


def search_rows(app: Flask) -> int:
    with app.app_context():
        n = db.session.scalar(text("SELECT count(*) FROM call_search")) or 0
        db.session.rollback()
        return n


def tombstone(app: Flask, sid: str) -> DeletedCall | None:
    with app.app_context():
        row = db.session.scalar(select(DeletedCall).where(DeletedCall.call_sid == sid))
        if row is not None:
            db.session.expunge(row)
        db.session.rollback()
        return row


def a_named_transcribed_call(calls: Calls, admin: FlaskClient, n: int = 1) -> str:
    sid = calls.with_transcript(
        n, "Please refund my order.", [{"text": "Please refund my order.", "speaker": "A"}]
    )
    assert admin.post(f"/calls/{sid}/speakers", data={"label": "A", "name": "Dana"}).status_code == 302
    return sid


def test_deleting_from_the_page_removes_every_copy_and_leaves_a_tombstone(
    app: Flask, admin: FlaskClient, calls: Calls, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    sid = a_named_transcribed_call(calls, admin)
    [transcript_id] = assemblyai_api.jobs
    kept = calls.with_transcript(2, "Another call, kept.")

    with app.app_context():
        deleted_id = db.session.scalar(select(Call.id).where(Call.call_sid == sid))
        db.session.rollback()
    asked = admin.post(f"/calls/{sid}/delete")
    assert asked.status_code == 302
    run_jobs(app)

    assert twilio_api.deleted_recordings == [recording_sid(1)]
    assert assemblyai_api.jobs[transcript_id].deleted
    assert not assemblyai_api.jobs[next(t for t in assemblyai_api.jobs if t != transcript_id)].deleted
    assert admin.get(f"/calls/{sid}").status_code == 404
    assert admin.get(f"/api/calls/{kept}").status_code == 200
    assert (count(app, Call), count(app, Recording), count(app, Transcript)) == (1, 1, 1)
    assert (count(app, SpeakerName), search_rows(app)) == (0, 1)
    with app.app_context():
        events = select(func.count()).select_from(CallEvent).where(CallEvent.call_id == deleted_id)
        assert db.session.scalar(events) == 0
    gone = tombstone(app, sid)
    assert gone is not None and gone.recording_sids == [recording_sid(1)]
    assert gone.transcript_ids == [transcript_id] and gone.requested_by == "admin"
    assert admin.get("/api/calls?q=refund").get_json()["calls"] == []


def test_the_page_asks_for_confirmation_and_says_what_goes(admin: FlaskClient, calls: Calls) -> None:
    sid = calls.with_transcript(1, "Hello.")

    page = admin.get(f"/calls/{sid}").get_data(as_text=True)

    assert "Delete this call…" in page and "It cannot be undone." in page
    assert f'action="/calls/{sid}/delete"' in page


def test_a_late_or_retried_callback_cannot_bring_a_deleted_call_back(
    app: Flask, admin: FlaskClient, calls: Calls, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    sid = calls.with_transcript(1, "Hello.")
    admin.post(f"/calls/{sid}/delete")
    run_jobs(app)
    submissions = len(assemblyai_api.submissions)
    twilio_api.add_recording(recording_sid(1), wav_bytes(), sid)  # Twilio retries its callback

    again = post_twilio(calls.client, "/twilio/recording-status", recording_form(sid, recording_sid(1)))
    status = post_twilio(calls.client, "/twilio/call-status", call_status_form(sid, "completed"))
    run_jobs(app)

    assert (again.status_code, status.status_code) == (204, 204)
    assert count(app, Call) == 0 and count(app, Recording) == 0
    assert len(assemblyai_api.submissions) == submissions, "paid for again"


def test_a_new_recording_sid_of_a_deleted_call_is_ignored_too(
    app: Flask, admin: FlaskClient, calls: Calls
) -> None:
    sid = calls.with_transcript(1, "Hello.")
    admin.post(f"/calls/{sid}/delete")
    run_jobs(app)

    post_twilio(calls.client, "/twilio/recording-status", recording_form(sid, recording_sid(7)))

    assert count(app, Recording) == 0


def test_while_it_is_being_deleted_it_stays_visible_with_the_reason_and_is_tried_again(
    app: Flask, admin: FlaskClient, calls: Calls, twilio_api: FakeTwilio
) -> None:
    sid = calls.with_transcript(1, "Hello.")
    twilio_api.fail_next("recording_delete", status=503)

    admin.post(f"/calls/{sid}/delete")
    run_jobs(app)  # the job fails, and is put back with a delay

    page = admin.get(f"/calls/{sid}").get_data(as_text=True)
    assert "Being deleted" in page and "Twilio answered HTTP 503" in page
    assert (
        admin.get(f"/api/calls/{sid}").get_json()["deletion"]["error"].startswith("Twilio answered HTTP 503")
    )
    assert count(app, Call) == 1 and tombstone(app, sid) is None
    with app.app_context():  # the reconciliation finds it once it has waited
        counts = worker.reconcile(now=utcnow() + timedelta(hours=1))
    assert counts["delete"] == 1
    run_jobs(app)
    assert count(app, Call) == 0 and tombstone(app, sid) is not None


def test_a_copy_already_gone_counts_as_deleted(
    app: Flask, admin: FlaskClient, calls: Calls, twilio_api: FakeTwilio
) -> None:
    sid = calls.with_transcript(1, "Hello.")
    with twilio_api.lock:
        twilio_api.recordings.clear()  # deleted in Twilio's console already

    admin.post(f"/calls/{sid}/delete")
    run_jobs(app)

    assert count(app, Call) == 0 and tombstone(app, sid) is not None


def test_a_call_being_deleted_is_not_sent_for_transcription(
    app: Flask, admin: FlaskClient, calls: Calls, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    sid = calls.call(1)
    twilio_api.add_recording(recording_sid(1), wav_bytes(), sid)
    post_twilio(calls.client, "/twilio/recording-status", recording_form(sid, recording_sid(1)))
    twilio_api.fail_next("recording_delete", status=503)  # the deletion has to wait

    admin.post(f"/calls/{sid}/delete")
    run_jobs(app)

    assert assemblyai_api.uploads == [] and assemblyai_api.submissions == []


def test_the_api_deletes_with_a_calls_delete_token(app: Flask, calls: Calls, twilio_api: FakeTwilio) -> None:
    sid = calls.with_transcript(1, "Hello.")
    runner = app.test_cli_runner()
    runner.invoke(args=["users", "add", "boss", "--role", "admin", "--password-stdin"], input="x" * 16 + "\n")
    token = runner.invoke(args=["users", "token", "boss", "--scope", "calls:delete"]).output.split()[0]
    reader = runner.invoke(args=["users", "token", "boss", "--scope", "calls:read"]).output.split()[0]
    client = app.test_client()

    refused = client.delete(f"/api/calls/{sid}", headers={"Authorization": f"Bearer {reader}"})
    asked = client.delete(f"/api/calls/{sid}", headers={"Authorization": f"Bearer {token}"})
    again = client.delete(f"/api/calls/{sid}", headers={"Authorization": f"Bearer {token}"})
    run_jobs(app)
    after = client.delete(f"/api/calls/{sid}", headers={"Authorization": f"Bearer {token}"})

    assert refused.status_code == 403 and "calls:delete" in refused.get_json()["error"]
    assert asked.status_code == 202 and asked.get_json() == {"call_sid": sid, "deleting": True}
    assert again.status_code == 202
    assert after.status_code == 404 and "was deleted on" in after.get_json()["error"]
    assert twilio_api.deleted_recordings == [recording_sid(1)]


def test_the_cli_deletes_at_once_and_logs_it(app: Flask, calls: Calls) -> None:
    sid = calls.with_transcript(1, "Hello.")
    runner = app.test_cli_runner()

    deleted = runner.invoke(args=["calls", "delete", sid, call_sid(9), "--as", "ops"])
    log = runner.invoke(args=["calls", "deletions"])

    assert deleted.exit_code == 1
    assert f"{sid}: deleted" in deleted.output
    assert f"{call_sid(9)}: No call {call_sid(9)}." in deleted.output
    assert count(app, Call) == 0
    [line] = log.output.splitlines()
    assert sid in line and "\tops\t" in line and recording_sid(1) in line


def test_the_cli_says_why_a_deletion_must_wait(app: Flask, calls: Calls, twilio_api: FakeTwilio) -> None:
    sid = calls.with_transcript(1, "Hello.")
    twilio_api.fail_next("recording_delete", status=500)

    result = app.test_cli_runner().invoke(args=["calls", "delete", sid])

    assert result.exit_code == 1
    assert "not deleted yet (Twilio answered HTTP 500" in result.output
    assert count(app, Call) == 1


def test_deleting_an_upload_removes_its_file_and_touches_no_twilio(
    app: Flask, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI, tmp_path: Path
) -> None:
    path = tmp_path / "memo.wav"
    path.write_bytes(wav_bytes())
    runner = app.test_cli_runner()
    assert runner.invoke(args=["transcribe", "--no-wait", str(path)]).exit_code == 0
    [transcript_id] = assemblyai_api.jobs
    assemblyai_api.complete(transcript_id)
    [(call, _)] = stored_calls(app)

    result = runner.invoke(args=["calls", "delete", call.call_sid])

    assert result.exit_code == 0, result.output
    assert media_files(app) == [] and stored_calls(app) == []
    assert assemblyai_api.jobs[transcript_id].deleted
    assert twilio_api.deleted_recordings == []
    gone = tombstone(app, call.call_sid)
    assert gone is not None and gone.media_keys and gone.direction == "upload"


def test_a_transcript_still_being_made_is_deleted_once_it_is_done(
    app: Flask, admin: FlaskClient, calls: Calls, assemblyai_api: FakeAssemblyAI
) -> None:
    recording_id = calls.recorded(1)
    [transcript_id] = assemblyai_api.jobs

    first = app.test_cli_runner().invoke(args=["calls", "delete", call_sid(1)])
    assemblyai_api.complete(transcript_id)
    with app.app_context():
        worker.reconcile(now=utcnow() + timedelta(hours=1))
    run_jobs(app)

    assert first.exit_code == 1 and "still being processed" in first.output
    assert assemblyai_api.jobs[transcript_id].deleted
    assert count(app, Recording) == 0 and recording_id


def test_a_recording_a_job_is_working_on_is_waited_for(
    app: Flask, calls: Calls, twilio_api: FakeTwilio
) -> None:
    sid = calls.with_transcript(1, "Hello.")
    with app.app_context():  # a worker holds the recording, mid-upload
        db.session.execute(update(Recording).values(claimed_until=utcnow() + timedelta(minutes=10)))
        db.session.commit()

    result = app.test_cli_runner().invoke(args=["calls", "delete", sid])

    assert result.exit_code == 1 and "a job is at work on it" in result.output
    assert twilio_api.deleted_recordings == [] and count(app, Call) == 1
