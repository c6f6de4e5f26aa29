"""Every setting is documented in .env.example, and read only through the settings table."""

from __future__ import annotations

import re
from pathlib import Path

from app.config import Settings

ROOT = Path(__file__).resolve().parents[1]
# Read by the processes around the app, not by the app: gunicorn and wsgi.py.
PROCESS_FILES = (ROOT / "gunicorn.conf.py", ROOT / "wsgi.py")
ENVIRON_GET = re.compile(r"""environ\.get\(\s*["']([A-Z][A-Z0-9_]+)["']""")


def process_variables() -> set[str]:
    return {name for path in PROCESS_FILES for name in ENVIRON_GET.findall(path.read_text())}


def documented() -> dict[str, str]:
    """Each variable of .env.example, with the comment line just above it."""
    lines = ROOT.joinpath(".env.example").read_text().splitlines()
    return {
        line.split("=", 1)[0]: lines[number - 1]
        for number, line in enumerate(lines)
        if re.match(r"^[A-Z][A-Z0-9_]*=", line)
    }


def test_every_setting_is_in_env_example() -> None:
    table = set(Settings.variables())
    assert {"BASE_URL", "TWILIO_AUTH_TOKEN", "WORKER_THREADS"} <= table, "the table lost rows"
    assert {"PORT", "WEB_CONCURRENCY", "CALLSCRIBE_INSTANCE_PATH"} <= process_variables()
    assert (table | process_variables()) - set(documented()) == set()


def test_env_example_documents_nothing_the_code_does_not_read() -> None:
    assert set(documented()) - set(Settings.variables()) - process_variables() == set()


def test_every_documented_variable_has_a_comment() -> None:
    for name, comment in documented().items():
        assert comment.startswith("#"), f"{name} has no comment above it"


def test_every_setting_has_help_text() -> None:
    for name, help_text in Settings.variables().items():
        assert len(help_text) > 5, f"{name} has no help text in the settings table"


def test_the_app_reads_the_environment_only_through_the_settings_table() -> None:
    readers = [
        path.relative_to(ROOT)
        for path in ROOT.joinpath("app").rglob("*.py")
        if re.search(r"os\.environ|getenv\(", path.read_text()) and path.name != "config.py"
    ]
    assert readers == []
