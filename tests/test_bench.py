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


def run_bench(module: str, *options: str, out: Path) -> str:
    """``python -m bench.<module> … --out FILE``: its exit code must be 0; returns the report."""
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *options, "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, (
        f"bench.{module} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return out.read_text()


@pytest.fixture
def wrk() -> None:
    if shutil.which("wrk") is None:
        unavailable("wrk is not installed (Debian: apt-get install wrk; make test does)")


@pytest.mark.usefixtures("wrk")
def test_webhook_acknowledgement_runs_against_each_path_and_the_bare_baseline(tmp_path: Path) -> None:
    report = run_bench("webhooks", "--quick", "--storage", "sqlite", out=tmp_path / "webhooks.md")
    for row in (
        "| bare Flask | 204 |",
        "| SQLite | completed |",
        "| SQLite | absent |",
        "| SQLite | assemblyai |",
    ):
        assert row in report, report


def test_fixed_rate_webhooks_run_alone_beside_readers_and_beside_slow_clients(tmp_path: Path) -> None:
    options = ("--quick", "--seconds", "1", "--calls", "100", "--readers", "1", "--slow", "3")
    report = run_bench("load", *options, "--storage", "sqlite", out=tmp_path / "load.md")
    for row in (
        "| SQLite | alone (baseline) |",
        "| SQLite | beside 1 readers | readers: list and searches",
        "| SQLite | beside 3 slow clients | slow audio downloads",
        "| SQLite | beside 3 slow clients | slow CSV exports",
        "| SQLite | beside 3 slow clients | live-status polls",
    ):
        assert row in report, report


def test_pipeline_figures_cover_end_to_end_burst_relay_and_footprint(tmp_path: Path) -> None:
    report = run_bench("pipeline", "--quick", "--storage", "sqlite", out=tmp_path / "pipeline.md")
    for part in (
        "SQLite, idle",
        "SQLite, back to back",
        "Last callback → last transcript",
        "curl",
        "bare huey_consumer",
    ):
        assert part in report, report


def test_dashboard_pages_are_timed_next_to_healthz(tmp_path: Path) -> None:
    options = ("--calls", "100", "--requests", "20", "--depth", "2")
    report = run_bench("dashboard", *options, "--storage", "sqlite", out=tmp_path / "dashboard.md")
    for row in ("GET /healthz", "GET / (first page)", "call page"):
        assert row in report, report
