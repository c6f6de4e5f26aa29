"""Run callscribe the way the Procfile does: release, then web and worker.

Each process gets a prepared environment, its own log file and its own
session (process group), so a stop ends it and whatever it started, and
nothing else.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import requests

from app.config import Settings
from tests.fakes import FakeAssemblyAI, FakeTwilio

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"

# Every variable the app reads (app/config.py). The ones a test does not set
# are passed as empty strings: the app reads "" as unset, and load_dotenv()
# in wsgi.py leaves variables that exist alone, so a developer's .env cannot
# leak into the run.
# Every variable of the settings table, the tutorials' alias of the key, the instance folder.
APP_VARIABLES = (*Settings.variables(), "ASSEMBLYAI_KEY", "CALLSCRIBE_INSTANCE_PATH")
# Read by gunicorn.conf.py, gunicorn itself, the worker and the flask command
# with int() or as flags, so they are removed rather than blanked.
PROCESS_VARIABLES = (
    "PORT",
    "HOST",
    "WEB_CONCURRENCY",
    "WEB_THREADS",
    "WEB_TIMEOUT",
    "WORKER_THREADS",
    "GUNICORN_CMD_ARGS",
    "FLASK_APP",
    "FLASK_DEBUG",
)


# Huey logs this once its consumer runs: the worker is ready for jobs.
WORKER_READY = "Huey consumer started"


@dataclass(frozen=True)
class Storage:
    """The storage configuration a service runs on: a name from BACKENDS and its variables."""

    backend: str
    env: dict[str, str]


@dataclass
class Fakes:
    """The providers a service talks to, on 127.0.0.1."""

    twilio: FakeTwilio
    assemblyai: FakeAssemblyAI


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def procfile(path: Path = REPO / "Procfile") -> dict[str, list[str]]:
    """The Procfile's process types and their command lines, split like a shell would."""
    entries: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        name, colon, command = line.partition(":")
        if colon and name.strip() and not line.lstrip().startswith("#"):
            entries[name.strip()] = shlex.split(command)
    return entries


def process_env(settings: Mapping[str, str]) -> dict[str, str]:
    """This process's environment, without the app's variables, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if k not in PROCESS_VARIABLES}
    env.update(dict.fromkeys(APP_VARIABLES, ""))
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(settings)
    return env


def _executable(argv: list[str]) -> list[str]:
    """Resolve the program in the project's virtualenv, as ``PATH`` would."""
    program = shutil.which(argv[0], path=str(VENV_BIN))
    if program is None:
        raise FileNotFoundError(f"{argv[0]} is not installed in {VENV_BIN}")
    return [program, *argv[1:]]


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no output)"
    return "\n".join(text.splitlines()[-lines:]) or "(no output)"


class Process:
    """One long-running process, its output in a file."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.name = name
        self.argv = _executable(argv)
        self.env = dict(env)
        self.log_path = log_path
        self._log: IO[bytes] | None = None
        self._popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._log = self.log_path.open("wb")
        self._popen = subprocess.Popen(
            self.argv,
            cwd=REPO,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def exit_code(self) -> int | None:
        return None if self._popen is None else self._popen.poll()

    @property
    def pid(self) -> int | None:
        """The process's id, which is also its process group's id (its own session)."""
        return None if self._popen is None else self._popen.pid

    def kill(self) -> None:
        """SIGKILL its whole process group at once, as a crash or the OOM killer would."""
        popen = self._popen
        try:
            if popen is not None and popen.poll() is None:
                os.killpg(popen.pid, signal.SIGKILL)
                popen.wait(5)
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL to its process group if it has not ended within ``grace``."""
        popen = self._popen
        try:
            if popen is not None and popen.poll() is None:
                popen.send_signal(signal.SIGTERM)
                try:
                    popen.wait(grace)
                except subprocess.TimeoutExpired:
                    # Not reaped yet, so the group id is still ours.
                    os.killpg(popen.pid, signal.SIGKILL)
                    popen.wait(5)
                # Anything the leader left behind in its group goes too. The leader was
                # reaped just now, and a group id is not reused while members remain.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signal.SIGKILL)
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None

    def tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)


class Service:
    """callscribe's release step, web and worker processes, as the Procfile runs them.

    ``workers`` worker processes: the first runs the periodic
    reconciliation, the others ``--no-periodic``, as the README says to
    scale out.
    """

    def __init__(self, settings: Mapping[str, str], folder: Path, *, workers: int = 1) -> None:
        self.env = process_env(settings)
        self.port = int(settings["PORT"])
        self.local_url = f"http://127.0.0.1:{self.port}"
        self.folder = folder
        self.commands = procfile()
        self.web = Process("web", self.commands["web"], self.env, folder / "web.log")
        self.workers = [
            Process(
                "worker" if n == 1 else f"worker{n}",
                self.commands["worker"] + ([] if n == 1 else ["--no-periodic"]),
                self.env,
                folder / ("worker.log" if n == 1 else f"worker{n}.log"),
            )
            for n in range(1, workers + 1)
        ]
        # Processes replaced by restart(), kept for their logs.
        self.replaced: list[Process] = []

    @property
    def worker(self) -> Process:
        """The worker that runs the reconciliation."""
        return self.workers[0]

    @property
    def processes(self) -> list[Process]:
        return [self.web, *self.workers]

    def process(self, name: str) -> Process:
        """The running process called ``name``: web, worker, worker2, ..."""
        for process in self.processes:
            if process.name == name:
                return process
        raise KeyError(f"no process {name!r}; there are {[p.name for p in self.processes]}")

    def restart(self, name: str, timeout: float = 60.0) -> Process:
        """Start a new process in place of ``name`` (SIGKILLed first if it still runs), once ready.

        The new one writes to a log file of its own, so that its readiness is
        read from its own output and the old log stays for the test to read.
        """
        old = self.process(name)
        old.kill()
        self.replaced.append(old)
        count = sum(1 for p in self.replaced if p.name == name)
        new = Process(name, old.argv, old.env, self.folder / f"{name}.{count + 1}.log")
        if old is self.web:
            self.web = new
        else:
            self.workers[self.workers.index(old)] = new
        new.start()
        self.wait_ready([new], timeout)
        return new

    def all_logs(self) -> str:
        """Everything every process wrote, replaced ones included: for grepping."""
        texts = []
        for process in [*self.replaced, *self.processes]:
            try:
                texts.append(process.log_path.read_text(errors="replace"))
            except FileNotFoundError:
                pass
        return "\n".join(texts)

    def release(self, timeout: float = 60.0) -> None:
        """The Procfile's release command (database migrations); fails loudly."""
        log_path = self.folder / "release.log"
        with log_path.open("wb") as log:
            result = subprocess.run(
                _executable(self.commands["release"]),
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        if result.returncode != 0:
            raise RuntimeError(
                f"release ({' '.join(self.commands['release'])}) exited with {result.returncode}:\n"
                + tail(log_path)
            )

    def start(self, timeout: float = 20.0) -> None:
        """Release, then web and worker; return once /healthz answers 200 and the worker consumes."""
        self.release()
        for process in self.processes:
            process.start()
        self.wait_ready(self.processes, timeout)

    def wait_ready(self, processes: list[Process], timeout: float = 20.0) -> None:
        """Return once web (if among ``processes``) answers /healthz 200 and each worker consumes."""
        deadline = time.monotonic() + timeout
        healthy = self.web not in processes
        last: Any = "no answer yet"
        with requests.Session() as session:
            while True:
                for process in processes:
                    if process.exit_code is not None:
                        raise RuntimeError(
                            f"{process.name} ended during start-up with exit code {process.exit_code}\n"
                            + self.logs()
                        )
                if not healthy:
                    try:
                        response = session.get(f"{self.local_url}/healthz", timeout=1)
                        healthy = response.status_code == 200
                        last = f"HTTP {response.status_code}: {response.text[:200]}"
                    except requests.RequestException as exc:
                        last = type(exc).__name__
                consuming = all(WORKER_READY in p.tail(200) for p in processes if p is not self.web)
                if healthy and consuming:
                    return
                if time.monotonic() >= deadline:
                    problems = [] if healthy else [f"/healthz did not answer 200 ({last})"]
                    problems += [] if consuming else ["the worker did not start consuming"]
                    raise RuntimeError(f"within {timeout} s: {'; '.join(problems)}\n{self.logs()}")
                time.sleep(0.1)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def logs(self, lines: int = 40) -> str:
        return "\n".join(
            f"--- {p.name} ({' '.join(p.argv)}), last {lines} lines of {p.log_path.name} ---\n{p.tail(lines)}"
            for p in [*self.replaced, *self.processes]
        )
