"""Webhook acknowledgement: how many authenticated provider callbacks the service answers, and how fast.

wrk (Debian's) posts pre-signed Twilio ``recording-status`` callbacks, each
with its own RecordingSid, to the web process as the Procfile runs it
(gunicorn, gunicorn.conf.py), on the ``completed`` path (stores and
enqueues) and the ``absent`` path (stores only), and AssemblyAI's
"transcript ready" webhook for recordings whose transcripts are in flight
(checks the id, enqueues the fetch). The baseline, measured in the same run
under the same gunicorn settings, is a bare Flask app with one POST route
answering 204 (``bench/webhooks/bare.py``). No queue worker runs: this
measures the acknowledgement, and the enqueued jobs wait.

    python -m bench.webhooks                       # SQLite and PostgreSQL + Redis, 32 and 128 connections
    python -m bench.webhooks --storage sqlite --seconds 5 --connections 32
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode
from uuid import uuid4

import requests
import sqlalchemy as sa

from app import callbacks
from app.config import WEBHOOK_HEADER_NAME, Settings
from app.models import Call, Recording, Transcript
from app.states import RecordingStatus, Stage, TranscriptStatus
from bench.dashboard.store import engine_for, scratch_postgres
from bench.running import forget_queue, serving_label, serving_settings, wait_for_port
from tests.e2e.service import REPO, VENV_BIN, Service, free_port
from tests.helpers import (
    ACCOUNT_SID,
    BASE_URL,
    call_sid,
    full_env,
    recording_form,
    recording_sid,
    twilio_signature,
)

PATH = callbacks.TWILIO_RECORDING_STATUS
FORM = "application/x-www-form-urlencoded"
# AssemblyAI's webhooks go to recordings with a transcript in flight, seeded
# before the run; a repeated notice takes the same path as a first one.
IN_FLIGHT = 2000
LUA = Path(__file__).with_name("cycle.lua")
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"


@dataclass
class Run:
    """One wrk run: what was measured and what wrk reported."""

    target: str
    path: str
    connections: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks", description=__doc__.split("\n")[0])
    parser.add_argument("--storage", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--connections", default="32,128", help="comma-separated (default 32,128)")
    parser.add_argument("--seconds", type=int, default=10, help="per wrk run (default 10)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL") or DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=os.environ.get("TEST_REDIS_URL") or DEFAULT_REDIS_URL)
    parser.add_argument("--out", type=Path, help="also write the Markdown table here")
    parser.add_argument("--quick", action="store_true", help="1 s a run at 8 connections: a smoke test")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.connections = 1, "8"
    args.connections = [int(c) for c in args.connections.split(",") if c.strip()]
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed (Debian: apt-get install wrk)")
    return args


def request_file(path: Path, lines: list[tuple[str, str, str, str, str]]) -> Path:
    """wrk's requests, one a line: path, content type, header name and value, body."""
    path.write_text("".join("\t".join(line) + "\n" for line in lines))
    return path


def signed_requests(status: str, count: int, folder: Path) -> Path:
    """A file of ``count`` signed callbacks for wrk, each with a new call and recording."""
    lines = []
    for n in range(count):
        form = recording_form(call_sid(n + 1), recording_sid(n + 1), status)
        signature = twilio_signature(BASE_URL + PATH, form)
        lines.append((PATH, FORM, "X-Twilio-Signature", signature, urlencode(form)))
    return request_file(folder / f"{status}.tsv", lines)


def seed_in_flight(database_url: str, count: int) -> list[tuple[int, str]]:
    """Calls whose recordings AssemblyAI is transcribing: (recording id, transcript id) each."""
    engine = engine_for(database_url)
    offset = 10_000_000  # SIDs apart from the Twilio callbacks' own
    with engine.begin() as connection:
        connection.execute(
            Call.__table__.insert(),
            [{"call_sid": call_sid(offset + n), "account_sid": ACCOUNT_SID} for n in range(count)],
        )
        calls = dict(connection.execute(sa.select(Call.call_sid, Call.id)).all())
        connection.execute(
            Recording.__table__.insert(),
            [
                {
                    "recording_sid": recording_sid(offset + n),
                    "call_id": calls[call_sid(offset + n)],
                    "account_sid": ACCOUNT_SID,
                    "status": RecordingStatus.COMPLETED,
                    "stage": Stage.SUBMITTED,
                    "engine": "assemblyai",
                }
                for n in range(count)
            ],
        )
        recordings = connection.execute(sa.select(Recording.id).order_by(Recording.id)).scalars().all()
        transcripts = [(rid, str(uuid4())) for rid in recordings]
        connection.execute(
            Transcript.__table__.insert(),
            [
                {"transcript_id": tid, "recording_id": rid, "status": TranscriptStatus.QUEUED}
                for rid, tid in transcripts
            ],
        )
    engine.dispose()
    return transcripts


def assemblyai_requests(transcripts: list[tuple[int, str]], secret: str, folder: Path, name: str) -> Path:
    """AssemblyAI's notices for ``transcripts``, with the header the service asked it to send."""
    lines = []
    for recording_id, transcript_id in transcripts:
        path = callbacks.public_url("", callbacks.ASSEMBLYAI_WEBHOOK, recording=recording_id)
        body = json.dumps({"transcript_id": transcript_id, "status": "completed"})
        lines.append((path, "application/json", WEBHOOK_HEADER_NAME, secret, body))
    return request_file(folder / f"assemblyai-{name}.tsv", lines)


def wrk(url: str, requests_file: Path, connections: int, args: argparse.Namespace) -> dict[str, int]:
    command = [
        "wrk",
        f"-t{args.threads}",
        f"-c{connections}",
        f"-d{args.seconds}s",
        "-s",
        str(LUA),
        url,
        "--",
        str(requests_file),
        str(args.threads),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("RESULT "))
    result: dict[str, int] = json.loads(line.removeprefix("RESULT "))
    return result


def check_path(url: str, requests_file: Path) -> None:
    """Send the file's last request once: the run measures the path it names, or stops here."""
    path, content_type, name, value, body = requests_file.read_text().splitlines()[-1].split("\t")
    answer = requests.post(
        url + path, data=body, headers={"Content-Type": content_type, name: value}, timeout=15
    )
    refused = answer.headers.get("Content-Type") == "application/json" and not answer.json()["accepted"]
    if not answer.ok or refused:
        raise RuntimeError(f"{path} answered {answer.status_code} {answer.text[:200]}")


def measure(target: str, url: str, path: str, requests_file: Path, args: argparse.Namespace) -> list[Run]:
    check_path(url, requests_file)
    runs = []
    for connections in args.connections:
        got = wrk(url, requests_file, connections, args)
        runs.append(
            Run(
                target,
                path,
                connections,
                got["requests"],
                got["duration_us"] / 1e6,
                got["p50_us"] / 1000,
                got["p99_us"] / 1000,
                got["max_us"] / 1000,
                got["non_2xx"],
                got["socket_errors"],
            )
        )
        print(f"  {target} {path} c={connections}: {runs[-1].rps:,.0f} rps, p99 {runs[-1].p99_ms:.1f} ms")
    return runs


def bare_flask(args: argparse.Namespace, requests_file: Path, folder: Path) -> list[Run]:
    """The baseline: bench/webhooks/bare.py under gunicorn.conf.py, as the service runs."""
    port = free_port()
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1"}
    with (folder / "bare.log").open("w") as log:
        process = subprocess.Popen(
            [str(VENV_BIN / "gunicorn"), "-c", "gunicorn.conf.py", "bench.webhooks.bare:app"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for_port(port)
            return measure("bare Flask", f"http://127.0.0.1:{port}", "204", requests_file, args)
        finally:
            process.terminate()
            process.wait(timeout=30)


def service(args: argparse.Namespace, kind: str, files: dict[str, Path], folder: Path) -> list[Run]:
    """The web process as the Procfile runs it, on one store, without a queue worker."""
    with ExitStack() as stack:
        instance = folder / kind
        settings = {
            **full_env(None, None),
            "CALLSCRIBE_INSTANCE_PATH": str(instance),
            "PORT": str(free_port()),
            "HOST": "127.0.0.1",
            "LOG_LEVEL": "WARNING",
            **serving_settings(),
        }
        if kind == "postgres":
            settings["DATABASE_URL"] = scratch_postgres(args.database_url, stack)
            queue = f"bench-webhooks-{uuid4().hex[:8]}"
            settings.update(REDIS_URL=args.redis_url, QUEUE_NAME=queue)
            stack.callback(forget_queue, args.redis_url, queue)
        else:
            settings["DATABASE_URL"] = f"sqlite:///{instance / 'callscribe.db'}"
        running = Service(settings, folder / f"{kind}-logs", workers=0)
        (folder / f"{kind}-logs").mkdir(exist_ok=True)
        stack.callback(running.stop)
        running.release()
        in_flight = seed_in_flight(settings["DATABASE_URL"], IN_FLIGHT)
        secret = Settings.from_env(settings).webhook_secret
        files = {**files, "assemblyai": assemblyai_requests(in_flight, secret, folder, kind)}
        running.web.start()
        running.wait_ready([running.web])
        name = "SQLite" if kind == "sqlite" else "PostgreSQL + Redis"
        runs = []
        for status, requests_file in files.items():
            runs += measure(name, running.local_url, status, requests_file, args)
        return runs


def table(runs: list[Run]) -> str:
    bare = {r.connections: r for r in runs if r.target == "bare Flask"}
    lines = [
        "| Target | Path | Connections | Requests/s | p50 | p99 | max | non-2xx | vs bare Flask |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        ratio = r.rps / bare[r.connections].rps if r.connections in bare else float("nan")
        lines.append(
            f"| {r.target} | {r.path} | {r.connections} | {r.rps:,.0f} | {r.p50_ms:.1f} ms | "
            f"{r.p99_ms:.1f} ms | {r.max_ms:.0f} ms | {r.non_2xx + r.socket_errors} | {ratio:.0%} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    kinds = ["sqlite", "postgres"] if args.storage == "both" else [args.storage]
    # Enough distinct callbacks that no run repeats one, at a generous rate.
    count = 4000 * args.seconds
    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as tmp:
        folder = Path(tmp)
        files = {status: signed_requests(status, count, folder) for status in ("completed", "absent")}
        runs = bare_flask(args, files["completed"], folder)
        for kind in kinds:
            runs += service(args, kind, files, folder)
    report = (
        f"{table(runs)}\n\nwrk {args.threads} threads, {args.seconds} s a run; signed "
        f"`recording-status` callbacks, each with its own RecordingSid, and AssemblyAI's webhook "
        f"for {IN_FLIGHT:,} transcripts in flight; gunicorn.conf.py "
        f"({serving_label(serving_settings())}); no queue worker.\n"
    )
    print(report)
    if args.out:
        args.out.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
