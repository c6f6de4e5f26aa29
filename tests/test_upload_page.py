"""``/upload``: audio files from the browser, stored, queued and transcribed like calls, and played back."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from app.states import Stage
from tests.fakes.assemblyai_api import FakeAssemblyAI
from tests.helpers import login, media_files, post_assemblyai_webhook, run_jobs, wav_bytes
from tests.helpers import stored_calls as uploads_stored

MB = 1024 * 1024


def upload(client: FlaskClient, *files: tuple[bytes, str], json: bool = False, **form: str) -> Any:
    """POST the form as a browser does: multipart, the page's CSRF token, one part per file."""
    fields = MultiDict(form)
    if client.get_cookie("session") is not None:
        fields["csrf_token"] = client.csrf_token()  # type: ignore[attr-defined]
    for content, name in files:
        fields.add("files", FileStorage(io.BytesIO(content), filename=name))
    boundary, body = encode_multipart(fields)  # in memory: the test client would spool big ones to a file
    headers = {"Accept": "application/json"} if json else {}
    content_type = f"multipart/form-data; boundary={boundary}"
    return client.post("/upload", data=body, content_type=content_type, headers=headers)


def test_the_form_offers_several_files_and_says_the_limit(admin: FlaskClient) -> None:
    page = admin.get("/upload")

    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'type="file" multiple' in html and 'enctype="multipart/form-data"' in html
    assert "up to 500 MB a file" in html
    assert "upload.js" in html


def test_the_calls_list_links_to_the_form(admin: FlaskClient) -> None:
    assert 'href="/upload"' in admin.get("/").get_data(as_text=True)


def test_an_upload_is_stored_queued_and_transcribed_by_the_worker(
    app: Flask, admin: FlaskClient, assemblyai_api: FakeAssemblyAI
) -> None:
    content = wav_bytes()

    answer = upload(admin, (content, "interview.wav"))

    [(call, recording)] = uploads_stored(app)
    assert answer.status_code == 302 and answer.headers["Location"] == f"/calls/{call.call_sid}"
    assert (call.direction, call.title, call.uploaded_by) == ("upload", "interview.wav", "admin")
    assert recording.stage == Stage.PENDING and recording.media_type == "audio/wav"
    assert [p.read_bytes() for p in media_files(app)] == [content]

    run_jobs(app)
    [transcript_id] = assemblyai_api.jobs
    assemblyai_api.complete(transcript_id, text="Thanks for coming in today.")
    assert post_assemblyai_webhook(admin, app, recording.id, transcript_id).status_code == 200
    run_jobs(app)

    assert [u["data"] for u in assemblyai_api.uploads] == [content]
    [(_, recording)] = uploads_stored(app)
    assert recording.stage == Stage.TRANSCRIBED
    page = admin.get(f"/calls/{call.call_sid}").get_data(as_text=True)
    assert "interview.wav" in page and "Thanks for coming in today." in page
    found = admin.get("/?q=coming").get_data(as_text=True)
    assert call.call_sid in found and call.call_sid in admin.get("/?q=interview").get_data(as_text=True)


def test_a_script_gets_json_for_each_file(app: Flask, admin: FlaskClient) -> None:
    answer = upload(admin, (wav_bytes(), "a.wav"), json=True)

    assert answer.status_code == 201
    [uploaded] = answer.get_json()["uploaded"]
    assert uploaded["title"] == "a.wav" and uploaded["url"] == f"/calls/{uploaded['call_sid']}"
    assert answer.get_json()["errors"] == []


def test_several_files_at_once_go_to_the_list_of_uploads(app: Flask, admin: FlaskClient) -> None:
    answer = upload(admin, (wav_bytes(), "one.wav"), (wav_bytes(channels=2), "two.wav"))

    assert answer.status_code == 302 and answer.headers["Location"] == "/?direction=upload"
    assert sorted((c.title, r.channels) for c, r in uploads_stored(app)) == [("one.wav", 1), ("two.wav", 2)]
    assert app.extensions["jobs"].backlog() == 2


@pytest.mark.parametrize(
    ("content", "name", "says"),
    [
        (b"not audio at all", "notes.txt", "not an audio file this service accepts"),
        (b"", "empty.wav", "is empty"),
        (b"<html>an error page</html>" * 10, "fake.wav", "is not WAV audio"),
    ],
)
def test_a_file_that_is_not_accepted_audio_is_a_400_and_leaves_nothing(
    app: Flask, admin: FlaskClient, content: bytes, name: str, says: str
) -> None:
    answer = upload(admin, (content, name), json=True)

    assert answer.status_code == 400
    [error] = answer.get_json()["errors"]
    assert name in error and says in error
    assert uploads_stored(app) == [] and media_files(app) == []
    assert app.extensions["jobs"].backlog() == 0


def test_the_good_files_of_a_batch_are_kept_and_the_bad_named(app: Flask, admin: FlaskClient) -> None:
    answer = upload(admin, (wav_bytes(), "good.wav"), (b"text", "bad.wav"))

    assert answer.status_code == 302
    assert [c.title for c, _ in uploads_stored(app)] == ["good.wav"]
    follow = admin.get(answer.headers["Location"]).get_data(as_text=True)
    assert "bad.wav is not WAV audio" in follow


def test_no_file_chosen_is_a_400(admin: FlaskClient) -> None:
    answer = admin.post("/upload", data={}, headers={"Accept": "application/json"})

    assert answer.status_code == 400
    assert answer.get_json()["error"] == "Choose at least one audio file."


@pytest.mark.parametrize(
    ("form", "says"),
    [
        ({"speakers": "0"}, "Speakers must be"),
        ({"speakers": "11"}, "Speakers must be"),
        ({"language": "x-y"}, "language"),
    ],
)
def test_bad_options_are_a_400_and_store_nothing(
    app: Flask, admin: FlaskClient, form: dict[str, str], says: str
) -> None:
    answer = upload(admin, (wav_bytes(), "a.wav"), json=True, **form)

    assert answer.status_code == 400 and says in answer.get_json()["error"]
    assert uploads_stored(app) == [] and media_files(app) == []


def test_options_are_kept_for_the_engine(
    app: Flask, admin: FlaskClient, assemblyai_api: FakeAssemblyAI
) -> None:
    upload(admin, (wav_bytes(), "a.wav"), language="de", speakers="2")
    run_jobs(app)

    [submission] = assemblyai_api.submissions
    assert (submission["language_code"], submission["speakers_expected"]) == ("de", 2)


def test_a_file_over_max_upload_mb_is_a_413_that_says_so(make_app: Callable[..., Flask]) -> None:
    app = make_app(MAX_UPLOAD_MB="1")
    client = app.test_client()
    login(client)

    answer = upload(client, (wav_bytes(seconds=80), "long.wav"), json=True)  # 1.3 MB

    assert answer.status_code == 413
    assert answer.get_json()["error"] == "The upload is over 1 MB, the largest MAX_UPLOAD_MB allows."
    assert uploads_stored(app) == [] and media_files(app) == []


def test_a_file_under_max_upload_mb_but_over_the_app_limit_is_accepted(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(MAX_UPLOAD_MB="5")
    client = app.test_client()
    login(client)

    answer = upload(client, (wav_bytes(seconds=150), "long.wav"), json=True)  # 2.4 MB

    assert answer.status_code == 201, answer.get_json()


def test_without_a_login_a_large_body_gets_the_small_limit(make_app: Callable[..., Flask]) -> None:
    app = make_app(MAX_UPLOAD_MB="5")

    answer = upload(app.test_client(), (wav_bytes(seconds=150), "long.wav"), json=True)

    assert answer.status_code == 413
    assert media_files(app) == []


def test_without_the_csrf_token_nothing_is_stored(app: Flask, admin: FlaskClient) -> None:
    answer = admin.post(
        "/upload",
        data={"files": (io.BytesIO(wav_bytes()), "a.wav")},
        csrf=False,  # type: ignore[call-arg]
    )

    assert answer.status_code == 400
    assert uploads_stored(app) == [] and media_files(app) == []


def test_an_uploaded_file_plays_from_our_storage_with_ranges(app: Flask, admin: FlaskClient) -> None:
    content = wav_bytes()
    upload(admin, (content, "a.wav"))
    [(_, recording)] = uploads_stored(app)
    path = f"/recordings/{recording.id}/audio"

    whole = admin.get(path)
    part = admin.get(path, headers={"Range": "bytes=10-109"})
    tail = admin.get(path, headers={"Range": "bytes=-4"})
    beyond = admin.get(path, headers={"Range": f"bytes={len(content)}-"})

    assert whole.status_code == 200 and whole.data == content and whole.mimetype == "audio/wav"
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert part.status_code == 206 and part.data == content[10:110]
    assert part.headers["Content-Range"] == f"bytes 10-109/{len(content)}"
    assert tail.status_code == 206 and tail.data == content[-4:]
    assert beyond.status_code == 416 and beyond.headers["Content-Range"] == f"bytes */{len(content)}"


def test_a_deleted_file_is_a_404_not_a_500(app: Flask, admin: FlaskClient) -> None:
    upload(admin, (wav_bytes(), "a.wav"))
    [(_, recording)] = uploads_stored(app)
    for path in media_files(app):
        path.unlink()

    answer = admin.get(f"/recordings/{recording.id}/audio")

    assert answer.status_code == 404
