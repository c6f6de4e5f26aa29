"""Query plans for the SQL the dashboard runs, captured from the app itself.

The same requests as the benchmark are made in-process with Flask's test
client, on the same database; every SELECT the app sends is caught by
SQLAlchemy's ``before_cursor_execute`` event and explained on that
database. Whatever the pages come to run, the plans follow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event

from app import create_app
from app.config import Settings
from app.models import db
from tests.helpers import BrowserClient, close, login


def capture(settings: Settings, instance: Path, paths: list[tuple[str, str]]) -> dict[str, list[Any]]:
    """For each (what, path): the distinct SELECT statements and parameters it ran, in order."""
    app = create_app(settings, instance_path=str(instance))
    app.test_client_class = BrowserClient
    captured: dict[str, list[Any]] = {}
    try:
        with app.app_context():
            engine = db.engine
        current: list[Any] = []

        def before_cursor_execute(
            connection: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
        ) -> None:
            if statement.lstrip().upper().startswith("SELECT") and not executemany:
                if all(statement != seen for seen, _ in current):
                    current.append((statement, parameters))

        client = app.test_client()
        answer = login(client)
        if answer.status_code != 302:
            raise RuntimeError(f"logging in to the in-process app answered {answer.status_code}")
        event.listen(engine, "before_cursor_execute", before_cursor_execute)
        try:
            for what, path in paths:
                current = captured.setdefault(what, [])
                answer = client.get(path)
                if answer.status_code != 200:
                    raise RuntimeError(f"{path} answered {answer.status_code} in-process")
        finally:
            event.remove(engine, "before_cursor_execute", before_cursor_execute)
        with app.app_context():
            for what, statements in captured.items():
                captured[what] = [(s, p, explain(s, p)) for s, p in statements]
    finally:
        close(app)
    return captured


def explain(statement: str, parameters: Any) -> list[str]:
    """EXPLAIN QUERY PLAN (SQLite) or EXPLAIN (PostgreSQL), as lines."""
    with db.engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
            depth: dict[int, int] = {0: -1}
            lines = []
            for node, parent, _, detail in rows:
                depth[node] = depth.get(parent, -1) + 1
                lines.append("  " * depth[node] + str(detail))
            return lines
        return [row[0] for row in connection.exec_driver_sql("EXPLAIN " + statement, parameters)]


def render(store: str, captured: dict[str, list[Any]]) -> str:
    out = [f"### Query plans, {store}", ""]
    for what, statements in captured.items():
        out += [f"#### {what}", ""]
        for statement, parameters, plan in statements:
            out += ["```sql", " ".join(statement.split()), f"-- parameters: {parameters!r}"[:500], "```"]
            out += ["```", *plan, "```", ""]
    return "\n".join(out)
