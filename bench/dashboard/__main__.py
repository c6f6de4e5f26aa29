"""Dashboard benchmark: how fast the calls list, searches, a call page and the CSV answer at scale.

    .venv/bin/python -m bench.dashboard [--calls 100000] [--requests 25] [--storage sqlite|postgres|both]
                                        [--out PATH] [--plans]

Fills a fresh SQLite file and a scratch PostgreSQL database (migrated by the
Procfile's release command) with seeded calls and transcripts, starts the
web process as the Procfile runs it against each, logs in as the admin and
times the pages, next to /healthz on the same stack. See README.md.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote
from uuid import uuid4

from app.config import Settings
from bench.dashboard import measure, plans, store
from bench.dashboard.corpus import COMMON_WORD, PHRASE, RARE_WORD
from bench.dashboard.measure import Browser, NotAvailable, Timing
from bench.running import forget_queue
from tests.e2e.service import Service, free_port
from tests.helpers import full_env

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
# Two sizes of CSV: a worker's peak memory is the same for both when the CSV streams.
CSV_SIZES = {"csv_small": 1_000, "csv": 10_000}
STORES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}

# (key, what the row says, target in ms or None)
MEASURES: list[tuple[str, str, float | None]] = [
    ("healthz", "GET /healthz (baseline: the same stack, no query)", None),
    ("first", "GET / (first page)", 30),
    ("deep", "deep page (the list's Older link followed {depth} times)", 30),
    ("common", f"search, common word (?q={COMMON_WORD})", 100),
    ("rare", f"search, rare word (?q={RARE_WORD})", 100),
    ("phrase", f'search, phrase (?q="{PHRASE}")', 100),
    ("call", "call page /calls/<sid>", 30),
    *((key, f"CSV of {size:,} calls (/calls.csv?limit={size})", None) for key, size in CSV_SIZES.items()),
]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.dashboard",
        description="Time the dashboard's pages on many calls, on SQLite and PostgreSQL.",
    )
    parser.add_argument("--calls", type=int, default=100_000, help="calls to generate (default 100000)")
    parser.add_argument(
        "--requests", type=int, default=25, help="timed requests per measure, after 3 warm-ups (default 25)"
    )
    parser.add_argument("--storage", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("TEST_DATABASE_URL") or DEFAULT_DATABASE_URL,
        help="a PostgreSQL server to make a scratch database on (default $TEST_DATABASE_URL, "
        f"else {DEFAULT_DATABASE_URL}); the database is dropped afterwards",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("TEST_REDIS_URL") or DEFAULT_REDIS_URL,
        help="Redis for the PostgreSQL run's queue, as deployed (default $TEST_REDIS_URL, "
        f"else {DEFAULT_REDIS_URL}); its keys are removed afterwards",
    )
    parser.add_argument("--depth", type=int, default=50, help="Older links to follow for the deep page")
    parser.add_argument("--seed", type=int, default=9, help="seed of the generated calls (default 9)")
    parser.add_argument("--out", type=Path, metavar="PATH", help="also write the Markdown table here")
    parser.add_argument(
        "--plans", action="store_true", help="also print the query plans of a list page and the searches"
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=store.default_processes(),
        help="processes generating rows while the main one inserts (default: one per core, up to 4)",
    )
    parser.add_argument("--web-concurrency", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--workdir", type=Path, help="folder for the SQLite file and the service's logs")
    parser.add_argument("--keep", action="store_true", help="keep the work folder and the scratch database")
    args = parser.parse_args(argv)
    if args.calls < 1:
        parser.error("--calls must be at least 1")
    if args.requests < 20:
        parser.error("--requests must be at least 20, for a p95 worth reading")
    return args


def log(message: str, started: float) -> None:
    print(f"[{time.monotonic() - started:7.1f} s] {message}", flush=True)


@dataclass
class StoreResult:
    name: str
    filled: store.Filled
    timings: dict[str, Timing] = field(default_factory=dict)
    csv_memory: dict[str, str] = field(default_factory=dict)
    depth: int = 0
    plans: str = ""


def service_settings(args: argparse.Namespace, instance: Path, database_url: str) -> dict[str, str]:
    settings = {
        **full_env(None, None),
        "CALLSCRIBE_INSTANCE_PATH": str(instance),
        "DATABASE_URL": database_url,
        "PORT": str(free_port()),
        "HOST": "127.0.0.1",
        "WEB_CONCURRENCY": str(args.web_concurrency),
        "LOG_LEVEL": "WARNING",
    }
    if database_url.startswith("postgres"):
        queue = f"bench-dashboard-{uuid4().hex[:8]}"
        settings.update(REDIS_URL=args.redis_url, QUEUE_NAME=queue)
    return settings


def run_store(args: argparse.Namespace, kind: str, workdir: Path, started: float) -> StoreResult:
    name = STORES[kind]
    with ExitStack() as stack:
        folder = workdir / kind
        instance = folder / "instance"
        instance.mkdir(parents=True, exist_ok=True)
        if kind == "sqlite":
            database_url = store.sqlite_url(instance)
        else:
            database_url = store.scratch_postgres(args.database_url, stack if not args.keep else ExitStack())
        settings = service_settings(args, instance, database_url)
        if "QUEUE_NAME" in settings:
            stack.callback(forget_queue, args.redis_url, settings["QUEUE_NAME"])
        service = Service(settings, folder, workers=0)
        stack.callback(service.stop)

        log(f"{name}: migrating ({' '.join(service.commands['release'])})", started)
        service.release()
        log(f"{name}: generating {args.calls:,} calls with {args.processes} processes", started)
        filled = store.fill(
            database_url, args.seed, args.calls, args.processes, lambda m: log(f"{name}: {m}", started)
        )
        log(
            f"{name}: {filled.calls:,} calls, {filled.transcripts:,} transcripts, {filled.words:,} words "
            f"in {filled.insert_seconds:.1f} s ({filled.size})",
            started,
        )
        app_settings = Settings.from_env(settings, instance_path=str(instance))
        index_started = time.monotonic()
        filled.index = store.rebuild_search_index(app_settings, instance)
        filled.index_seconds = time.monotonic() - index_started
        log(f"{name}: search index: {filled.index} ({filled.index_seconds:.1f} s)", started)

        result = StoreResult(name, filled)
        service.web.start()
        service.wait_ready([service.web], timeout=60.0)
        log(f"{name}: web process (gunicorn) on {service.local_url}", started)
        browser = Browser(service.local_url)
        stack.callback(browser.close)
        browser.log_in()
        measure_pages(args, browser, service, result, started)
        if args.plans:
            result.plans = plans.render(
                name, plans.capture(app_settings, instance, plan_paths(result.timings["deep"].detail))
            )
    return result


def plan_paths(deep_path: str) -> list[tuple[str, str]]:
    return [
        ("list, first page: GET /", "/"),
        (f"list, deep page: GET {deep_path}", deep_path),
        (f"search, common word: GET /?q={COMMON_WORD}", f"/?q={quote(COMMON_WORD)}"),
        (f"search, rare word: GET /?q={RARE_WORD}", f"/?q={quote(RARE_WORD)}"),
        (f'search, phrase: GET /?q="{PHRASE}"', "/?q=" + quote(f'"{PHRASE}"')),
    ]


def measure_pages(
    args: argparse.Namespace, browser: Browser, service: Service, result: StoreResult, started: float
) -> None:
    n = args.requests
    timings = result.timings

    def timed(key: str, paths: Any, detail: str = "", *, optional: bool = False) -> Any:
        log(f"{result.name}: timing {key}", started)
        try:
            timing, last = browser.time(paths, n, optional=optional)
        except NotAvailable:
            timings[key] = Timing(note="not available", detail=detail)
            return None
        timing.detail = detail
        timings[key] = timing
        return last

    timed("healthz", lambda i: "/healthz")
    timed("first", lambda i: "/", "/")
    deep_path, result.depth = measure.deep_page(browser, args.depth)
    timed("deep", lambda i: deep_path, deep_path)
    expected = {
        "common": None,
        "rare": len(result.filled.rare),
        "phrase": len(result.filled.phrase),
    }
    for key, query in (("common", COMMON_WORD), ("rare", RARE_WORD), ("phrase", f'"{PHRASE}"')):
        last = timed(key, lambda i, q=query: "/?q=" + quote(q))
        if last is not None:
            shown = measure.call_links(last.text)
            more = " or more" if measure.next_page(last.text) else ""
            planted = "" if expected[key] is None else f", {expected[key]} planted"
            timings[key].detail = f"{shown}{more} calls on the first page{planted}"
    rng = random.Random(args.seed)
    sids = [rng.choice(result.filled.transcribed) for _ in range(n + measure.WARM_UP)]
    timed("call", lambda i: f"/calls/{sids[i + measure.WARM_UP]}", "a random transcribed call each time")
    master = service.web.pid
    assert master is not None
    for key, size in CSV_SIZES.items():
        with measure.watch_memory(master) as memory:
            last = timed(key, lambda i, size=size: f"/calls.csv?limit={size}", optional=True)
        if last is not None:
            rows = max(0, last.text.count("\n") - 1)
            timings[key].detail = f"{rows:,} rows, {len(last.content) / 2**20:.1f} MB"
            result.csv_memory[key] = (
                f"{memory.peak_kib / 1024:,.0f} MB (before: {memory.before_kib / 1024:,.0f} MB)"
            )


# -- the table ---------------------------------------------------------------------------


def ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f} ms"


def table(args: argparse.Namespace, results: dict[str, StoreResult]) -> str:
    depth = max((r.depth for r in results.values()), default=args.depth)
    header = ["Measure"]
    for name in STORES.values():
        header += [f"{name} median", f"{name} p95"]
    header.append("Target")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, label, target in MEASURES:
        row = [label.format(depth=depth)]
        for kind in STORES:
            result = results.get(kind)
            timing = result.timings.get(key) if result else None
            if timing is None:
                row += ["not run", "not run"]
            elif timing.note:
                row += [timing.note, "—"]
            else:
                row += [ms(timing.median()), ms(timing.p95())]
        row.append(f"< {target:.0f} ms" if target else "—")
        lines.append("| " + " | ".join(row) + " |")
    for key, size in CSV_SIZES.items():
        row = [f"peak RSS of a web worker during the CSV of {size:,}"]
        for kind in STORES:
            result = results.get(kind)
            row += [result.csv_memory.get(key, "not available") if result else "not run", "—"]
        lines.append("| " + " | ".join([*row, "—"]) + " |")
    return "\n".join(lines)


def notes(args: argparse.Namespace, results: dict[str, StoreResult]) -> str:
    out = [
        "",
        f"{args.calls:,} calls, seed {args.seed}; {args.requests} timed requests per row after "
        f"{measure.WARM_UP} warm-ups, one at a time, by a signed-in admin; gunicorn as the Procfile "
        f"runs it, {args.web_concurrency} workers. Times are the client's, whole answer read.",
        "",
    ]
    for result in results.values():
        f = result.filled
        out.append(
            f"- {result.name}: {f.calls:,} calls, {f.transcripts:,} transcripts, {f.words:,} words, "
            f"generated and inserted in {f.insert_seconds:.1f} s, {f.size}; search index: {f.index}"
            + (f" in {f.index_seconds:.1f} s" if f.index.startswith("app.") else "")
            + "."
        )
        for key, label, _ in MEASURES:
            timing = result.timings.get(key)
            if timing is not None and timing.detail and key != "first":
                out.append(f"  - {label.format(depth=result.depth)}: {timing.detail}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="callscribe-dashboard-"))
    workdir.mkdir(parents=True, exist_ok=True)
    kinds = list(STORES) if args.storage == "both" else [args.storage]
    results: dict[str, StoreResult] = {}
    code = 0
    try:
        for kind in kinds:
            results[kind] = run_store(args, kind, workdir, started)
    except KeyboardInterrupt:
        print("interrupted; reporting what there is", file=sys.stderr)
        code = 130
    except Exception:
        print(f"failed; the service's logs are in {workdir}", file=sys.stderr)
        raise
    report = "\n".join(
        [
            f"## Dashboard benchmark: {args.calls:,} calls",
            "",
            table(args, results),
            notes(args, results),
            "",
        ]
    )
    print()
    print(report)
    every_plan = "\n".join(r.plans for r in results.values() if r.plans)
    if every_plan:
        print(every_plan)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report + ("\n" + every_plan if every_plan else ""))
        print(f"written to {args.out}")
    if args.keep or args.workdir is not None:
        print(f"work folder kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
