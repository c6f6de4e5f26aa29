"""The real service, its fake providers and its database, for process-level fault tests.

A :class:`Harness` starts the fake Twilio and AssemblyAI servers and the
service as the Procfile runs it (``release``, gunicorn, ``flask worker``),
with short timings so that a crashed worker's claim runs out and the
reconciliation comes round within seconds. Tests then break things only
from outside: signals to processes, faults queued on the fakes, and the
database itself. Rows are read straight from the service's database; what
the providers received, from the fakes' logs.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import re
import secrets
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, TypeVar

import requests
import sqlalchemy as sa

from app.config import WEBHOOK_HEADER_NAME, Settings
from app.models import Recording
from app.states import CALL_STATUS_RANK, RECORDING_STATUS_RANK, TRANSCRIPT_STATUS_RANK
from tests.e2e.rows import outcomes
from tests.e2e.service import Service, free_port
from tests.e2e.twilio_side import TwilioSide, twilio_time
from tests.fakes import FakeAssemblyAI, FakeTwilio, RecordedRequest, audio, make_sid
from tests.helpers import (
    ACCOUNT_SID,
    ASSEMBLYAI_KEY,
    AUTH_TOKEN,
    BASE_URL,
    call_status_form,
    full_env,
    recording_form,
)

T = TypeVar("T")

# Short enough that a dead worker's claim runs out, and the reconciliation
# comes round, within seconds (app/config.py allows 5 s at least for both).
TIMINGS = {"RECONCILE_INTERVAL": "5", "JOB_TIMEOUT": "5", "HTTP_TIMEOUT": "3"}
# Long enough for a claim to run out plus two reconciliation rounds.
RECOVERY_TIMEOUT = 30.0
# A provider request the test holds open until the client gives up (or is killed).
HOLD_SECONDS = 60.0

STAGE_ORDER = ("pending", "delivered", "submitted", "transcribed")
DATABASE_LOCKED = "database is locked"


def wav(n: int) -> bytes:
    """A tenth of a second of 8 kHz audio, different for every ``n``: what Twilio would serve."""
    rng = random.Random(n)
    return audio.wav(bytes(rng.getrandbits(8) for _ in range(1600)))


@dataclass(frozen=True)
class PlannedCall:
    """One call as Twilio and AssemblyAI will see it."""

    n: int
    caller: str
    audio: bytes
    text: str
    call_sid: str = field(default_factory=lambda: make_sid("CA"))
    recording_sid: str = field(default_factory=lambda: make_sid("RE"))


@dataclass(frozen=True)
class Delivery:
    """One Twilio webhook: the public URL Twilio calls (and signs) and the form it posts."""

    url: str
    params: dict[str, str]
    label: str


@dataclass(frozen=True)
class Answer:
    """What a delivery got back: a status code, or the exception that stood for one."""

    delivery: Delivery
    status: int | None
    error: str | None
    started: float  # time.monotonic() when it was sent
    seconds: float


class History:
    """Watches the service's rows from outside and keeps every distinct value each one took.

    A status that went backwards, even for a moment, shows up here; the
    final rows alone could not tell.
    """

    def __init__(self, engine: sa.Engine, interval: float = 0.05) -> None:
        self.engine = engine
        self.interval = interval
        self.seen: dict[tuple[str, str], list[str]] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="history", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.look()
            self._stop.wait(self.interval)

    def look(self) -> None:
        """Read every call's, recording's and transcript's state once."""
        try:
            with self.engine.connect() as connection:
                calls = connection.execute(sa.text("SELECT call_sid, status FROM calls")).all()
                recordings = connection.execute(
                    sa.text(
                        "SELECT r.recording_sid, r.status, r.stage, t.status FROM recordings r"
                        " LEFT JOIN transcripts t ON t.recording_id = r.id"
                    )
                ).all()
        except sa.exc.SQLAlchemyError:
            return  # the database is down on purpose in some tests
        with self._lock:
            for sid, status in calls:
                self._note("call status", sid, status)
            for sid, status, stage, transcript_status in recordings:
                self._note("recording status", sid, status)
                self._note("stage", sid, stage)
                self._note("transcript status", sid, transcript_status)

    def _note(self, what: str, sid: str, value: str | None) -> None:
        if value is None:
            return
        values = self.seen.setdefault((what, sid), [])
        if not values or values[-1] != value:
            values.append(value)

    def backwards(self) -> list[str]:
        """Every row whose state ever moved backwards (or into ``failed``), described."""
        ranks: dict[str, dict[str, int]] = {
            "call status": CALL_STATUS_RANK,
            "recording status": RECORDING_STATUS_RANK,
            "stage": {stage: rank for rank, stage in enumerate(STAGE_ORDER)},
            "transcript status": TRANSCRIPT_STATUS_RANK,
        }
        problems = []
        with self._lock:
            for (what, sid), values in self.seen.items():
                rank = ranks[what]
                order = [rank.get(v, -1) for v in values]
                if any(r < 0 for r in order) or any(b <= a for a, b in itertools.pairwise(order)):
                    problems.append(f"{what} of {sid}: {' -> '.join(values)}")
        return problems


class Harness:
    """Fake providers, the service (web + workers) and a view of its database."""

    def __init__(
        self,
        folder: Path,
        storage: dict[str, str],
        *,
        web_concurrency: int = 2,
        workers: int = 1,
        processing_delay: float = 0.3,
        webhook_retry_interval: float = 0.2,
        webhook_max_attempts: int = 10,
    ) -> None:
        self.folder = folder
        self.twilio_api = FakeTwilio(ACCOUNT_SID, AUTH_TOKEN)
        self.assemblyai = FakeAssemblyAI(
            ASSEMBLYAI_KEY,
            auto_complete=True,
            processing_delay=processing_delay,
            webhook_retry_interval=webhook_retry_interval,
            webhook_max_attempts=webhook_max_attempts,
        )
        self.storage = dict(storage)
        self.web_concurrency = web_concurrency
        self.worker_count = workers
        self.service: Service | None = None
        self.engine: sa.Engine | None = None
        self.history: History | None = None
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()
        self._recording_ids: dict[str, int] = {}
        self._calls = 0

    # lifecycle ------------------------------------------------------------

    def __enter__(self) -> Self:
        try:
            self._start()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        self._stop(check=kind is None)  # never hide the test's own failure

    def _start(self) -> None:
        self.twilio_api.start()
        self.assemblyai.start()
        instance = self.folder / "instance"
        instance.mkdir(parents=True, exist_ok=True)
        settings = {
            **full_env(self.twilio_api, self.assemblyai),
            "CALLSCRIBE_INSTANCE_PATH": str(instance),
            "DATABASE_URL": f"sqlite:///{instance / 'callscribe.db'}",
            "PORT": str(free_port()),
            "HOST": "127.0.0.1",
            "WEB_CONCURRENCY": str(self.web_concurrency),
            **TIMINGS,
            **self.storage,
        }
        self.service = Service(settings, self.folder, workers=self.worker_count)
        self.service.start(timeout=60)  # other suites may load the machine
        self.assemblyai.route_webhooks(BASE_URL, self.service.local_url)
        url = Settings.from_env({"DATABASE_URL": settings["DATABASE_URL"], "SECRET_KEY": "x"}).database_url
        self.engine = sa.create_engine(url, pool_pre_ping=True)
        self.history = History(self.engine)
        self.history.start()

    def _stop(self, *, check: bool = False) -> None:
        if self.history is not None:
            self.history.stop()
        service = self.service
        if service is not None:
            service.stop()
        self.assemblyai.stop()
        self.twilio_api.stop()
        if self.engine is not None:
            self.engine.dispose()
        for session in self._sessions:
            session.close()
        if service is not None:
            leftovers = leftover_processes(service.env["CALLSCRIBE_INSTANCE_PATH"])
            for leftover in leftovers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(leftover.split()[0]), signal.SIGKILL)
            assert not (check and leftovers), f"processes left running: {leftovers}"

    def next_scenario(self) -> None:
        """Before another scenario on the same service: no fault left queued, every process up."""
        self.twilio_api.clear_faults()
        self.assemblyai.clear_faults()
        for process in self.running.processes:
            if process.exit_code is not None:
                self.running.restart(process.name)

    @property
    def running(self) -> Service:
        assert self.service is not None, "the harness is not running"
        return self.service

    @property
    def database(self) -> sa.Engine:
        assert self.engine is not None, "the harness is not running"
        return self.engine

    @property
    def database_url(self) -> str:
        return self.running.env["DATABASE_URL"]

    # Twilio's side -----------------------------------------------------------

    def twilio(self) -> TwilioSide:
        """Twilio as seen from this thread (a requests.Session is not for sharing)."""
        side: TwilioSide | None = getattr(self._local, "side", None)
        if side is None:
            session = requests.Session()
            with self._sessions_lock:
                self._sessions.append(session)
            side = self._local.side = TwilioSide(session, self.running.local_url)
        return side

    def plan_call(self) -> PlannedCall:
        """A new call whose recording Twilio holds and whose transcript AssemblyAI will return."""
        self._calls += 1
        n = self._calls
        call = PlannedCall(
            n=n, caller=f"+1415555{n:04d}", audio=wav(n), text=f"Message number {n}, received."
        )
        self.twilio_api.add_recording(call.recording_sid, call.audio, call.call_sid, duration=7)
        self.assemblyai.set_result_for_audio(call.audio, call.text, [{"speaker": "A", "text": call.text}])
        return call

    def call_status_deliveries(self, call: PlannedCall) -> list[Delivery]:
        url = f"{BASE_URL}/twilio/call-status"
        return [
            Delivery(
                url,
                call_status_form(call.call_sid, status, From=call.caller, Timestamp=twilio_time(), **extra),
                f"call-status {status} of call {call.n}",
            )
            for status, extra in (
                ("ringing", {}),
                ("in-progress", {}),
                ("completed", {"CallDuration": "12"}),
            )
        ]

    def recording_delivery(self, call: PlannedCall) -> Delivery:
        return Delivery(
            f"{BASE_URL}/twilio/recording-status",
            recording_form(call.call_sid, call.recording_sid, RecordingStartTime=twilio_time()),
            f"recording-status completed of call {call.n}",
        )

    def send(self, delivery: Delivery) -> requests.Response:
        """Deliver one Twilio webhook, signed; raises requests.ConnectionError when nobody listens."""
        return self.twilio().post(delivery.url, delivery.params)

    def send_answered(self, delivery: Delivery) -> Answer:
        started = time.monotonic()
        try:
            status, error = self.send(delivery).status_code, None
        except requests.RequestException as exc:
            status, error = None, type(exc).__name__
        return Answer(delivery, status, error, started, time.monotonic() - started)

    def call_ends(self, call: PlannedCall) -> None:
        """Twilio's call status callbacks, in order, each answered 2xx."""
        for delivery in self.call_status_deliveries(call):
            response = self.send(delivery)
            assert response.status_code in (200, 204), f"{delivery.label}: {response.status_code}"

    def recording_completes(self, call: PlannedCall) -> None:
        delivery = self.recording_delivery(call)
        response = self.send(delivery)
        assert response.status_code == 204, f"{delivery.label}: {response.status_code} {response.text}"

    def push_calls(
        self,
        calls: list[PlannedCall],
        *,
        duplicates: tuple[int, int] = (2, 3),
        threads: int = 12,
        seed: int = 7,
    ) -> list[Answer]:
        """Every callback of every call, each delivered 2-3 times, shuffled, from a thread pool."""
        rng = random.Random(seed)
        deliveries = [
            delivery
            for call in calls
            for delivery in [*self.call_status_deliveries(call), self.recording_delivery(call)]
            for _ in range(rng.randint(*duplicates))
        ]
        rng.shuffle(deliveries)
        with ThreadPoolExecutor(threads, thread_name_prefix="twilio") as pool:
            return list(pool.map(self.send_answered, deliveries))

    # AssemblyAI's side -----------------------------------------------------------

    def submissions_for(self, call: PlannedCall) -> list[dict[str, Any]]:
        """The bodies AssemblyAI accepted for this call's recording (what we pay for)."""
        suffix = f"?recording={self.recording_id(call)}"
        with self.assemblyai.lock:
            return [s for s in self.assemblyai.submissions if s["webhook_url"].endswith(suffix)]

    def requests_for(
        self, call: PlannedCall, kind: str, among: list[RecordedRequest] | None = None
    ) -> list[Any]:
        """This call's requests of ``kind`` ("media" to Twilio; "upload", "submit" to AssemblyAI).

        ``among`` picks from another log of the fake, such as ``abandoned``.
        """
        if kind == "media":
            pool = self.twilio_api.requests_of(kind) if among is None else among
            return [r for r in pool if r.kind == kind and r.params.get("recording_sid") == call.recording_sid]
        with self.assemblyai.lock:
            pool = list(self.assemblyai.requests if among is None else among)
        if kind == "upload":
            return [r for r in pool if r.kind == kind and r.body == call.audio]
        if kind == "submit":
            suffix = f"?recording={self.recording_id(call)}"
            return [r for r in pool if r.kind == kind and r.json().get("webhook_url", "").endswith(suffix)]
        raise ValueError(f"no way to tell which call a {kind} request is for")

    def transcript_id_for(self, call: PlannedCall) -> str:
        suffix = f"?recording={self.recording_id(call)}"
        with self.assemblyai.lock:
            ids = [j.id for j in self.assemblyai.jobs.values() if j.params["webhook_url"].endswith(suffix)]
        assert len(ids) == 1, f"call {call.n}: AssemblyAI has {len(ids)} transcripts"
        return ids[0]

    def assemblyai_webhook(self, call: PlannedCall) -> requests.Response:
        """AssemblyAI's webhook for this call's transcript, sent as AssemblyAI sends it."""
        transcript_id = self.transcript_id_for(call)
        with self.assemblyai.lock:
            job = self.assemblyai.jobs[transcript_id]
            status = job.transcript["status"]
            url = job.params["webhook_url"]
            secret = job.params["webhook_auth_header_value"]
        assert url.startswith(BASE_URL + "/")
        return requests.post(
            self.running.local_url + url[len(BASE_URL) :],
            json={"transcript_id": transcript_id, "status": status},
            headers={WEBHOOK_HEADER_NAME: secret, "User-Agent": "AssemblyAI-Webhook"},
            timeout=10,
        )

    def healthz(self) -> int:
        return requests.get(f"{self.running.local_url}/healthz", timeout=10).status_code

    # the database ------------------------------------------------------------------

    def recording(self, call: PlannedCall) -> dict[str, Any] | None:
        """The call's recording row; timestamps as aware UTC datetimes on either database."""
        table = Recording.__table__
        with self.database.connect() as connection:
            row = (
                connection.execute(sa.select(table).where(table.c.recording_sid == call.recording_sid))
                .mappings()
                .one_or_none()
            )
        return dict(row) if row is not None else None

    def recording_id(self, call: PlannedCall) -> int:
        if call.recording_sid not in self._recording_ids:
            row = self.recording(call)
            assert row is not None, f"call {call.n}: no recording row"
            self._recording_ids[call.recording_sid] = row["id"]
        return self._recording_ids[call.recording_sid]

    def stage(self, call: PlannedCall) -> str | None:
        row = self.recording(call)
        return None if row is None else row["stage"]

    def finished(self, calls: list[PlannedCall]) -> dict[str, str]:
        """Recordings at the end of the pipeline: "transcribed" with its transcript stored, or "failed"."""
        return outcomes(self.database, [c.recording_sid for c in calls])

    def state(self) -> str:
        """Every recording's and transcript's row, for a failure message."""
        try:
            with self.database.connect() as connection:
                recordings = connection.execute(
                    sa.text(
                        "SELECT id, recording_sid, stage, claimed_until, submit_started_at, attempts,"
                        " next_attempt_at, last_error FROM recordings ORDER BY id"
                    )
                ).all()
                transcripts = connection.execute(
                    sa.text("SELECT recording_id, transcript_id, status FROM transcripts ORDER BY id")
                ).all()
        except sa.exc.SQLAlchemyError as exc:
            return f"(database unreadable: {type(exc).__name__})"
        return (
            "recordings:\n"
            + "\n".join(f"  {tuple(r)}" for r in recordings)
            + ("\ntranscripts:\n" + "\n".join(f"  {tuple(t)}" for t in transcripts))
        )

    def diagnostics(self) -> str:
        return f"{self.state()}\n{self.running.logs(25)}"

    # waiting and checking ------------------------------------------------------------

    def wait_until(self, what: str, predicate: Callable[[], T], timeout: float = 10.0) -> T:
        """Poll ``predicate`` until it is truthy; fail with the pipeline's state and the logs."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(f"within {timeout} s: {what}\n{self.diagnostics()}")
            time.sleep(0.05)

    def wait_transcribed(self, calls: list[PlannedCall], timeout: float = RECOVERY_TIMEOUT) -> float:
        """Wait until every call's recording has its transcript stored (or one failed); returns seconds."""
        started = time.monotonic()

        def ended() -> dict[str, str] | None:
            done = self.finished(calls)
            return done if len(done) == len(calls) or "failed" in done.values() else None

        done = self.wait_until(f"{len(calls)} recordings transcribed", ended, timeout)
        failed = [sid for sid, stage in done.items() if stage == "failed"]
        assert not failed, f"recordings failed: {failed}\n{self.diagnostics()}"
        return time.monotonic() - started

    def assert_transcribed_once(self, calls: list[PlannedCall]) -> None:
        """One completed transcript per recording, one submission paid for, nothing went backwards."""
        assert self.history is not None
        self.history.look()
        with self.database.connect() as connection:
            for call in calls:
                recording_id = self.recording_id(call)
                stage = connection.execute(
                    sa.text("SELECT stage FROM recordings WHERE id = :id"), {"id": recording_id}
                ).scalar_one()
                transcripts = connection.execute(
                    sa.text("SELECT transcript_id, status, text FROM transcripts WHERE recording_id = :id"),
                    {"id": recording_id},
                ).all()
                assert stage == "transcribed", f"call {call.n}: stage {stage}\n{self.diagnostics()}"
                assert len(transcripts) == 1, f"call {call.n}: {transcripts}"
                ((transcript_id, status, text),) = transcripts
                assert (status, text) == ("completed", call.text), (call.n, status, text)
                submissions = self.submissions_for(call)
                assert len(submissions) == 1, (
                    f"call {call.n}: AssemblyAI received {len(submissions)} submissions\n{self.diagnostics()}"
                )
                assert transcript_id == self.transcript_id_for(call)
        for fake in (self.twilio_api, self.assemblyai):
            assert not fake.errors, fake.errors
        assert not self.assemblyai.rejected, self.assemblyai.rejected
        backwards = self.history.backwards()
        assert not backwards, "statuses went backwards:\n" + "\n".join(backwards)

    def log_lines(self, pattern: str) -> list[str]:
        """Lines of every process's log (replaced ones included) that match ``pattern``."""
        regex = re.compile(pattern)
        return [line for line in self.running.all_logs().splitlines() if regex.search(line)]


def leftover_processes(instance_path: str) -> list[str]:
    """gunicorn and worker processes (``pgrep -f``) still running on this instance folder.

    Other suites may run their own gunicorn on this machine at the same
    time, so a process counts only if its environment names our folder.
    """
    marker = f"CALLSCRIBE_INSTANCE_PATH={instance_path}".encode()
    found = subprocess.run(
        ["pgrep", "-f", "gunicorn|flask worker"], capture_output=True, text=True, check=False
    ).stdout.split()
    leftovers = []
    for pid in found:
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue  # ended meanwhile
        if marker in environ:
            leftovers.append(f"{pid} {command}")
    return leftovers


# -- breaking the database ---------------------------------------------------------


@dataclass
class DedicatedDatabase:
    """A PostgreSQL database created for one test, which the test may switch off and on."""

    name: str
    url: str
    admin: sa.Engine

    def make_unavailable(self) -> int:
        """Refuse new connections and end the open ones: the database is "down". Returns how many ended."""
        with self.admin.connect() as connection:
            connection.exec_driver_sql(f'ALTER DATABASE "{self.name}" WITH ALLOW_CONNECTIONS false')
        return self.end_sessions()

    def end_sessions(self) -> int:
        """End every open connection to the database, which stays up (a failover, an idle timeout).

        Returns how many ended, once their server processes have gone.
        """
        with self.admin.connect() as connection:
            ended = connection.execute(
                sa.text(
                    "SELECT count(*) FROM (SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                    " WHERE datname = :name AND pid <> pg_backend_pid()) AS ended"
                ),
                {"name": self.name},
            ).scalar_one()
        return int(ended)

    def make_available(self) -> None:
        """Accept connections again: the database has "restarted"."""
        with self.admin.connect() as connection:
            connection.exec_driver_sql(f'ALTER DATABASE "{self.name}" WITH ALLOW_CONNECTIONS true')


@contextlib.contextmanager
def dedicated_database(server_url: str) -> Iterator[DedicatedDatabase]:
    """CREATE DATABASE callscribe_rel_<random> on the test server; dropped at the end."""
    name = f"callscribe_rel_{secrets.token_hex(6)}"
    admin_url = Settings.from_env({"DATABASE_URL": server_url, "SECRET_KEY": "x"}).database_url
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield DedicatedDatabase(name, url, admin)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@contextlib.contextmanager
def sqlite_write_lock(path: Path) -> Iterator[None]:
    """Hold SQLite's write lock from another connection, as a long transaction elsewhere would."""
    connection = sqlite3.connect(path, timeout=15, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        yield
        connection.execute("ROLLBACK")
    finally:
        connection.close()


def sqlite_path(database_url: str) -> Path:
    prefix = "sqlite:///"
    assert database_url.startswith(prefix), database_url
    return Path(database_url[len(prefix) :])


__all__ = [
    "DATABASE_LOCKED",
    "HOLD_SECONDS",
    "RECOVERY_TIMEOUT",
    "TIMINGS",
    "Answer",
    "DedicatedDatabase",
    "Delivery",
    "Harness",
    "History",
    "PlannedCall",
    "dedicated_database",
    "sqlite_path",
    "sqlite_write_lock",
]
