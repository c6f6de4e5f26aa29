"""Item 6: the relay of a long dual-channel WAV from fake Twilio to fake AssemblyAI's upload.

The service's own path: a signed recording-status callback, then the queue
worker's delivery step (``app/pipeline.py`` ``_deliver``: Twilio's media,
streamed, into AssemblyAI's ``/v2/upload``). Timed from the fakes' request
logs: from the moment fake Twilio got the media request to the moment fake
AssemblyAI had read the whole upload body. The worker's peak resident size
is taken over the whole job (the kernel's peak, reset just before).

The baselines, in the same run, between the same two fakes and timed the
same way: ``curl | curl --data-binary @-`` (the second curl reads all of
its input before it sends), and ``curl | curl -T -`` (streamed, chunked, as
the worker sends it). The fakes are Python servers in this process, so all
three share their speed; the ratio is what to read.
"""

from __future__ import annotations

import os
import subprocess
import time
import wave
from dataclasses import dataclass
from pathlib import Path

from bench.pipeline import procs
from bench.pipeline.latency import wait_stored
from bench.pipeline.stack import Running
from tests.fakes import RecordedRequest
from tests.helpers import ACCOUNT_SID, ASSEMBLYAI_KEY, AUTH_TOKEN, call_sid, recording_form, recording_sid

RATE, CHANNELS, WIDTH = 8000, 2, 2
BYTES_PER_SECOND = RATE * CHANNELS * WIDTH
SERVICE = "service (callback → worker's delivery step)"
CURL_BUFFERED = "curl | curl --data-binary @- (baseline)"
CURL_STREAMED = "curl | curl -T - (streamed, chunked)"
FIRST = 900_001  # the relay's recordings' SIDs
UPLOAD_TIMEOUT = 300.0


@dataclass
class Relay:
    store: str
    method: str
    size: int
    seconds: float
    rss_growth_mib: float | None = None  # the worker's, over its job
    peak_rss_mib: float | None = None  # a whole curl process's peak
    rss_method: str = ""

    @property
    def mb_per_s(self) -> float:
        return self.size / 1e6 / self.seconds


def write_wav(path: Path, minutes: float) -> int:
    """A dual-channel 8 kHz 16-bit WAV of ``minutes``, written a second at a time; returns its size."""
    second = os.urandom(BYTES_PER_SECOND)  # noise, the same second over and over
    with wave.open(str(path), "wb") as out:
        out.setnchannels(CHANNELS)
        out.setsampwidth(WIDTH)
        out.setframerate(RATE)
        out.setnframes(int(RATE * 60 * minutes))
        for _ in range(int(60 * minutes)):
            out.writeframesraw(second)
    return path.stat().st_size


def _media_request(running: Running, sid: str) -> RecordedRequest:
    found = [r for r in running.twilio.requests_of("media") if r.params.get("recording_sid") == sid]
    if not found:
        raise RuntimeError(f"fake Twilio never saw a media request for {sid}")
    return found[-1]


def _wait_upload(running: Running, uploads_before: int) -> RecordedRequest:
    uploads = running.assemblyai.wait_for(
        lambda: running.assemblyai.requests_of("upload")[uploads_before:], timeout=UPLOAD_TIMEOUT
    )
    upload: RecordedRequest = uploads[0]
    return upload


def _check(upload: RecordedRequest, audio: bytes, method: str) -> None:
    if upload.body != audio:
        raise RuntimeError(
            f"{method}: fake AssemblyAI got {len(upload.body)} bytes, not the {len(audio)} sent"
        )


def through_service(running: Running, audio: bytes, n: int) -> Relay:
    """One recording callback for the long recording; the worker relays it."""
    call, sid = call_sid(FIRST + n), recording_sid(FIRST + n)
    duration = len(audio) // BYTES_PER_SECOND
    running.twilio.add_recording(sid, audio, call, channels=CHANNELS, duration=duration)
    worker = running.service.worker.pid
    assert worker is not None
    uploads_before = len(running.assemblyai.requests_of("upload"))
    form = recording_form(call, sid, RecordingChannels="2", RecordingDuration=str(duration))
    with procs.PeakWatch(worker) as watch, running.engine.connect() as connection:
        running.post_callback(form)
        upload = _wait_upload(running, uploads_before)
        if not wait_stored(connection, sid, UPLOAD_TIMEOUT):
            raise RuntimeError(f"the relay's transcript for {sid} was not stored")
    _check(upload, audio, SERVICE)
    seconds = upload.time - _media_request(running, sid).time
    return Relay(running.name, SERVICE, len(audio), seconds, watch.growth, rss_method=watch.method)


def through_curl(running: Running, audio: bytes, method: str) -> Relay:
    """The same bytes between the same fakes, by two curls and a pipe."""
    sid = recording_sid(FIRST - 1)
    if sid not in running.twilio.recordings:
        running.twilio.add_recording(sid, audio, call_sid(FIRST - 1), channels=CHANNELS)
    media_url = f"{running.twilio.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{sid}.wav"
    download = [
        "curl",
        "-sS",
        "--fail",
        "-u",
        f"{ACCOUNT_SID}:{AUTH_TOKEN}",
        f"{media_url}?RequestedChannels=2",
    ]
    send = ["--data-binary", "@-"] if method == CURL_BUFFERED else ["-T", "-", "-X", "POST"]
    upload_command = [
        "curl",
        "-sS",
        "--fail",
        "--max-time",
        "300",
        "-o",
        os.devnull,
        "-H",
        f"authorization: {ASSEMBLYAI_KEY}",
        "-H",
        "Content-Type: application/octet-stream",
        *send,
        f"{running.assemblyai.base_url}/v2/upload",
    ]
    uploads_before = len(running.assemblyai.requests_of("upload"))
    fetching = subprocess.Popen(download, stdout=subprocess.PIPE)
    sending = subprocess.Popen(upload_command, stdin=fetching.stdout)
    assert fetching.stdout is not None
    fetching.stdout.close()  # the pipe is the second curl's now
    peak = procs.watch_peak(sending.pid)
    # Ended but not reaped (so its id is not reused) until the sampling has stopped.
    os.waitid(os.P_PID, sending.pid, os.WEXITED | os.WNOWAIT)
    peak_rss = peak()
    if sending.wait() or fetching.wait(UPLOAD_TIMEOUT):
        raise RuntimeError(f"{method}: curl exited with {fetching.returncode} and {sending.returncode}")
    upload = _wait_upload(running, uploads_before)
    _check(upload, audio, method)
    seconds = upload.time - _media_request(running, sid).time
    return Relay(running.name, method, len(audio), seconds, peak_rss_mib=peak_rss)


def median(runs: list[Relay]) -> Relay:
    ordered = sorted(runs, key=lambda r: r.seconds)
    middle = ordered[len(ordered) // 2]
    growths = [r.rss_growth_mib for r in runs if r.rss_growth_mib is not None]
    peaks = [r.peak_rss_mib for r in runs if r.peak_rss_mib is not None]
    # The time of the middle run; the memory of the worst one.
    return Relay(
        middle.store,
        middle.method,
        middle.size,
        middle.seconds,
        max(growths) if growths else None,
        max(peaks) if peaks else None,
        middle.rss_method,
    )


def measure(running: Running, wav_path: Path, runs: int) -> list[Relay]:
    audio = wav_path.read_bytes()
    print(f"  {running.name}: relay of {len(audio) / 1e6:.1f} MB, {runs} run(s) each way", flush=True)
    done: dict[str, list[Relay]] = {SERVICE: [], CURL_BUFFERED: [], CURL_STREAMED: []}
    for n in range(runs):
        # Alternated, so a slower moment of the machine does not fall on one side only.
        done[SERVICE].append(through_service(running, audio, n))
        time.sleep(0.5)
        for method in (CURL_BUFFERED, CURL_STREAMED):
            done[method].append(through_curl(running, audio, method))
            time.sleep(0.5)
    return [median(found) for found in done.values()]
