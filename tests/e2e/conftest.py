"""The running service and its fake providers, shared by every end-to-end module.

Each fixture is module-scoped: a module starts one service per storage
configuration and its tests read that single run. Logs of running services
are shown next to a failure, and measured timings at the end.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from app.config import Settings
from tests.e2e import report
from tests.e2e.service import Fakes, Service, Storage, free_port
from tests.fakes import FakeAssemblyAI, FakeTwilio
from tests.helpers import (
    ACCOUNT_SID,
    ADMIN_PASSWORD,
    ASSEMBLYAI_KEY,
    AUTH_TOKEN,
    BACKENDS,
    BASE_URL,
    SECRET_KEY,
    TWILIO_NUMBER,
    storage_env,
)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    test_report = yield
    if test_report.failed:
        for service in report.RUNNING:
            test_report.sections.append((f"callscribe logs ({service.folder.name})", service.logs()))
    return test_report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if report.TIMINGS:
        terminalreporter.section("end-to-end timings (recording callback to stored transcript)")
        for entry in report.TIMINGS:
            terminalreporter.write_line(json.dumps(entry))


@pytest.fixture(scope="module", params=BACKENDS)
def storage(request: pytest.FixtureRequest) -> Iterator[Storage]:
    """Where the service keeps its data; SQLite files in the instance folder by default."""
    with storage_env(request.param) as env:
        yield Storage(request.param, env)


@pytest.fixture(scope="module")
def fakes(storage: Storage) -> Iterator[Fakes]:
    """Fresh fakes for each storage configuration, so their request logs hold one run."""
    with (
        FakeTwilio(ACCOUNT_SID, AUTH_TOKEN) as twilio,
        FakeAssemblyAI(ASSEMBLYAI_KEY, auto_complete=True, processing_delay=0.3) as assemblyai,
    ):
        yield Fakes(twilio, assemblyai)


@pytest.fixture(scope="module")
def service(storage: Storage, fakes: Fakes, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """callscribe as the Procfile runs it, configured only through the environment."""
    folder = tmp_path_factory.mktemp(f"callscribe-{storage.backend.replace('+', '-')}")
    instance = folder / "instance"
    instance.mkdir()
    port = free_port()
    settings = {
        "CALLSCRIBE_INSTANCE_PATH": str(instance),
        "DATABASE_URL": f"sqlite:///{instance / 'callscribe.db'}",
        "SECRET_KEY": SECRET_KEY,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_PHONE_NUMBER": TWILIO_NUMBER,
        "TWILIO_API_BASE_URL": fakes.twilio.base_url,
        "BASE_URL": BASE_URL,
        "ASSEMBLYAI_API_KEY": ASSEMBLYAI_KEY,
        "ASSEMBLYAI_BASE_URL": fakes.assemblyai.base_url,
        "ADMIN_PASSWORD": ADMIN_PASSWORD,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "WEB_CONCURRENCY": "2",
        **storage.env,
    }
    running = Service(settings, folder)
    report.RUNNING.append(running)
    try:
        running.start()
        fakes.assemblyai.route_webhooks(BASE_URL, running.local_url)
        yield running
    finally:
        running.stop()
        report.RUNNING.remove(running)


@pytest.fixture(scope="module")
def database(service: Service) -> Iterator[sa.Engine]:
    """The service's own database, read directly: the stored rows are the truth."""
    url = Settings.from_env({"DATABASE_URL": service.env["DATABASE_URL"], "SECRET_KEY": "x"}).database_url
    engine = sa.create_engine(url)
    yield engine
    engine.dispose()
