"""The AssemblyAI engine against the fake AssemblyAI server: the seam every engine implements.

The pipeline tests drive the engine through the service; these pin down
each step of the seam on its own: what goes over the wire for domain
options, and how AssemblyAI's answers come back as the project's types.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.config import WEBHOOK_HEADER_NAME
from app.models import utcnow
from app.providers import ProviderError
from app.providers.assemblyai import AssemblyAI, MalformedNotice, webhook_transcript_id
from app.providers.transcription import (
    AudioStream,
    AudioURL,
    Callback,
    TranscriptionEngine,
    TranscriptionOptions,
    Utterance,
    Word,
)
from app.states import TranscriptStatus
from tests.fakes.assemblyai_api import FakeAssemblyAI
from tests.fakes.openapi import transcript_params_errors
from tests.helpers import ASSEMBLYAI_KEY

CALLBACK = Callback(
    "https://callscribe.example/assemblyai/webhook?recording=7", WEBHOOK_HEADER_NAME, "s3cret"
)


@pytest.fixture
def engine(assemblyai_api: FakeAssemblyAI) -> AssemblyAI:
    return AssemblyAI(ASSEMBLYAI_KEY, assemblyai_api.base_url, timeout=5)


def options(**changes: object) -> TranscriptionOptions:
    values: dict[str, object] = {
        "channels": 1,
        "language": None,
        "models": ("universal-3-pro", "universal-2"),
        "callback": CALLBACK,
    }
    values.update(changes)
    return TranscriptionOptions(**values)  # type: ignore[arg-type]


def test_the_adapter_is_an_engine(engine: AssemblyAI) -> None:
    seam: TranscriptionEngine = engine
    assert seam.name == "assemblyai"


def test_a_stream_is_uploaded_chunked_and_a_url_is_used_as_it_is(
    engine: AssemblyAI, assemblyai_api: FakeAssemblyAI
) -> None:
    audio_ref = engine.prepare(AudioStream(iter([b"RIFF", b"rest of the audio"])))
    (upload,) = assemblyai_api.uploads
    assert (audio_ref, upload["data"], upload["chunked"]) == (
        upload["upload_url"],
        b"RIFFrest of the audio",
        True,
    )
    assert engine.prepare(AudioURL("https://media.example/a.wav")) == "https://media.example/a.wav"
    assert len(assemblyai_api.uploads) == 1, "a URL is not uploaded"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, {"speaker_labels": True}),
        ({"channels": 2}, {"multichannel": True}),
        ({"language": "auto"}, {"speaker_labels": True, "language_detection": True}),
        ({"language": "de", "channels": 2}, {"multichannel": True, "language_code": "de"}),
    ],
    ids=["mono", "two-channel", "detect-language", "language-code"],
)
def test_domain_options_become_assemblyai_fields(
    engine: AssemblyAI,
    assemblyai_api: FakeAssemblyAI,
    changes: dict[str, object],
    expected: dict[str, object],
) -> None:
    audio_ref = engine.prepare(AudioStream(iter([b"audio"])))
    submission = engine.submit(audio_ref, options(**changes))
    (body,) = assemblyai_api.submissions
    assert transcript_params_errors(body) == []
    assert body == {
        "audio_url": audio_ref,
        "speech_models": ["universal-3-pro", "universal-2"],
        "webhook_url": CALLBACK.url,
        "webhook_auth_header_name": WEBHOOK_HEADER_NAME,
        "webhook_auth_header_value": "s3cret",
        **expected,
    }
    assert submission.status == TranscriptStatus.QUEUED and submission.id in assemblyai_api.jobs


def test_a_result_comes_back_in_the_projects_own_types(
    engine: AssemblyAI, assemblyai_api: FakeAssemblyAI
) -> None:
    submission = engine.submit(engine.prepare(AudioStream(iter([b"audio"]))), options(channels=2))
    assemblyai_api.complete(
        submission.id, utterances=[{"channel": 1, "text": "Acme, hello."}, {"channel": 2, "text": "Hi."}]
    )
    result = engine.fetch(submission.id)
    assert (result.id, result.status, result.text) == (
        submission.id,
        TranscriptStatus.COMPLETED,
        "Acme, hello. Hi.",
    )
    assert (result.language, result.model) == ("en_us", "universal-3-pro")
    assert result.duration is not None and result.confidence is not None
    first = result.utterances[0]
    assert isinstance(first, Utterance) and (first.channel, first.text) == ("1", "Acme, hello.")
    assert all(isinstance(w, Word) and w.end > w.start for w in result.words)
    assert [w.text for w in first.words] == ["Acme,", "hello."]
    assert result.utterances[1].channel == "2"


def test_an_error_result_carries_the_reason(engine: AssemblyAI, assemblyai_api: FakeAssemblyAI) -> None:
    submission = engine.submit(engine.prepare(AudioStream(iter([b"audio"]))), options())
    assemblyai_api.fail(submission.id, error="Audio duration is too short.")
    result = engine.fetch(submission.id)
    assert (result.status, result.error, result.words) == (
        TranscriptStatus.ERROR,
        "Audio duration is too short.",
        (),
    )


def test_a_lost_submission_is_found_by_its_audio(engine: AssemblyAI, assemblyai_api: FakeAssemblyAI) -> None:
    since = utcnow() - timedelta(minutes=1)
    audio_ref = engine.prepare(AudioStream(iter([b"audio"])))
    assert engine.find_submission(audio_ref, since=since) is None
    submission = engine.submit(audio_ref, options())
    found = engine.find_submission(audio_ref, since=since)
    assert found is not None and (found.id, found.status) == (submission.id, TranscriptStatus.QUEUED)


def test_delete_blanks_the_engines_copy(engine: AssemblyAI, assemblyai_api: FakeAssemblyAI) -> None:
    submission = engine.submit(engine.prepare(AudioStream(iter([b"audio"]))), options())
    assemblyai_api.complete(submission.id, text="Private words.")
    engine.delete(submission.id)
    assert assemblyai_api.requests_of("delete")[-1].path == f"/v2/transcript/{submission.id}"
    assert engine.fetch(submission.id).text == "Deleted by user."


def test_a_failed_request_is_a_provider_error_with_its_retry_flag(
    engine: AssemblyAI, assemblyai_api: FakeAssemblyAI
) -> None:
    assemblyai_api.fail_next("fetch", status=503)
    with pytest.raises(ProviderError) as unavailable:
        engine.fetch("5551f0a8-0000-4000-8000-000000000000")
    assert unavailable.value.retryable
    with pytest.raises(ProviderError) as missing:
        engine.fetch("5551f0a8-0000-4000-8000-000000000000")
    assert (missing.value.status, missing.value.retryable) == (404, False)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ([], "JSON object"),
        ({"status": "completed"}, "transcript_id"),
        ({"transcript_id": "../../etc"}, "transcript_id"),
        ({"transcript_id": 7}, "transcript_id"),
    ],
)
def test_a_malformed_webhook_notice_is_refused(body: object, says: str) -> None:
    with pytest.raises(MalformedNotice, match=says):
        webhook_transcript_id(body)
    assert webhook_transcript_id({"transcript_id": "abc-123", "status": "completed"}) == "abc-123"
