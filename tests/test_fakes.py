"""The fake providers themselves: protocol, controls and fault injection.

If these fail, every service test built on the fakes proves nothing.
"""

from __future__ import annotations

import io
import json
import re
import struct
import threading
import wave
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from tests.fakes import (
    FakeAssemblyAI,
    FakeTwilio,
    component_validator,
    make_sid,
    transcript_params_errors,
)
from tests.fakes.audio import wav as make_wav
from tests.fakes.openapi import load_spec, spec_or_skip
from tests.fakes.twilio_api import DEFAULT_PHONE_NUMBER

SID, TOKEN, KEY = "AC" + "0" * 32, "secret-token", "aai-key"
T = 2.0  # client timeout: nothing here may hang
SPEECH = ["universal-3-pro", "universal-2"]
OWN_NUMBER = DEFAULT_PHONE_NUMBER  # what the fake account owns unless told otherwise
CALLEE = "+15550001111"


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio(SID, TOKEN) as fake:
        yield fake


@pytest.fixture
def aai() -> Iterator[FakeAssemblyAI]:
    with FakeAssemblyAI(KEY, webhook_retry_interval=0.02) as fake:
        yield fake


def twilio_client(fake: FakeTwilio) -> Client:
    """The real twilio library, pointed at the fake instead of api.twilio.com."""

    class Rewriting(TwilioHttpClient):
        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            url = url.replace("https://api.twilio.com", fake.base_url)
            return super().request(method, url, *args, **kwargs)

    return Client(SID, TOKEN, http_client=Rewriting(timeout=T))


class Receiver:
    """A stand-in for the service's webhook endpoint with scripted answers."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.hits: list[tuple[str, dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.hits.append((self.path, dict(self.headers), body))
                status = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.02},
            daemon=True,
        ).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def submit(fake: FakeAssemblyAI, audio: bytes, **params: Any) -> dict[str, Any]:
    """Upload audio and create a transcript the way the service does."""
    headers = {"authorization": KEY}
    up = requests.post(f"{fake.base_url}/v2/upload", data=audio, headers=headers, timeout=T)
    body = {"audio_url": up.json()["upload_url"], "speech_models": SPEECH, **params}
    created = requests.post(f"{fake.base_url}/v2/transcript", json=body, headers=headers, timeout=T)
    assert created.status_code == 200, created.text
    return created.json()


# --- Twilio ---------------------------------------------------------------


def test_twilio_requires_basic_auth_for_its_own_account(twilio: FakeTwilio) -> None:
    rec = make_sid("RE")
    twilio.add_recording(rec, b"RIFFaudio")
    url = f"{twilio.base_url}/2010-04-01/Accounts/{SID}/Recordings/{rec}.wav"
    for auth in (None, (SID, "wrong")):
        r = requests.get(url, auth=auth, timeout=T)
        assert r.status_code == 401
        assert r.json()["code"] == 20003 and r.headers["WWW-Authenticate"].startswith("Basic")
    other = url.replace(SID, "AC" + "1" * 32)
    assert requests.get(other, auth=(SID, TOKEN), timeout=T).json()["code"] == 20404
    assert twilio.media_downloads(rec) == 0  # unauthorized attempts do not count
    assert [r.authorized for r in twilio.requests] == [False, False, True]


def test_twilio_library_creates_call_with_repeated_params(twilio: FakeTwilio) -> None:
    call = twilio_client(twilio).calls.create(
        to="+15550001111",
        from_=OWN_NUMBER,
        url="https://callscribe.example/twiml",
        record=True,
        recording_channels="dual",
        status_callback_event=["initiated", "completed"],
    )
    assert call.sid.startswith("CA") and len(call.sid) == 34 and call.status == "queued"
    assert call.direction == "outbound-api" and call.date_created is not None  # RFC 2822 parsed
    sent = twilio.calls_created[0]
    assert sent["StatusCallbackEvent"] == ["initiated", "completed"]
    assert sent["RecordingChannels"] == ["dual"] and sent["To"] == ["+15550001111"]
    missing_url = {"To": "+15550001111", "From": OWN_NUMBER}
    r = requests.post(
        f"{twilio.base_url}/2010-04-01/Accounts/{SID}/Calls.json",
        data=missing_url,
        auth=(SID, TOKEN),
        timeout=T,
    )
    assert r.status_code == 400 and r.json()["code"] == 21205


def test_twilio_fail_next_call_create_reaches_the_library(twilio: FakeTwilio) -> None:
    twilio.fail_next_call_create()
    client = twilio_client(twilio)
    with pytest.raises(TwilioRestException) as err:
        client.calls.create(to="+15550001111", from_=OWN_NUMBER, twiml="<Response/>")
    assert err.value.status == 400 and err.value.code == 21211
    assert client.calls.create(to="+15550001111", from_=OWN_NUMBER, twiml="<Response/>").sid


@pytest.mark.parametrize(
    ("to", "from_", "code", "message"),
    [
        pytest.param("5550001111", OWN_NUMBER, 21211, "Invalid 'To' Phone Number: 555", id="to-no-plus"),
        pytest.param("+1", OWN_NUMBER, 21211, "Invalid 'To' Phone Number: +1", id="to-too-short"),
        pytest.param("+0123456789", OWN_NUMBER, 21211, "Invalid 'To'", id="to-leading-zero"),
        pytest.param("+1" + "5" * 15, OWN_NUMBER, 21211, "Invalid 'To'", id="to-too-long"),
        pytest.param(CALLEE, "4155550100", 21212, "Invalid 'From' Phone Number: 415", id="from-no-plus"),
        pytest.param(CALLEE, "Anonymous", 21212, "Invalid 'From'", id="from-word"),
        pytest.param(CALLEE, "+15550002222", 21210, "+15550002222, is not yet verified", id="not-ours"),
    ],
)
def test_twilio_refuses_numbers_it_cannot_call(
    twilio: FakeTwilio, to: str, from_: str, code: int, message: str
) -> None:
    with pytest.raises(TwilioRestException) as err:
        twilio_client(twilio).calls.create(to=to, from_=from_, twiml="<Response/>")
    assert (err.value.status, err.value.code) == (400, code)
    assert message in err.value.msg
    assert twilio.calls == {}


def test_twilio_error_body_is_twilios() -> None:
    with FakeTwilio(SID, TOKEN, phone_numbers=("+442071838750",)) as fake:
        answer = requests.post(
            f"{fake.base_url}/2010-04-01/Accounts/{SID}/Calls.json",
            data={"To": CALLEE, "From": OWN_NUMBER, "Url": "https://callscribe.example/twiml"},
            auth=(SID, TOKEN),
            timeout=T,
        )
        assert answer.status_code == 400
        body = answer.json()
        assert (body["code"], body["status"]) == (21210, 400)
        assert body["more_info"] == "https://www.twilio.com/docs/errors/21210"
        bought = twilio_client(fake).calls.create(to=CALLEE, from_="+442071838750", twiml="<Response/>")
        assert bought.sid


def test_twilio_calls_from_verified_caller_ids_and_to_clients(twilio: FakeTwilio) -> None:
    client = twilio_client(twilio)
    with pytest.raises(TwilioRestException) as err:
        client.calls.create(to=CALLEE, from_="+15550002222", twiml="<Response/>")
    assert err.value.code == 21210
    twilio.verify_caller_id("+15550002222")
    assert client.calls.create(to=CALLEE, from_="+15550002222", twiml="<Response/>").sid
    for to in ("client:alice", "sip:alice@example.com"):
        assert client.calls.create(to=to, from_=OWN_NUMBER, twiml="<Response/>").sid


def test_twilio_refuses_blocked_destinations(twilio: FakeTwilio) -> None:
    client = twilio_client(twilio)
    twilio.block_destinations("+44", "+15550009999")
    for to in ("+447700900123", "+15550009999"):
        with pytest.raises(TwilioRestException) as err:
            client.calls.create(to=to, from_=OWN_NUMBER, twiml="<Response/>")
        assert (err.value.status, err.value.code) == (400, 21215)
        assert f"Account not authorized to call {to}" in err.value.msg
    assert twilio.calls == {}
    assert client.calls.create(to="+15550009998", from_=OWN_NUMBER, twiml="<Response/>").sid


def test_twilio_serves_media_and_lists_call_recordings(twilio: FakeTwilio) -> None:
    call_sid, rec = make_sid("CA"), make_sid("RE")
    audio = b"RIFF" + bytes(range(256)) * 1000  # spans several write chunks
    twilio.add_recording(rec, audio, call_sid=call_sid, channels=2, duration=42)
    twilio.add_recording(make_sid("RE"), b"other call", call_sid=make_sid("CA"))
    base = f"{twilio.base_url}/2010-04-01/Accounts/{SID}/Recordings/{rec}"
    wav = requests.get(base + ".wav?RequestedChannels=2", auth=(SID, TOKEN), timeout=T)
    mp3 = requests.get(base + ".mp3", auth=(SID, TOKEN), timeout=T)
    assert wav.content == audio and wav.headers["Content-Type"] == "audio/x-wav"
    assert mp3.headers["Content-Type"] == "audio/mpeg"
    assert twilio.media_downloads(rec) == 2
    listed = twilio_client(twilio).calls(call_sid).recordings.list()
    assert [(r.sid, r.channels, r.duration, r.status) for r in listed] == [(rec, 2, "42", "completed")]
    assert twilio_client(twilio).recordings(rec).fetch().call_sid == call_sid
    gone = requests.get(base.replace(rec, make_sid("RE")), auth=(SID, TOKEN), timeout=T)
    assert gone.status_code == 404 and gone.json()["code"] == 20404


def test_twilio_serves_dual_recordings_as_mono_unless_both_channels_are_asked_for(
    twilio: FakeTwilio,
) -> None:
    rec, mono_rec = make_sid("RE"), make_sid("RE")
    # Four frames of (channel 1, channel 2), down to the extremes of 16 bits.
    frames = [(1000, 3000), (-2000, 2000), (32767, 32767), (-32768, -32767)]
    stereo = make_wav(struct.pack("<8h", *(sample for frame in frames for sample in frame)), channels=2)
    twilio.add_recording(rec, stereo, channels=2)
    mono = make_wav(struct.pack("<2h", 5, -5))
    twilio.add_recording(mono_rec, mono)
    blob_rec = make_sid("RE")
    twilio.add_recording(blob_rec, b"RIFF but no WAV", channels=2)
    base = f"{twilio.base_url}/2010-04-01/Accounts/{SID}/Recordings"

    def served(path: str) -> bytes:
        answer = requests.get(f"{base}/{path}", auth=(SID, TOKEN), timeout=T)
        assert answer.status_code == 200
        return answer.content

    assert served(f"{rec}.wav?RequestedChannels=2") == stereo
    for path in (f"{rec}.wav", f"{rec}", f"{rec}.wav?RequestedChannels=1"):
        with wave.open(io.BytesIO(served(path))) as mixed:
            assert (mixed.getnchannels(), mixed.getsampwidth(), mixed.getframerate()) == (1, 2, 8000)
            frames = mixed.readframes(mixed.getnframes())
        assert list(struct.unpack("<4h", frames)) == [2000, 0, 32767, -32768]
    assert served(f"{mono_rec}.wav") == mono == served(f"{mono_rec}.wav?RequestedChannels=2")
    assert served(f"{blob_rec}.wav") == b"RIFF but no WAV", "bytes that are no WAV travel unchanged"
    with pytest.raises(ValueError, match="a 2-channel WAV added as a 1-channel recording"):
        twilio.add_recording(make_sid("RE"), stereo, channels=1)


def test_twilio_fault_injection(twilio: FakeTwilio) -> None:
    rec, call_sid = make_sid("RE"), make_sid("CA")
    twilio.add_recording(rec, b"x" * 10_000, call_sid=call_sid)
    media = f"{twilio.base_url}/2010-04-01/Accounts/{SID}/Recordings/{rec}"
    listing = f"{twilio.base_url}/2010-04-01/Accounts/{SID}/Calls/{call_sid}/Recordings.json"
    get = requests.Session()
    get.auth = (SID, TOKEN)
    twilio.truncate_next_media()
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        get.get(media, timeout=T)
    twilio.fail_next("media", status=503, times=2)
    assert [get.get(media, timeout=T).status_code for _ in range(3)] == [503, 503, 200]
    twilio.drop_next("recordings_list")
    with pytest.raises(requests.ConnectionError):
        get.get(listing, timeout=T)
    twilio.delay_next("recordings_list", 0.4)
    with pytest.raises(requests.Timeout):
        get.get(listing, timeout=0.1)
    assert get.get(listing, timeout=T).json()["recordings"][0]["sid"] == rec


# --- OpenAPI --------------------------------------------------------------


def test_transcript_params_validation_follows_the_api() -> None:
    ok = {"audio_url": "https://cdn.assemblyai.com/upload/x", "speech_models": SPEECH}
    assert transcript_params_errors({**ok, "multichannel": True, "language_code": "no"}) == []
    assert transcript_params_errors({"audio_url": ok["audio_url"]}) == [
        "$: 'speech_models' is a required property"
    ]
    assert "('speech_model_x' was unexpected)" in transcript_params_errors({**ok, "speech_model_x": 1})[0]
    assert transcript_params_errors({**ok, "audio_url": "s3://bucket/a.wav"}) == [
        "$.audio_url: 's3://bucket/a.wav' is not a 'url'"
    ]


def test_missing_spec_names_the_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CALLSCRIBE_SHARED_DIR", str(tmp_path))
    with pytest.raises(
        FileNotFoundError,
        match=re.escape(str(tmp_path / "reference" / "assemblyai-openapi.yml")),
    ):
        load_spec()


# --- AssemblyAI -----------------------------------------------------------


def test_assemblyai_requires_exact_api_key(aai: FakeAssemblyAI) -> None:
    for headers in ({}, {"authorization": "Bearer " + KEY}):
        r = requests.get(f"{aai.base_url}/v2/transcript", headers=headers, timeout=T)
        assert r.status_code == 401
        assert r.json() == {"error": "Authentication error, API token missing/invalid"}


def test_assemblyai_decodes_chunked_upload(aai: FakeAssemblyAI) -> None:
    parts = [b"RIFF", b"\x00" * 70_000, b"WAVEdata"]
    r = requests.post(
        f"{aai.base_url}/v2/upload",
        data=iter(parts),
        headers={"authorization": KEY},
        timeout=T,
    )
    assert r.json()["upload_url"].startswith("https://cdn.assemblyai.com/upload/")
    assert aai.uploads[0]["chunked"] is True and aai.uploads[0]["data"] == b"".join(parts)


def test_assemblyai_rejects_invalid_transcript_params(aai: FakeAssemblyAI) -> None:
    spec_or_skip()
    url, headers = f"{aai.base_url}/v2/transcript", {"authorization": KEY}
    bodies = [
        {"audio_url": "https://example.com/a.wav"},  # no speech_models
        {
            "audio_url": "https://example.com/a.wav",
            "speech_models": SPEECH,
            "speaker_count": 2,
        },
        {
            "audio_url": "https://cdn.assemblyai.com/upload/not-ours",
            "speech_models": SPEECH,
        },
    ]
    answers = [requests.post(url, json=b, headers=headers, timeout=T) for b in bodies]
    assert [a.status_code for a in answers] == [400, 400, 403]
    assert "speech_models" in answers[0].json()["error"]
    assert [r["body"] for r in aai.rejected] == bodies and aai.submissions == []


def test_assemblyai_completes_transcripts_per_spec(aai: FakeAssemblyAI) -> None:
    spec_or_skip()
    audio = b"RIFF-two-party-call"
    utterances = [
        {"speaker": "A", "text": "Hello there."},
        {"speaker": "B", "text": "Hi, who is this?"},
    ]
    aai.set_result_for_audio(audio, "Hello there. Hi, who is this?", utterances)
    created = submit(aai, audio, speaker_labels=True)
    dual = submit(aai, audio, multichannel=True)
    plain = submit(aai, b"unregistered")
    assert created["status"] == "queued" and created["speech_models"] == SPEECH
    headers = {"authorization": KEY}
    aai.wait_for(lambda: all(j.transcript["status"] == "completed" for j in aai.jobs.values()), 2)
    got = {
        t["id"]: requests.get(f"{aai.base_url}/v2/transcript/{t['id']}", headers=headers, timeout=T).json()
        for t in (created, dual, plain)
    }
    validator = component_validator("Transcript")
    for transcript in got.values():
        validator.validate(transcript)
    assert [u["speaker"] for u in got[created["id"]]["utterances"]] == ["A", "B"]
    assert [u["channel"] for u in got[dual["id"]]["utterances"]] == ["1", "2"]
    assert got[dual["id"]]["audio_channels"] == 2
    assert got[plain["id"]]["text"] == "transcript of 12 bytes" and got[plain["id"]]["utterances"] is None
    assert got[plain["id"]]["speech_model_used"] == "universal-3-pro"
    assert aai.fetches(created["id"]) == 1
    listing = requests.get(f"{aai.base_url}/v2/transcript?limit=2", headers=headers, timeout=T).json()
    component_validator("TranscriptList").validate(listing)
    assert [t["id"] for t in listing["transcripts"]] == [plain["id"], dual["id"]]


def test_webhook_carries_header_keeps_query_and_retries_5xx(
    aai: FakeAssemblyAI,
) -> None:
    spec_or_skip()
    receiver = Receiver([500, 503, 200])
    try:
        aai.route_webhooks("https://callscribe.example", receiver.origin)
        public = "https://callscribe.example/assemblyai/webhook?recording=12&sig=a%2Fb"
        t = submit(
            aai,
            b"audio",
            webhook_url=public,
            webhook_auth_header_name="X-Callscribe-Secret",
            webhook_auth_header_value="s3cret",
        )
        aai.wait_for(lambda: aai.jobs[t["id"]].transcript["webhook_status_code"] == 200, 2)
        assert [a["status"] for a in aai.webhook_attempts] == [500, 503, 200]
        path, headers, body = receiver.hits[-1]
        assert path == "/assemblyai/webhook?recording=12&sig=a%2Fb"
        assert headers["X-Callscribe-Secret"] == "s3cret"
        component_validator("TranscriptReadyNotification").validate(json.loads(body))
        assert aai.transcript(t["id"])["webhook_auth"] is True
    finally:
        receiver.close()


def test_webhook_4xx_is_final_and_lost_webhooks_never_arrive() -> None:
    receiver = Receiver([400])
    with FakeAssemblyAI(KEY, auto_complete=False, webhook_retry_interval=0.02) as aai:
        try:
            aai.route_webhooks("https://callscribe.example", receiver.origin)
            hook = {"webhook_url": "https://callscribe.example/hook"}
            first, second = submit(aai, b"a", **hook), submit(aai, b"b", **hook)
            assert aai.transcript(first["id"])["status"] == "queued"
            aai.fail(first["id"], error="Download error")
            aai.lose_webhooks()
            aai.complete(second["id"], text="done")
            aai.wait_for(lambda: aai.webhook_attempts, 1)
            threading.Event().wait(0.15)  # several retry intervals: no retry may follow
            assert [(a["transcript_id"], a["status"]) for a in aai.webhook_attempts] == [(first["id"], 400)]
            assert aai.transcript(first["id"])["error"] == "Download error"
            assert aai.lost_webhooks == [second["id"]] and len(receiver.hits) == 1
        finally:
            receiver.close()


def test_assemblyai_fault_injection(aai: FakeAssemblyAI) -> None:
    headers = {"authorization": KEY}
    body = {"audio_url": "https://example.com/a.wav", "speech_models": SPEECH}
    url = f"{aai.base_url}/v2/transcript"
    aai.fail_next("submit", retry_after=7)
    r = requests.post(url, json=body, headers=headers, timeout=T)
    assert (r.status_code, r.headers["Retry-After"]) == (429, "7")
    aai.fail_next("submit", retry_after="Wed, 21 Oct 2026 07:28:00 GMT")
    r = requests.post(url, json=body, headers=headers, timeout=T)
    assert (r.status_code, r.headers["Retry-After"]) == (429, "Wed, 21 Oct 2026 07:28:00 GMT")
    aai.drop_next("submit", after_handling=True)  # request lands, reply is lost
    with pytest.raises(requests.ConnectionError):
        requests.post(url, json=body, headers=headers, timeout=T)
    assert len(aai.submissions) == 1
    aai.delay_next("fetch", 0.4)
    with pytest.raises(requests.Timeout):
        requests.get(f"{url}/{next(iter(aai.jobs))}", headers=headers, timeout=0.1)
    aai.drop_next("upload")
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{aai.base_url}/v2/upload", data=b"x", headers=headers, timeout=T)
    assert aai.uploads == [] and aai.errors == []
