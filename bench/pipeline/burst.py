"""Item 5: a burst of calls, 16 at a time, no faults, AssemblyAI taking 0.05 to 1 s a transcript.

The soak (``bench/soak``) plays it: its own service and fakes, its own
settings (see its README), and its ``--json`` report, which this reads.
It runs as a subprocess, so an interrupted run is cleaned up by the soak's
own handlers; a soak that outlives its deadline gets SIGTERM, as Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.service import REPO, tail

CONCURRENCY = 16
PROCESSING_DELAY = (0.05, 1.0)  # the soak's default, the figure
SOAK_STORAGE = {"sqlite": "sqlite", "postgres": "postgres+redis"}


@dataclass
class Burst:
    store: str
    command: list[str]
    exit_code: int
    report: dict[str, Any] | None
    log: Path


def command(kind: str, calls: int, args: argparse.Namespace, json_path: Path) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "bench.soak",
        "--calls",
        str(calls),
        "--concurrency",
        str(CONCURRENCY),
        "--fault-rate",
        "0",
        "--storage",
        SOAK_STORAGE[kind],
        "--json",
        str(json_path),
        "--progress",
        "10",
    ]
    if kind == "postgres":
        argv += ["--database-url", args.database_url, "--redis-url", args.redis_url]
    if args.quick:
        argv += ["--settle", "0"]
    return argv


def shown(argv: list[str]) -> str:
    """The soak's command line as a person would type it (``--json``'s file and the URLs left out)."""
    words, skip = ["python"], False
    for word in argv[1:]:
        if skip:
            skip = False
        elif word in ("--json", "--database-url", "--redis-url"):
            skip = True
        else:
            words.append(word)
    return " ".join(words)


def run(kind: str, name: str, args: argparse.Namespace, folder: Path, timeout: float = 900.0) -> Burst:
    json_path = folder / f"soak-{kind}.json"
    log_path = folder / f"soak-{kind}.log"
    argv = command(kind, args.burst_calls, args, json_path)
    print(f"  {name}: {' '.join(argv[1:])}", flush=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGTERM)
            code = process.wait(60)
        except BaseException:
            # Interrupted: the soak got the same SIGINT and cleans up; let it finish.
            process.wait(60)
            raise
    report = json.loads(json_path.read_text()) if json_path.exists() else None
    if report is None or code != 0:
        print(f"  the soak exited with {code}; the end of its output:\n{tail(log_path, 30)}", flush=True)
    return Burst(name, argv, code, report, log_path)
