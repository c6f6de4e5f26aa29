"""What a soak run measured: the service's own rows, the fakes' logs, the service's logs."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from app.config import Settings
from app.models import Call, Recording, Transcript

RECORDINGS = Recording.__table__
TRANSCRIPTS = Transcript.__table__
CALLS = Call.__table__


def database_engine(database_url: str) -> sa.Engine:
    """An engine on the service's database, with the URL rewritten the way the app does."""
    url = Settings.from_env({"DATABASE_URL": database_url, "SECRET_KEY": "x"}).database_url
    return sa.create_engine(url, poolclass=NullPool)


@dataclass(frozen=True)
class RecordingRow:
    id: int
    recording_sid: str
    stage: str | None
    attempts: int
    last_error: str | None
    transcript_status: str | None
    text: str | None
    completed_at: datetime | None


def recording_rows(engine: sa.Engine) -> dict[str, RecordingRow]:
    """Every recording with its transcript (if any), keyed by RecordingSid."""
    statement = sa.select(
        RECORDINGS.c.id,
        RECORDINGS.c.recording_sid,
        RECORDINGS.c.stage,
        RECORDINGS.c.attempts,
        RECORDINGS.c.last_error,
        TRANSCRIPTS.c.status,
        TRANSCRIPTS.c.text,
        TRANSCRIPTS.c.completed_at,
    ).select_from(RECORDINGS.outerjoin(TRANSCRIPTS, TRANSCRIPTS.c.recording_id == RECORDINGS.c.id))
    with engine.connect() as connection:
        return {row[1]: RecordingRow(*row) for row in connection.execute(statement)}


def progress(engine: sa.Engine) -> tuple[int, int]:
    """(transcribed, failed) recordings, cheaply, for the progress line."""
    statement = sa.select(RECORDINGS.c.stage, sa.func.count()).group_by(RECORDINGS.c.stage)
    with engine.connect() as connection:
        counts = dict(connection.execute(statement).all())
    return counts.get("transcribed", 0), counts.get("failed", 0)


def transcripts_per_recording(engine: sa.Engine) -> dict[int, int]:
    """Recordings with more than one transcripts row (the schema should make this impossible)."""
    statement = (
        sa.select(TRANSCRIPTS.c.recording_id, sa.func.count())
        .group_by(TRANSCRIPTS.c.recording_id)
        .having(sa.func.count() > 1)
    )
    with engine.connect() as connection:
        return {recording_id: count for recording_id, count in connection.execute(statement)}


def call_statuses(engine: sa.Engine) -> dict[str, str | None]:
    with engine.connect() as connection:
        return {
            sid: status for sid, status in connection.execute(sa.select(CALLS.c.call_sid, CALLS.c.status))
        }


def webhook_recording_id(webhook_url: str | None) -> int | None:
    """Our recording id, from the webhook URL the service gave AssemblyAI."""
    if not webhook_url:
        return None
    values = parse_qs(urlsplit(webhook_url).query).get("recording")
    return int(values[0]) if values and values[0].isdigit() else None


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of the values, None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


# -- the service's logs -------------------------------------------------------

ACCESS_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3}) ')
LEVEL = re.compile(r"\b(?P<level>WARNING|ERROR|CRITICAL)\b")
SERIOUS = ("Traceback", "database is locked", "WORKER TIMEOUT", "OperationalError", "deadlock")
# The last line of a traceback: "sqlite3.OperationalError: database is locked".
EXCEPTION_LINE = re.compile(
    r"^(?P<type>[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt))(: (?P<message>.*))?$"
)


@dataclass
class LogFindings:
    lines: int = 0
    by_level: Counter[str] = field(default_factory=Counter)
    serious: Counter[str] = field(default_factory=Counter)
    responses_5xx: Counter[str] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # ERROR lines and exceptions raised, by kind
    samples: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "by_level": dict(self.by_level),
            "serious": dict(self.serious),
            "responses_5xx": dict(self.responses_5xx),
            "warnings": dict(self.warnings.most_common(15)),
            "errors": dict(self.errors.most_common(15)),
            "samples": self.samples,
        }


def _warning_shape(line: str) -> str:
    """A log line's message with its ids and numbers blanked, to group alike ones."""
    return _shape(line.split(": ", 1)[-1])


def _shape(message: str) -> str:
    message = re.sub(r"\b(RE|CA)[0-9a-f]{32}\b", r"\1…", message)
    message = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "<id>", message)
    return re.sub(r"\b\d+(\.\d+)?\b", "N", message)[:160]


def scan_logs(paths: list[Path], max_samples: int = 12) -> LogFindings:
    findings = LogFindings()
    for path in paths:
        try:
            text = path.read_text(errors="replace")
        except FileNotFoundError:
            continue
        for line in text.splitlines():
            findings.lines += 1
            access = ACCESS_LINE.search(line)
            if access is not None:
                if access["status"].startswith("5"):
                    key = f"{access['method']} {access['path'].split('?')[0]} {access['status']}"
                    findings.responses_5xx[key] += 1
                    if len(findings.samples) < max_samples:
                        findings.samples.append(f"{path.name}: {line}")
                continue
            exception = EXCEPTION_LINE.match(line)
            if exception is not None:
                findings.errors[f"{path.name}: raised {_shape(line)}"] += 1
            serious = [s for s in SERIOUS if s in line]
            for s in serious:
                findings.serious[s] += 1
            level = LEVEL.search(line)
            if level is not None:
                findings.by_level[level["level"]] += 1
                shaped = f"{path.name}: {_warning_shape(line)}"
                if level["level"] == "WARNING":
                    findings.warnings[shaped] += 1
                else:
                    findings.errors[shaped] += 1
            if (serious or (level is not None and level["level"] != "WARNING")) and len(
                findings.samples
            ) < max_samples:
                findings.samples.append(f"{path.name}: {line}")
    return findings


JOB_STARTED = re.compile(r"Executing app\.jobs\.(?P<task>\w+)")
RECONCILED = re.compile(
    r"reconcile: (?P<advance>\d+) to advance, (?P<poll>\d+) to poll, (?P<recover>\d+) calls"
)


def worker_jobs(path: Path) -> dict[str, int]:
    """Jobs the worker ran, by task, and what the reconciliation queued, from the worker's log."""
    counts: Counter[str] = Counter()
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return {}
    for line in text.splitlines():
        started = JOB_STARTED.search(line)
        if started is not None:
            counts[f"ran {started['task']}"] += 1
            continue
        reconciled = RECONCILED.search(line)
        if reconciled is not None:
            for name in ("advance", "poll", "recover"):
                counts[f"reconcile queued {name}"] += int(reconciled[name])
    return dict(sorted(counts.items()))


# -- rendering ------------------------------------------------------------------


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def table(rows: list[tuple[str, Any]], title: str) -> str:
    width = max(len(name) for name, _ in rows)
    lines = [title, "-" * len(title)]
    for name, value in rows:
        if name.startswith("  ") and value == "":
            lines.append(name)
        else:
            lines.append(f"{name.ljust(width)}  {value}")
    return "\n".join(lines)
