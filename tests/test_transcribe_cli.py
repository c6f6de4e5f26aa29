"""``flask transcribe FILE…``: local audio through the same pipeline and engine as a call, with no worker."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.models import Call, db
from app.states import Stage
from tests.fakes.assemblyai_api import FakeAssemblyAI
from tests.fakes.openapi import validate_transcript_params
from tests.helpers import ASSEMBLYAI_KEY, media_files, wav_bytes
from tests.helpers import stored_calls as stored

SAMPLES = Path(__file__).parent / "data" / "audio"
UPLOAD_ID = re.compile(r"^UP[0-9a-f]{32}$")


@pytest.fixture
def assemblyai_api() -> Iterator[FakeAssemblyAI]:
    """AssemblyAI that finishes each transcript on its own, as the real one does."""
    with FakeAssemblyAI(ASSEMBLYAI_KEY, auto_complete=True) as fake:
        yield fake


def tone(path: Path, *, channels: int = 1, seconds: float = 0.5) -> Path:
    path.write_bytes(wav_bytes(channels=channels, seconds=seconds))
    return path


def transcribe(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["transcribe", *args])


def test_a_file_is_uploaded_transcribed_and_printed_as_dialogue(
    app: Flask, assemblyai_api: FakeAssemblyAI, tmp_path: Path
) -> None:
    path = tone(tmp_path / "meeting.wav")
    assemblyai_api.set_result_for_audio(
        path.read_bytes(),
        "Hello there. Hi.",
        [{"text": "Hello there.", "speaker": "A"}, {"text": "Hi.", "speaker": "B"}],
    )

    result = transcribe(app, str(path))

    assert result.exit_code == 0, result.output
    assert "Speaker A: Hello there." in result.output
    assert "Speaker B: Hi." in result.output
    assert "meeting.wav (UP" in result.output
    assert [u["data"] for u in assemblyai_api.uploads] == [path.read_bytes()]
    [submission] = assemblyai_api.submissions
    validate_transcript_params(submission)
    assert submission["speaker_labels"] is True and "multichannel" not in submission
    [(call, recording)] = stored(app)
    assert UPLOAD_ID.match(call.call_sid) and recording.recording_sid == call.call_sid
    assert (call.direction, call.title, call.uploaded_by) == ("upload", "meeting.wav", "admin")
    assert recording.stage == Stage.TRANSCRIBED and recording.channels == 1
    assert [p.read_bytes() for p in media_files(app)] == [path.read_bytes()]


def test_it_needs_no_worker_and_leaves_nothing_queued(app: Flask, tmp_path: Path) -> None:
    result = transcribe(app, str(tone(tmp_path / "a.wav")))

    assert result.exit_code == 0, result.output
    assert app.extensions["jobs"].backlog() == 0


def test_two_channel_audio_is_transcribed_one_party_per_channel(
    app: Flask, assemblyai_api: FakeAssemblyAI, tmp_path: Path
) -> None:
    result = transcribe(app, str(tone(tmp_path / "call.wav", channels=2)))

    assert result.exit_code == 0, result.output
    [submission] = assemblyai_api.submissions
    assert submission["multichannel"] is True and "speaker_labels" not in submission
    [(_, recording)] = stored(app)
    assert recording.channels == 2


def test_channels_flag_on_one_channel_audio_is_refused(
    app: Flask, assemblyai_api: FakeAssemblyAI, tmp_path: Path
) -> None:
    result = transcribe(app, "--channels", str(tone(tmp_path / "mono.wav")))

    assert result.exit_code == 1
    assert "mono.wav has one channel" in result.output
    assert assemblyai_api.uploads == [] and stored(app) == [] and media_files(app) == []


def test_language_and_speakers_reach_the_engine(
    app: Flask, assemblyai_api: FakeAssemblyAI, tmp_path: Path
) -> None:
    result = transcribe(app, "--language", "de", "--speakers", "3", str(tone(tmp_path / "a.wav")))

    assert result.exit_code == 0, result.output
    [submission] = assemblyai_api.submissions
    validate_transcript_params(submission)
    assert (submission["language_code"], submission["speakers_expected"]) == ("de", 3)


def test_a_bad_language_is_refused_before_any_upload(
    app: Flask, assemblyai_api: FakeAssemblyAI, tmp_path: Path
) -> None:
    result = transcribe(app, "--language", "de-DE; drop", str(tone(tmp_path / "a.wav")))

    assert result.exit_code == 2
    assert "--language" in result.output
    assert assemblyai_api.uploads == []


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("notes.txt", b"hello", "not an audio file this service accepts"),
        ("empty.wav", b"", "is empty"),
        ("fake.wav", b"this is text, not sound " * 20, "is not WAV audio"),
    ],
)
def test_a_file_that_is_not_accepted_audio_gets_one_line_and_no_upload(
    app: Flask, assemblyai_api: FakeAssemblyAI, tmp_path: Path, name: str, content: bytes, says: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)

    result = transcribe(app, str(path))

    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert line.startswith(f"{path}: ") and says in line
    assert assemblyai_api.uploads == [] and stored(app) == [] and media_files(app) == []


def test_every_file_is_checked_before_any_upload_and_the_good_ones_still_go(
    app: Flask, assemblyai_api: FakeAssemblyAI, tmp_path: Path
) -> None:
    good = tone(tmp_path / "good.wav")
    missing = tmp_path / "missing.wav"

    result = transcribe(app, str(good), str(missing))

    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == f"{missing}: No such file or directory"  # before good.wav's transcript
    assert len(assemblyai_api.uploads) == 1
    [(call, _)] = stored(app)
    assert call.title == "good.wav"


def test_no_wait_submits_and_returns(app: Flask, assemblyai_api: FakeAssemblyAI, tmp_path: Path) -> None:
    assemblyai_api.auto_complete = False

    result = transcribe(app, "--no-wait", str(tone(tmp_path / "a.wav")))

    assert result.exit_code == 0, result.output
    assert re.fullmatch(rf"{tmp_path / 'a.wav'}: submitted as UP[0-9a-f]{{32}}\n", result.output)
    [(_, recording)] = stored(app)
    assert recording.stage == Stage.SUBMITTED
    assert len(assemblyai_api.submissions) == 1


def test_json_prints_the_json_export(app: Flask, assemblyai_api: FakeAssemblyAI, tmp_path: Path) -> None:
    path = tone(tmp_path / "a.wav")
    assemblyai_api.set_result_for_audio(path.read_bytes(), "Good morning.")

    result = transcribe(app, "--json", str(path))

    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert UPLOAD_ID.match(document["call_sid"]) and document["direction"] == "upload"
    assert document["recordings"][0]["transcript"]["text"] == "Good morning."


def test_a_transcript_the_engine_fails_is_a_failure_line(
    app: Flask, assemblyai_api: FakeAssemblyAI, tmp_path: Path
) -> None:
    path = tone(tmp_path / "a.wav")
    assemblyai_api.set_result_for_audio(path.read_bytes(), "", error="Audio duration is too short.")

    result = transcribe(app, str(path))

    assert result.exit_code == 1
    assert f"{path}: AssemblyAI could not transcribe it: Audio duration is too short." in result.output


def test_without_base_url_the_result_is_polled_for(
    make_app: Callable[..., Flask], assemblyai_api: FakeAssemblyAI, tmp_path: Path
) -> None:
    app = make_app(BASE_URL=None)

    result = transcribe(app, str(tone(tmp_path / "a.wav")))

    assert result.exit_code == 0, result.output
    [submission] = assemblyai_api.submissions
    assert "webhook_url" not in submission


def test_uploads_are_recorded_as_the_user_named(app: Flask, tmp_path: Path) -> None:
    runner = app.test_cli_runner()
    runner.invoke(args=["users", "add", "maria", "--password-stdin"], input="a long password here\n")
    runner.invoke(args=["users", "add", "vic", "--role", "viewer", "--password-stdin"], input="x" * 20 + "\n")
    path = str(tone(tmp_path / "a.wav"))

    assert transcribe(app, "--as", "maria", path).exit_code == 0
    viewer = transcribe(app, "--as", "vic", path)
    nobody = transcribe(app, "--as", "nobody", path)

    assert [c.uploaded_by for c, _ in stored(app)] == ["maria"]
    assert viewer.exit_code == 1 and "vic is a viewer, who may not upload audio" in viewer.output
    assert nobody.exit_code == 1 and "There is no user nobody" in nobody.output


def test_a_large_file_is_streamed_whole(app: Flask, assemblyai_api: FakeAssemblyAI, tmp_path: Path) -> None:
    path = tone(tmp_path / "long.wav", seconds=330)  # 5.3 MB: over the progress bar's size

    result = transcribe(app, str(path))

    assert result.exit_code == 0, result.output
    [upload] = assemblyai_api.uploads
    assert upload["chunked"] and upload["data"] == path.read_bytes()


@pytest.mark.parametrize(
    ("sample", "channels"),
    [("stereo.mp3", 2), ("mono.mp3", 1), ("stereo.m4a", 2), ("vorbis.ogg", 1), ("stereo.flac", 2)],
)
def test_every_accepted_format_is_transcribed(
    app: Flask, assemblyai_api: FakeAssemblyAI, tmp_path: Path, sample: str, channels: int
) -> None:
    path = Path(shutil.copy(SAMPLES / sample, tmp_path / sample))

    result = transcribe(app, str(path))

    assert result.exit_code == 0, result.output
    [(_, recording)] = stored(app)
    assert recording.channels == channels
    assert [u["data"] for u in assemblyai_api.uploads] == [path.read_bytes()]


def test_the_upload_is_a_call_in_the_list_page_and_api(
    app: Flask, admin: FlaskClient, tmp_path: Path
) -> None:
    assert transcribe(app, str(tone(tmp_path / "board meeting.wav"))).exit_code == 0
    [(call, _)] = stored(app)

    listing = admin.get("/").get_data(as_text=True)
    page = admin.get(f"/calls/{call.call_sid}")
    api = admin.get(f"/api/calls/{call.call_sid}")

    assert call.call_sid in listing
    assert page.status_code == 200 and "board meeting.wav" in page.get_data(as_text=True)
    assert api.status_code == 200 and api.get_json()["direction"] == "upload"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Call)) == 1


def test_without_an_engine_configured_it_says_what_to_set_and_stores_nothing(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    app = make_app(ASSEMBLYAI_API_KEY=None)

    result = transcribe(app, str(tone(tmp_path / "a.wav")))

    assert result.exit_code == 1
    assert "ASSEMBLYAI_API_KEY" in result.output
    assert stored(app) == [] and media_files(app) == []
