"""Shared fixtures: a fresh app per test on a real database and a real queue.

Two configurations, the same two a deployment has:

* ``sqlite``: SQLite (WAL) and Huey on SQLite, in the test's own folder;
* ``postgres+redis``: PostgreSQL from ``TEST_DATABASE_URL`` and Huey on Redis
  from ``TEST_REDIS_URL``. Skipped, saying why, when either is not set or
  not reachable; ``.ci/run`` sets both.

Helpers that tests import are in ``tests/helpers.py`` (and, for pages, ``tests/pages.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade

from app import create_app
from app.config import Settings
from tests.fakes import openapi
from tests.fakes.assemblyai_api import FakeAssemblyAI
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import (
    ACCOUNT_SID,
    ASSEMBLYAI_KEY,
    AUTH_TOKEN,
    BACKENDS,
    BrowserClient,
    close,
    full_env,
    login,
    storage_env,
)
from tests.pages import Calls
from tests.skips import required


def pytest_report_header() -> str:
    path = openapi.spec_path()
    if path is None:
        return f"AssemblyAI OpenAPI spec: NOT FOUND at {openapi.expected_path()}; requests go unvalidated"
    return f"AssemblyAI OpenAPI spec: {path}"


def pytest_sessionstart(session: pytest.Session) -> None:
    if openapi.spec_path() is None and required():
        raise pytest.UsageError(
            f"AssemblyAI's OpenAPI spec is missing at {openapi.expected_path()}: "
            "CI validates every request against it (set CALLSCRIBE_SHARED_DIR)"
        )


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    with storage_env(request.param) as env:
        yield env


@pytest.fixture
def twilio_api() -> Iterator[FakeTwilio]:
    with FakeTwilio(ACCOUNT_SID, AUTH_TOKEN) as fake:
        yield fake


@pytest.fixture
def assemblyai_api() -> Iterator[FakeAssemblyAI]:
    with FakeAssemblyAI(ASSEMBLYAI_KEY, auto_complete=False) as fake:
        yield fake


@pytest.fixture
def make_app(
    tmp_path: Any, backend: dict[str, str], twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> Iterator[Callable[..., Flask]]:
    """Build an app with the given environment changes; None removes a variable."""
    apps: list[Flask] = []

    def build(**changes: str | None) -> Flask:
        env = {**full_env(twilio_api, assemblyai_api), **backend}
        for name, value in changes.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        instance = str(tmp_path / f"instance{len(apps)}")
        app = create_app(Settings.from_env(env, instance_path=instance), instance_path=instance)
        app.config["TESTING"] = True
        app.test_client_class = BrowserClient
        with app.app_context():
            upgrade()
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["jobs"].huey.flush()
        close(app)


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def admin(client: FlaskClient) -> FlaskClient:
    """The client, logged in as the admin."""
    assert login(client).status_code == 302
    return client


@pytest.fixture
def calls(app: Flask, client: FlaskClient, twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI) -> Calls:
    """Calls that arrive as in production, through signed webhooks and the queue."""
    return Calls(app, client, twilio_api, assemblyai_api)
