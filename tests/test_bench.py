"""The benchmarks still run: each one, at the smallest size that covers all its parts, on SQLite.

``make bench`` measures; these only keep its code from rotting. They assert
that a run ends well and reports the rows it promises, never a timing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.service import REPO
from tests.skips import unavailable

pytestmark = pytest.mark.e2e


# Each benchmark at its smallest size: its options, and the rows its report must hold.
SMOKE_RUNS = {
    "webhooks": (
        ("--quick",),
        ("| bare Flask | 204 |", "| SQLite | completed |", "| SQLite | absent |", "| SQLite | assemblyai |"),
    ),
    "load": (
        ("--quick", "--seconds", "1", "--calls", "100", "--readers", "1", "--slow", "3"),
        (
            "| SQLite | alone (baseline) |",
            "| SQLite | beside 1 readers | readers: list and searches",
            "| SQLite | beside 3 slow clients | slow audio downloads",
            "| SQLite | beside 3 slow clients | slow CSV exports",
            "| SQLite | beside 3 slow clients | live-status polls",
        ),
    ),
    "pipeline": (
        ("--quick",),
        (
            "SQLite, idle",
            "SQLite, back to back",
            "Last callback → last transcript",
            "curl",
            "bare huey_consumer",
        ),
    ),
    "dashboard": (
        ("--calls", "100", "--requests", "20", "--depth", "2"),
        ("GET /healthz", "GET / (first page)", "call page"),
    ),
}


@pytest.mark.parametrize("module", SMOKE_RUNS)
def test_each_benchmark_runs_and_reports_its_rows(module: str, tmp_path: Path) -> None:
    """webhooks: each path and the bare baseline; load: alone, beside readers and slow clients;
    pipeline: end to end, burst, relay and footprint; dashboard: the pages next to /healthz."""
    if module == "webhooks" and shutil.which("wrk") is None:
        unavailable("wrk is not installed (Debian: apt-get install wrk; make test does)")
    options, rows = SMOKE_RUNS[module]
    out = tmp_path / f"{module}.md"
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *options, "--storage", "sqlite", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, (
        f"bench.{module} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    report = out.read_text()
    for row in rows:
        assert row in report, report
