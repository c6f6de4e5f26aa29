"""Soak: push many simulated calls through the real service while the providers misbehave.

    .venv/bin/python -m bench.soak [--calls 1000] [--concurrency 8] [--fault-rate 0.1]
                                   [--storage sqlite|postgres+redis] [--timeout 600] [--json PATH]

Starts fake Twilio and fake AssemblyAI, and callscribe as the Procfile runs it
(release, gunicorn, worker) with fast reliability settings; plays each call's
signed Twilio callbacks (some duplicated or out of order), injects random
provider faults, waits until every recording is transcribed (or the deadline),
then reads the service's database, the fakes' logs and the service's logs.
Exit code 0 only when no recording was lost or duplicated. See README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import struct
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
import sqlalchemy as sa
from twilio.request_validator import RequestValidator

from bench.soak import figures
from bench.soak.fakes import FaultInjector, SoakAssemblyAI, SoakTwilio, catalogue
from tests.e2e.service import Service, free_port
from tests.e2e.twilio_side import twilio_time
from tests.fakes import audio, make_sid
from tests.helpers import (
    ACCOUNT_SID,
    ADMIN_PASSWORD,
    ASSEMBLYAI_KEY,
    AUTH_TOKEN,
    BASE_URL,
    SECRET_KEY,
    TWILIO_NUMBER,
)

CALL_EVENTS = ("ringing", "in-progress", "completed")
# Twilio gives up on a callback that has not been answered within 15 seconds.
TWILIO_CALLBACK_TIMEOUT = 15.0
PERCENTILES = (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))


# -- options --------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak",
        description="Push simulated calls through the real service, with provider faults, and report.",
    )
    parser.add_argument("--calls", type=int, default=1000, help="calls to simulate (default 1000)")
    parser.add_argument("--concurrency", type=int, default=8, help="calls played at once (default 8)")
    parser.add_argument(
        "--fault-rate", type=float, default=0.1, help="chance per call of one injected fault (default 0.1)"
    )
    parser.add_argument(
        "--faults",
        default="",
        metavar="WORDS",
        help="only faults whose name contains one of these comma-separated words "
        "(e.g. 'slow' or 'upload,webhook'); default all",
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="overall deadline in seconds, from the first call"
    )
    parser.add_argument("--storage", choices=("sqlite", "postgres+redis"), default="sqlite")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("TEST_DATABASE_URL"),
        help="PostgreSQL for --storage postgres+redis (default $TEST_DATABASE_URL); "
        "the soak works in a fresh schema and drops it afterwards",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("TEST_REDIS_URL"),
        help="Redis for --storage postgres+redis (default $TEST_REDIS_URL); "
        "the soak uses a queue of its own and removes its keys afterwards",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON here")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    parser.add_argument("--progress", type=float, default=5.0, help="seconds between progress lines")
    parser.add_argument(
        "--settle",
        type=float,
        default=None,
        help="seconds to keep watching after the last transcript, for late duplicates "
        "(default RECONCILE_INTERVAL + 1)",
    )
    parser.add_argument(
        "--processing-delay",
        type=float,
        nargs=2,
        default=(0.05, 1.0),
        metavar=("MIN", "MAX"),
        help="AssemblyAI's processing time per transcript, drawn between MIN and MAX seconds",
    )
    parser.add_argument("--duplicate-rate", type=float, default=0.1, help="chance of a repeated callback")
    parser.add_argument("--reorder-rate", type=float, default=0.2, help="chance of call events out of order")
    parser.add_argument("--web-concurrency", type=int, default=2)
    parser.add_argument("--worker-threads", type=int, default=4)
    parser.add_argument("--reconcile-interval", type=int, default=5)
    parser.add_argument("--job-timeout", type=int, default=10)
    parser.add_argument("--http-timeout", type=int, default=3)
    parser.add_argument("--workdir", type=Path, help="folder for the service's logs and SQLite files")
    parser.add_argument(
        "--keep", action="store_true", help="keep the work folder after a passing run (it is kept on failure)"
    )
    args = parser.parse_args(argv)
    if args.calls < 1 or args.concurrency < 1:
        parser.error("--calls and --concurrency must be at least 1")
    if not 0.0 <= args.fault_rate <= 1.0:
        parser.error("--fault-rate must be between 0 and 1")
    if args.storage == "postgres+redis" and not (args.database_url and args.redis_url):
        parser.error("--storage postgres+redis needs --database-url and --redis-url (or TEST_*_URL)")
    if args.faults and not catalogue(args.faults):
        parser.error(f"--faults {args.faults!r} matches none of: {', '.join(f.label for f in catalogue())}")
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(2**32)
    if args.settle is None:
        args.settle = args.reconcile_interval + 1.0
    return args


# -- storage -----------------------------------------------------------------------


def storage_settings(args: argparse.Namespace, instance: Path, stack: ExitStack) -> dict[str, str]:
    """The service's storage variables; PostgreSQL and Redis get a schema and queue of their own."""
    if args.storage == "sqlite":
        return {"DATABASE_URL": f"sqlite:///{instance / 'callscribe.db'}"}
    tag = uuid.uuid4().hex[:12]
    schema, queue_name = f"soak_{tag}", f"soak-{tag}"
    admin = figures.database_engine(args.database_url)
    with admin.begin() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')

    def drop() -> None:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()
        import redis

        with redis.Redis.from_url(args.redis_url) as client:
            for key in client.scan_iter(match=f"*{queue_name}*"):
                client.delete(key)
        print(f"cleaned up: schema {schema} dropped, Redis keys of queue {queue_name} removed")

    stack.callback(drop)
    separator = "&" if "?" in args.database_url else "?"
    return {
        "DATABASE_URL": f"{args.database_url}{separator}options={quote(f'-csearch_path={schema}')}",
        "REDIS_URL": args.redis_url,
        "QUEUE_NAME": queue_name,
    }


# -- the calls ---------------------------------------------------------------------


def wav(n: int, channels: int, rng: random.Random) -> bytes:
    """A tiny 8 kHz WAV whose bytes are unique to call ``n``."""
    frames = struct.pack("<I", n) * channels + rng.randbytes(396 * 2 * channels)
    return audio.wav(frames, channels=channels)


@dataclass
class PlannedCall:
    n: int
    rng: random.Random
    channels: int
    audio: bytes
    text: str
    utterances: list[dict[str, Any]]
    call_sid: str = field(default_factory=lambda: make_sid("CA"))
    recording_sid: str = field(default_factory=lambda: make_sid("RE"))
    caller: str = ""
    duration: int = 0
    # Filled in while it is played:
    events: list[str] = field(default_factory=list)
    callback_sent_at: float | None = None  # time.time() of the first recording-status POST
    callbacks: int = 0


def plan(n: int, seed: int) -> PlannedCall:
    rng = random.Random(f"{seed}-{n}")
    channels = rng.choice((1, 2))
    words = " ".join(rng.choice(("alpha", "bravo", "delta", "echo", "kilo", "lima")) for _ in range(4))
    if channels == 2:
        utterances = [
            {"channel": 2, "text": f"Soak call {n}, agent."},
            {"channel": 1, "text": f"Caller {n}: {words}."},
        ]
    else:
        utterances = [{"speaker": "A", "text": f"Soak call {n}: {words}."}]
    return PlannedCall(
        n=n,
        rng=rng,
        channels=channels,
        audio=wav(n, channels, rng),
        text=" ".join(u["text"] for u in utterances),
        utterances=utterances,
        caller=f"+1415555{n % 10000:04d}",
        duration=rng.randint(3, 120),
    )


class Stopped(Exception):
    pass


class Traffic:
    """Plays calls as Twilio would, thread-safely counting what it sent and what came back."""

    def __init__(
        self,
        args: argparse.Namespace,
        local_url: str,
        twilio: SoakTwilio,
        assemblyai: SoakAssemblyAI,
        injector: FaultInjector,
        stop: threading.Event,
    ) -> None:
        self.args = args
        self.local_url = local_url
        self.twilio = twilio
        self.assemblyai = assemblyai
        self.injector = injector
        self.stop = stop
        self.lock = threading.Lock()
        self.sent: Counter[str] = Counter()
        self.answers: Counter[str] = Counter()  # non-2xx answers and connection errors, by request
        self.answer_seconds: list[float] = []  # how long the service took to answer each callback
        self.validator = RequestValidator(AUTH_TOKEN)
        self._local = threading.local()

    def _count(self, counter: Counter[str], key: str) -> None:
        with self.lock:
            counter[key] += 1

    def _post(self, path: str, params: dict[str, str]) -> requests.Response:
        """POST a form signed over its public URL, as Twilio does; delivered to the local port."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        signature = self.validator.compute_signature(BASE_URL + path, params)
        started = time.monotonic()
        try:
            return session.post(
                self.local_url + path,
                data=params,
                headers={"X-Twilio-Signature": signature, "User-Agent": "TwilioProxy/1.1"},
                timeout=TWILIO_CALLBACK_TIMEOUT,
            )
        finally:
            with self.lock:
                self.answer_seconds.append(time.monotonic() - started)

    def _deliver(self, path: str, params: dict[str, str], what: str) -> bool:
        """POST a signed callback; on 5xx or a dropped connection try again, as Twilio does."""
        for attempt in range(3):
            if self.stop.is_set():
                raise Stopped
            if attempt:
                self._count(self.sent, f"{what} (Twilio retry)")
                time.sleep(1.0)
            try:
                response = self._post(path, params)
            except requests.RequestException as exc:
                self._count(self.answers, f"{what}: {type(exc).__name__}")
                continue
            if 200 <= response.status_code < 300:
                return True
            self._count(self.answers, f"{what}: HTTP {response.status_code}")
            if response.status_code < 500:
                return False
        return False

    def play(self, call: PlannedCall) -> None:
        rng = call.rng
        events = list(CALL_EVENTS)
        if rng.random() < self.args.reorder_rate:
            while events == list(CALL_EVENTS):
                rng.shuffle(events)
            self._count(self.sent, "calls with events out of order")
        if rng.random() < self.args.duplicate_rate:
            events.insert(rng.randrange(len(events) + 1), rng.choice(CALL_EVENTS))
            self._count(self.sent, "call events duplicated")
        call.events = events
        for status in events:
            params = {
                "AccountSid": ACCOUNT_SID,
                "ApiVersion": "2010-04-01",
                "CallSid": call.call_sid,
                "CallStatus": status,
                "Direction": "inbound",
                "From": call.caller,
                "To": TWILIO_NUMBER,
                "Timestamp": twilio_time(),
            }
            if status == "completed":
                params["CallDuration"] = str(call.duration + 2)
            self._deliver("/twilio/call-status", params, "call-status")
            self._count(self.sent, "call-status events")

        source = "DialVerb" if call.channels == 2 else "RecordVerb"
        self.twilio.add_recording(
            call.recording_sid,
            call.audio,
            call.call_sid,
            channels=call.channels,
            duration=call.duration,
            source=source,
        )
        self.assemblyai.set_result_for_audio(call.audio, call.text, call.utterances)
        if rng.random() < self.args.fault_rate:
            self.injector.inject_one()

        params = {
            "AccountSid": ACCOUNT_SID,
            "CallSid": call.call_sid,
            "RecordingSid": call.recording_sid,
            "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}"
            f"/Recordings/{call.recording_sid}",
            "RecordingStatus": "completed",
            "RecordingDuration": str(call.duration),
            "RecordingChannels": str(call.channels),
            "RecordingSource": source,
            "RecordingStartTime": twilio_time(),
            "ErrorCode": "0",
        }
        repeats = 2 if rng.random() < self.args.duplicate_rate else 1
        for i in range(repeats):
            if i:
                time.sleep(rng.uniform(0.0, 0.5))
                self._count(self.sent, "recording callbacks duplicated")
            if call.callback_sent_at is None:
                call.callback_sent_at = time.time()
            self._deliver("/twilio/recording-status", params, "recording-status")
            call.callbacks += 1
            self._count(self.sent, "recording-status callbacks")
        self._count(self.sent, f"recordings ({call.channels} channel{'s' if call.channels == 2 else ''})")


# -- running -----------------------------------------------------------------------


def log(message: str, started: float) -> None:
    print(f"[{time.monotonic() - started:7.1f} s] {message}", flush=True)


def service_settings(
    args: argparse.Namespace, instance: Path, twilio: SoakTwilio, aai: SoakAssemblyAI
) -> dict:
    return {
        "CALLSCRIBE_INSTANCE_PATH": str(instance),
        "SECRET_KEY": SECRET_KEY,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_PHONE_NUMBER": TWILIO_NUMBER,
        "TWILIO_API_BASE_URL": twilio.base_url,
        "BASE_URL": BASE_URL,
        "ASSEMBLYAI_API_KEY": ASSEMBLYAI_KEY,
        "ASSEMBLYAI_BASE_URL": aai.base_url,
        "ADMIN_PASSWORD": ADMIN_PASSWORD,
        "PORT": str(free_port()),
        "HOST": "127.0.0.1",
        "WEB_CONCURRENCY": str(args.web_concurrency),
        "WORKER_THREADS": str(args.worker_threads),
        "RECONCILE_INTERVAL": str(args.reconcile_interval),
        "JOB_TIMEOUT": str(args.job_timeout),
        "HTTP_TIMEOUT": str(args.http_timeout),
        "LOG_LEVEL": "INFO",
    }


@dataclass
class Outcome:
    interrupted: bool = False
    deadline_passed: bool = False
    service_died: str | None = None
    push_errors: Counter[str] = field(default_factory=Counter)
    push_seconds: float | None = None
    drain_seconds: float | None = None


def run(args: argparse.Namespace, stack: ExitStack, started: float, workdir: Path) -> dict[str, Any]:
    instance = workdir / "instance"
    instance.mkdir(exist_ok=True)
    log(f"work folder {workdir} (service logs: web.log, worker.log); seed {args.seed}", started)

    twilio = stack.enter_context(SoakTwilio(ACCOUNT_SID, AUTH_TOKEN, slow_threshold=args.http_timeout))
    aai = stack.enter_context(
        SoakAssemblyAI(
            ASSEMBLYAI_KEY, delay_range=tuple(args.processing_delay), slow_threshold=args.http_timeout
        )
    )
    settings = service_settings(args, instance, twilio, aai)
    settings.update(storage_settings(args, instance, stack))
    service = Service(settings, workdir)
    stack.callback(service.stop)  # registered before start: a half-started service is stopped too
    log(f"starting the service ({args.storage}) on {service.local_url}", started)
    service.start(timeout=60.0)
    aai.route_webhooks(BASE_URL, service.local_url)
    engine = figures.database_engine(settings["DATABASE_URL"])
    stack.callback(engine.dispose)

    stop = threading.Event()
    injector = FaultInjector(twilio, aai, random.Random(args.seed), float(args.http_timeout), args.faults)
    traffic = Traffic(args, service.local_url, twilio, aai, injector, stop)
    calls = [plan(n, args.seed) for n in range(1, args.calls + 1)]
    outcome = Outcome()

    log(
        f"pushing {args.calls} calls, {args.concurrency} at a time, fault rate {args.fault_rate}",
        started,
    )
    push_started = time.monotonic()
    deadline = push_started + args.timeout
    executor = ThreadPoolExecutor(max_workers=args.concurrency, thread_name_prefix="call")
    stack.callback(executor.shutdown, wait=True, cancel_futures=True)
    stack.callback(stop.set)
    futures: list[Future[None]] = [executor.submit(traffic.play, call) for call in calls]
    last_print = 0.0
    all_pushed_at: float | None = None
    try:
        while True:
            now = time.monotonic()
            done = sum(f.done() for f in futures)
            if done == len(futures) and all_pushed_at is None:
                all_pushed_at = now
                outcome.push_seconds = now - push_started
            announced = sum(1 for c in calls if c.callbacks)
            try:
                transcribed, failed = figures.progress(engine)
            except sa.exc.OperationalError as exc:  # the service's database is busy or down
                log(f"could not read the service's database ({exc.orig}); trying again", started)
                time.sleep(1.0)
                continue
            finished = all_pushed_at is not None and transcribed + failed >= announced
            if finished or now - last_print >= args.progress:
                last_print = now
                log(
                    f"pushed {done}/{len(calls)}, transcribed {transcribed}/{len(calls)}"
                    + (f", failed {failed}" if failed else ""),
                    started,
                )
            if finished:
                outcome.drain_seconds = now - push_started
                break
            dead = [p for p in service.processes if p.exit_code is not None]
            if dead:
                outcome.service_died = ", ".join(f"{p.name} exited with {p.exit_code}" for p in dead)
                log(f"the service died: {outcome.service_died}", started)
                break
            if now >= deadline:
                outcome.deadline_passed = True
                log(f"deadline of {args.timeout:.0f} s passed", started)
                break
            time.sleep(0.5)
        if outcome.drain_seconds is not None and args.settle > 0:
            log(f"all done; watching {args.settle:.0f} s more for late duplicates", started)
            time.sleep(args.settle)
    except KeyboardInterrupt:
        outcome.interrupted = True
        log("interrupted: stopping the calls, then reporting what there is", started)
    stop.set()
    executor.shutdown(wait=True, cancel_futures=True)
    for future in futures:
        if future.done() and not future.cancelled() and future.exception() is not None:
            error = future.exception()
            if not isinstance(error, Stopped):
                outcome.push_errors[f"{type(error).__name__}: {error}"[:200]] += 1

    report = collect(args, engine, service, twilio, aai, injector, traffic, calls, outcome)
    report["wall_seconds"] = round(time.monotonic() - started, 1)
    return report


def collect(
    args: argparse.Namespace,
    engine: sa.Engine,
    service: Service,
    twilio: SoakTwilio,
    aai: SoakAssemblyAI,
    injector: FaultInjector,
    traffic: Traffic,
    calls: list[PlannedCall],
    outcome: Outcome,
) -> dict[str, Any]:
    rows = figures.recording_rows(engine)
    sid_by_id = {row.id: sid for sid, row in rows.items()}
    statuses = figures.call_statuses(engine)
    announced = [c for c in calls if c.callbacks]

    transcribed, latencies, lost, mismatched = [], [], [], []
    for call in announced:
        row = rows.get(call.recording_sid)
        if row is not None and row.stage == "transcribed" and row.transcript_status == "completed":
            transcribed.append(call)
            if row.text != call.text:
                mismatched.append(
                    {"recording_sid": call.recording_sid, "expected": call.text, "got": row.text}
                )
            if row.completed_at is not None and call.callback_sent_at is not None:
                latencies.append(row.completed_at.timestamp() - call.callback_sent_at)
        else:
            lost.append(
                {
                    "recording_sid": call.recording_sid,
                    "stage": row.stage if row else "no row",
                    "transcript": row.transcript_status if row else None,
                    "attempts": row.attempts if row else None,
                    "last_error": row.last_error if row else None,
                }
            )
    failed = Counter((row.last_error or "?") for row in rows.values() if row.stage == "failed")
    # How long the backlog took to drain once the calls stopped: from the last
    # recording's first callback to the last transcript stored.
    last_callback = max(
        (c.callback_sent_at for c in announced if c.callback_sent_at is not None), default=None
    )
    last_stored = max(
        (r.completed_at.timestamp() for c in transcribed if (r := rows[c.recording_sid]).completed_at),
        default=None,
    )
    last_gap = None if last_callback is None or last_stored is None else last_stored - last_callback
    wrong_status = {
        c.call_sid: statuses.get(c.call_sid) for c in announced if statuses.get(c.call_sid) != "completed"
    }

    with aai.lock:
        submissions = list(aai.submissions)
        uploads = [bytes(u["data"]) for u in aai.uploads]
        webhook_answers = Counter(
            str(a["status"] or a["error"])
            for a in aai.webhook_attempts
            if not (a["status"] and 200 <= a["status"] < 300)
        )
        aai_requests = Counter(r.kind or "unrouted" for r in aai.requests)
        aai_errors = list(aai.errors)
        rejected = [r["error"] for r in aai.rejected]
    with twilio.lock:
        twilio_requests = Counter(r.kind or "unrouted" for r in twilio.requests)
        twilio_errors = list(twilio.errors)

    per_recording = Counter(figures.webhook_recording_id(s.get("webhook_url")) for s in submissions)
    submitted_twice = {
        sid_by_id.get(rid, f"id {rid}"): n for rid, n in per_recording.items() if rid is not None and n > 1
    }
    call_by_audio = {c.audio: c for c in calls}
    upload_counts = Counter(uploads)
    uploaded_twice = {
        (call_by_audio[a].recording_sid if a in call_by_audio else f"{len(a)} unknown bytes"): n
        for a, n in upload_counts.items()
        if n > 1
    }
    transcripts_twice = {
        sid_by_id.get(rid, f"id {rid}"): n for rid, n in figures.transcripts_per_recording(engine).items()
    }
    duplicates = len(set(submitted_twice) | set(uploaded_twice) | set(transcripts_twice))

    logs = figures.scan_logs([service.folder / "release.log", service.web.log_path, service.worker.log_path])
    injected = injector.injected
    triggered = injector.triggered()

    def pct(values: list[float], q: float) -> float | None:
        value = figures.percentile(values, q)
        return None if value is None else round(value, 3)

    with traffic.lock:
        answer_seconds = list(traffic.answer_seconds)

    return {
        "storage": args.storage,
        "seed": args.seed,
        "settings": {
            "calls": args.calls,
            "concurrency": args.concurrency,
            "fault_rate": args.fault_rate,
            "faults": args.faults or "all",
            "timeout": args.timeout,
            "WEB_CONCURRENCY": args.web_concurrency,
            "WORKER_THREADS": args.worker_threads,
            "RECONCILE_INTERVAL": args.reconcile_interval,
            "JOB_TIMEOUT": args.job_timeout,
            "HTTP_TIMEOUT": args.http_timeout,
            "processing_delay": list(args.processing_delay),
        },
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "interrupted": outcome.interrupted,
        "deadline_passed": outcome.deadline_passed,
        "service_died": outcome.service_died,
        "calls_pushed": len(announced),
        "traffic": dict(traffic.sent),
        "push_errors": dict(outcome.push_errors),
        "service_answers_not_2xx": dict(traffic.answers),
        "recordings_transcribed": len(transcribed),
        "lost": len(lost),
        "lost_recordings": lost[:50],
        "duplicates": duplicates,
        "submitted_more_than_once": submitted_twice,
        "uploaded_more_than_once": uploaded_twice,
        "transcript_rows_more_than_one": transcripts_twice,
        "mismatched_transcripts": len(mismatched),
        "mismatched_samples": mismatched[:10],
        "calls_not_completed": len(wrong_status),
        "calls_not_completed_samples": dict(list(wrong_status.items())[:10]),
        "failed": sum(failed.values()),
        "failed_reasons": dict(failed),
        "faults_injected": dict(sorted(injected.items())),
        "faults_injected_total": sum(injected.values()),
        "faults_triggered": dict(sorted(triggered.items())),
        "faults_triggered_total": sum(triggered.values()),
        "latency_seconds": {q: pct(latencies, n) for q, n in PERCENTILES},
        "callback_answer_seconds": {q: pct(answer_seconds, n) for q, n in PERCENTILES},
        "callbacks_unanswered_within_15s": sum(1 for a in answer_seconds if a >= TWILIO_CALLBACK_TIMEOUT),
        "worker_jobs": figures.worker_jobs(service.worker.log_path),
        "push_seconds": None if outcome.push_seconds is None else round(outcome.push_seconds, 1),
        "drain_seconds": None if outcome.drain_seconds is None else round(outcome.drain_seconds, 1),
        "last_callback_to_last_transcript_seconds": None if last_gap is None else round(last_gap, 2),
        "provider_requests": {
            "twilio": dict(sorted(twilio_requests.items())),
            "assemblyai": dict(sorted(aai_requests.items())),
            "assemblyai_transcripts_created": len(submissions),
            "assemblyai_uploads": len(uploads),
        },
        "assemblyai_webhook_answers_not_2xx": dict(webhook_answers),
        "assemblyai_rejected_submissions": rejected[:10],
        "fake_server_errors": len(aai_errors) + len(twilio_errors),
        "service_logs": logs.as_dict(),
    }


def passed(report: dict[str, Any]) -> bool:
    return (
        report["lost"] == 0
        and report["duplicates"] == 0
        and report["mismatched_transcripts"] == 0
        and report["calls_not_completed"] == 0
        and report["calls_pushed"] == report["settings"]["calls"]
        and not report["interrupted"]
    )


def render(report: dict[str, Any]) -> str:
    s = report["settings"]
    lat = report["latency_seconds"]
    logs = report["service_logs"]
    rows: list[tuple[str, Any]] = [
        ("storage", report["storage"]),
        ("calls pushed", f"{report['calls_pushed']} of {s['calls']} ({s['concurrency']} at a time)"),
        ("recordings transcribed", report["recordings_transcribed"]),
        ("LOST", report["lost"]),
        ("DUPLICATES", report["duplicates"]),
        ("  submitted > 1", len(report["submitted_more_than_once"])),
        ("  uploaded > 1", len(report["uploaded_more_than_once"])),
        ("  transcripts rows > 1", len(report["transcript_rows_more_than_one"])),
        ("wrong transcript text", report["mismatched_transcripts"]),
        ("calls not 'completed'", report["calls_not_completed"]),
        ("failed recordings", report["failed"]),
    ]
    rows += [(f"  {n}x", reason) for reason, n in report["failed_reasons"].items()]
    rows += [
        ("faults injected", f"{report['faults_injected_total']} (rate {s['fault_rate']})"),
        ("faults triggered", report["faults_triggered_total"]),
    ]
    kinds = sorted(set(report["faults_injected"]) | set(report["faults_triggered"]))
    rows += [
        (
            f"  {k}",
            f"{report['faults_injected'].get(k, 0)} injected, {report['faults_triggered'].get(k, 0)} hit",
        )
        for k in kinds
    ]
    rows += [
        (
            "callback -> transcript",
            " ".join(f"{q} {figures.seconds(lat[q])}" for q, _ in PERCENTILES),
        ),
        (
            "callback answer time",
            " ".join(f"{q} {figures.seconds(report['callback_answer_seconds'][q])}" for q, _ in PERCENTILES)
            + f" ({report['callbacks_unanswered_within_15s']} not answered within 15 s)",
        ),
        ("push time", figures.seconds(report["push_seconds"])),
        ("time to last transcript", figures.seconds(report["drain_seconds"])),
        (
            "last callback -> last transcript",
            figures.seconds(report["last_callback_to_last_transcript_seconds"]),
        ),
        ("wall time", figures.seconds(report["wall_seconds"])),
        ("traffic", ", ".join(f"{k} {v}" for k, v in sorted(report["traffic"].items()))),
        ("service answered not 2xx", report["service_answers_not_2xx"] or "never"),
        ("AssemblyAI webhook not 2xx", report["assemblyai_webhook_answers_not_2xx"] or "never"),
        ("provider requests", report["provider_requests"]),
        ("worker jobs", report["worker_jobs"]),
        ("service log levels", logs["by_level"] or "no warnings or errors"),
        ("service log lines with", logs["serious"] or "nothing alarming"),
        ("service 5xx responses", logs["responses_5xx"] or "none"),
    ]
    if report["push_errors"]:
        rows.append(("push errors", report["push_errors"]))
    if report["fake_server_errors"] or report["assemblyai_rejected_submissions"]:
        rows.append(
            (
                "fake errors / rejected",
                (report["fake_server_errors"], report["assemblyai_rejected_submissions"]),
            )
        )
    for flag in ("interrupted", "deadline_passed", "service_died"):
        if report[flag]:
            rows.append((flag.replace("_", " "), report[flag]))
    text = figures.table(rows, f"callscribe soak: {s['calls']} calls on {report['storage']}")
    details = []
    if report["lost_recordings"]:
        details.append("lost recordings (first 50):")
        details += [f"  {json.dumps(r)}" for r in report["lost_recordings"]]
    for name in ("submitted_more_than_once", "uploaded_more_than_once", "transcript_rows_more_than_one"):
        if report[name]:
            details.append(f"{name.replace('_', ' ')}: {json.dumps(report[name])}")
    if report["mismatched_samples"]:
        details.append(f"wrong transcripts: {json.dumps(report['mismatched_samples'])}")
    if logs["errors"]:
        details.append("service errors (by kind; a chained exception shows each of its links):")
        details += [f"  {n:5d}  {e}" for e, n in logs["errors"].items()]
    if logs["warnings"]:
        details.append("service warnings (by kind):")
        details += [f"  {n:5d}  {w}" for w, n in logs["warnings"].items()]
    if logs["samples"]:
        details.append("service log lines worth a look:")
        details += [f"  {line[:400]}" for line in logs["samples"]]
    return "\n".join([text, *details])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    stack = ExitStack()
    report: dict[str, Any] | None = None
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="callscribe-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    code = 1
    try:
        report = run(args, stack, started, workdir)
        code = 0 if passed(report) else (130 if report["interrupted"] else 1)
    except KeyboardInterrupt:
        print("interrupted before the calls ran; stopping everything", file=sys.stderr)
        code = 130
    finally:
        # Cleaning up must not be cut short: a second Ctrl-C would leave processes behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.close()
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if report is not None:
        print()
        print(render(report))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
            print(f"figures written to {args.json}")
        print(f"\nRESULT: {'PASS' if code == 0 else 'FAIL'} (exit {code})")
    if code == 0 and not args.keep and args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"service logs kept in {workdir}")
    return code


if __name__ == "__main__":
    sys.exit(main())
