"""The service as the Procfile runs it, on one store, pointed at fake Twilio and fake AssemblyAI.

Embedded defaults throughout (gunicorn.conf.py, WORKER_THREADS, HTTP_TIMEOUT,
LOG_LEVEL...): only the credentials, the fakes' URLs, the instance folder,
the port and, for PostgreSQL + Redis, the database, the queue and its name
are set. Fake AssemblyAI completes each transcript at once.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import requests
import sqlalchemy as sa

from app import callbacks
from bench.dashboard.store import scratch_postgres
from bench.running import forget_queue
from bench.soak import figures
from tests.e2e.service import Service, free_port
from tests.fakes import FakeAssemblyAI, FakeTwilio
from tests.helpers import ACCOUNT_SID, ASSEMBLYAI_KEY, AUTH_TOKEN, BASE_URL, full_env, twilio_signature

NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL + Redis"}
RECORDING_STATUS = callbacks.TWILIO_RECORDING_STATUS


@dataclass
class Running:
    """One store's service, its fakes, and an engine on its database for reading the figures."""

    kind: str
    service: Service
    twilio: FakeTwilio
    assemblyai: FakeAssemblyAI
    engine: sa.Engine
    settings: dict[str, str]
    session: requests.Session

    @property
    def name(self) -> str:
        return NAMES[self.kind]

    def post_callback(self, form: dict[str, str]) -> float:
        """POST a recording-status callback signed as Twilio signs it; returns the time it was sent."""
        signature = twilio_signature(BASE_URL + RECORDING_STATUS, form)
        sent = time.time()
        answer = self.session.post(
            self.service.local_url + RECORDING_STATUS,
            data=form,
            headers={"X-Twilio-Signature": signature},
            timeout=15,
        )
        if not answer.ok:
            raise RuntimeError(
                f"the recording callback was answered {answer.status_code}: {answer.text[:200]}"
            )
        return sent


def storage_settings(kind: str, args: argparse.Namespace, instance: Path, stack: ExitStack) -> dict[str, str]:
    if kind == "sqlite":
        return {"DATABASE_URL": f"sqlite:///{instance / 'callscribe.db'}"}
    queue = f"bench-pipeline-{uuid4().hex[:8]}"
    stack.callback(forget_queue, args.redis_url, queue)
    return {
        "DATABASE_URL": scratch_postgres(args.database_url, stack),
        "REDIS_URL": args.redis_url,
        "QUEUE_NAME": queue,
    }


@contextmanager
def running(kind: str, args: argparse.Namespace, folder: Path) -> Iterator[Running]:
    """Start fresh fakes and the service (release, web, worker); stop and clean up everything after."""
    with ExitStack() as stack:
        twilio = stack.enter_context(FakeTwilio(ACCOUNT_SID, AUTH_TOKEN))
        assemblyai = stack.enter_context(FakeAssemblyAI(ASSEMBLYAI_KEY, processing_delay=0.0))
        instance = folder / kind / "instance"
        logs = folder / kind / "logs"
        logs.mkdir(parents=True)
        settings = {
            **full_env(twilio, assemblyai),
            "CALLSCRIBE_INSTANCE_PATH": str(instance),
            "PORT": str(free_port()),
            "HOST": "127.0.0.1",
        }
        settings.update(storage_settings(kind, args, instance, stack))
        service = Service(settings, logs)
        stack.callback(service.stop)  # before start: a half-started service is stopped too
        service.start(timeout=60.0)
        assemblyai.route_webhooks(BASE_URL, service.local_url)
        engine = figures.database_engine(settings["DATABASE_URL"])
        stack.callback(engine.dispose)
        session = stack.enter_context(requests.Session())
        yield Running(kind, service, twilio, assemblyai, engine, settings, session)
