"""The recording pipeline: end to end, a burst, the relay, the footprint (issue 10, items 4 to 7).

Each figure beside a baseline measured in the same run:

* end to end: recording callback → transcript stored (``recordings.created_at``
  → ``transcripts.completed_at``), fake providers answering at once, one
  call at a time with a pause between, and back to back; baseline: the same
  provider round trips made by the app's own clients, nothing else;
* burst: the soak (``bench/soak``) with 1,000 calls, 16 at a time, no faults;
* relay: a 60-minute dual-channel WAV from fake Twilio to fake AssemblyAI's
  upload by the worker, beside ``curl | curl`` between the same fakes, and
  the worker's peak RSS growth;
* footprint: idle RSS of a web worker and of the queue consumer, beside bare
  Flask under the same gunicorn settings and a bare ``huey_consumer``.

    python -m bench.pipeline                                     # everything, SQLite and PostgreSQL + Redis
    python -m bench.pipeline --storage sqlite --only end-to-end,relay,footprint --out pipeline.md
    python -m bench.pipeline --quick --storage both              # a smoke run, tiny sizes
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from bench.pipeline import burst, footprint, latency, relay, stack
from bench.pipeline.burst import Burst
from bench.pipeline.footprint import Footprint
from bench.pipeline.latency import Latency
from bench.pipeline.relay import Relay

ITEMS = ("end-to-end", "burst", "relay", "footprint")
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
# The targets.
E2E_P50, E2E_P99 = 0.3, 1.0
BURST_P50, BURST_LAST = 5.0, 10.0
RELAY_RATIO, RELAY_RSS = 0.9, 30e6 / 2**20  # 30 MB, in MiB
FOOTPRINT_RATIO = 2.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__.split("\n")[0])
    parser.add_argument("--storage", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--only", default=",".join(ITEMS), help=f"comma-separated, of {','.join(ITEMS)}")
    parser.add_argument("--skip-burst", action="store_true", help="leave the burst (the soak) out")
    parser.add_argument("--calls", type=int, default=50, help="end-to-end calls each way (default 50)")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between idle calls (default 1)")
    parser.add_argument("--burst-calls", type=int, default=1000, help="calls of the burst (default 1000)")
    parser.add_argument("--relay-minutes", type=float, default=60.0, help="length of the WAV (default 60)")
    parser.add_argument("--relay-runs", type=int, default=3, help="relays each way; the median (default 3)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes for a smoke run: 5 calls each way, a 1-minute WAV, one relay, a burst of 20",
    )
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL") or DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=os.environ.get("TEST_REDIS_URL") or DEFAULT_REDIS_URL)
    parser.add_argument("--out", type=Path, help="also write the Markdown report here")
    args = parser.parse_args(argv)
    args.only = {item.strip() for item in args.only.split(",") if item.strip()}
    unknown = args.only - set(ITEMS)
    if unknown:
        parser.error(f"--only: unknown {', '.join(sorted(unknown))}; choose from {', '.join(ITEMS)}")
    if args.skip_burst:
        args.only.discard("burst")
    if args.quick:
        args.calls, args.pause, args.burst_calls = 5, 0.2, 20
        args.relay_minutes, args.relay_runs = 1.0, 1
    if args.calls < 1 or args.burst_calls < 1 or args.relay_runs < 1 or args.relay_minutes <= 0:
        parser.error("--calls, --burst-calls, --relay-runs and --relay-minutes must be positive")
    return args


@dataclass
class Results:
    latency: list[Latency] = field(default_factory=list)
    bursts: list[Burst] = field(default_factory=list)
    relays: list[Relay] = field(default_factory=list)
    footprints: list[Footprint] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    relay_size: int = 0

    def attempt(self, what: str, step: Callable[[], Any]) -> Any:
        """Run one measurement; a failure is reported and the others go on."""
        try:
            return step()
        except Exception as error:
            traceback.print_exc()
            self.failures.append(f"{what}: {type(error).__name__}: {error}"[:300])
            return None


# -- the tables ---------------------------------------------------------------------


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:,.0f} ms"


def secs(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f} s"


def row(cells: list[str]) -> str:
    """A Markdown table row; a ``|`` inside a cell (curl | curl) is escaped."""
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("met" if ok else "**missed**")


def latency_table(results: list[Latency]) -> str:
    lines = [
        "| Store | Calls | Stored | p50 | p99 | max | From send: p50 / p99 | p50 vs baseline | Target |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    floors = {r.store: r.pct(50) for r in results if r.mode == latency.FLOOR}
    for r in results:
        p50, p99 = r.pct(50), r.pct(99)
        floor = floors.get(r.store)
        if r.mode == latency.FLOOR:
            ratio, target, sent = "baseline", "-", "-"
        else:
            ratio = f"{p50 / floor:.1f}×" if p50 and floor else "-"
            met = None if p50 is None or p99 is None else p50 < E2E_P50 and p99 < E2E_P99
            target = f"p50 < 300 ms, p99 < 1 s: {verdict(met)}"
            sent = f"{ms(r.pct(50, r.from_send))} / {ms(r.pct(99, r.from_send))}"
        stored = f"{len(r.seconds)}" + (f" ({r.missing} not within 30 s)" if r.missing else "")
        lines.append(
            row(
                [
                    f"{r.store}, {r.mode}",
                    str(r.calls),
                    stored,
                    ms(p50),
                    ms(p99),
                    ms(r.pct(100)),
                    sent,
                    ratio,
                    target,
                ]
            )
        )
    return "\n".join(lines)


def burst_table(results: list[Burst]) -> str:
    lines = [
        "| Store | Calls (16 at a time) | Transcribed | Lost / duplicated | p50 | p99 | max | "
        "All callbacks sent after | Last callback → last transcript | Target |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for b in results:
        r = b.report
        if r is None:
            lines.append(row([b.store, "-", f"the soak exited with {b.exit_code}, no report", *["-"] * 7]))
            continue
        lat, last = r["latency_seconds"], r.get("last_callback_to_last_transcript_seconds")
        met = None if lat["p50"] is None or last is None else lat["p50"] < BURST_P50 and last <= BURST_LAST
        cells = [
            b.store,
            f"{r['calls_pushed']} of {r['settings']['calls']}",
            str(r["recordings_transcribed"]),
            f"{r['lost']} / {r['duplicates']}",
            *(secs(lat[q]) for q in ("p50", "p99", "max")),
            secs(r["push_seconds"]),
            secs(last),
            f"p50 < 5 s, last within 10 s: {verdict(met)}",
        ]
        lines.append(row(cells))
    return "\n".join(lines)


def relay_table(results: list[Relay]) -> str:
    lines = [
        "| Store | Method | Seconds | MB/s | vs curl pipe | Peak RSS | Target |",
        "|---|---|---|---|---|---|---|",
    ]
    baselines = {r.store: r for r in results if r.method == relay.CURL_BUFFERED}
    for r in results:
        base = baselines.get(r.store)
        ratio = r.mb_per_s / base.mb_per_s if base else None
        if r.method == relay.SERVICE:
            memory = f"+{r.rss_growth_mib:.1f} MiB (the worker's growth)"
            met = (
                None
                if ratio is None or r.rss_growth_mib is None
                else (ratio >= RELAY_RATIO and r.rss_growth_mib < RELAY_RSS)
            )
            target = f"≥ 0.9× curl pipe, growth < 30 MB: {verdict(met)}"
        else:
            memory = (
                "-" if r.peak_rss_mib is None else f"{r.peak_rss_mib:.1f} MiB (the uploading curl, whole)"
            )
            target = "-"
        shown = "baseline" if r.method == relay.CURL_BUFFERED else ("-" if ratio is None else f"{ratio:.2f}×")
        cells = [r.store, r.method, f"{r.seconds:.3f}", f"{r.mb_per_s:,.0f}", shown, memory, target]
        lines.append(row(cells))
    return "\n".join(lines)


def footprint_table(results: list[Footprint]) -> str:
    lines = ["| Process | RSS | vs baseline | Target |", "|---|---|---|---|"]
    baselines = {f.process: f for f in results if f.role == footprint.BASELINE}
    order = (footprint.MEASURED, footprint.BASELINE)
    kinds = (footprint.WEB, footprint.CONSUMER)
    for f in sorted(results, key=lambda f: (kinds.index(f.process), order.index(f.role))):
        base = baselines.get(f.process)
        workers = f" (largest of {f.processes} workers)" if f.processes > 1 else ""
        if f.role == footprint.BASELINE:
            ratio, target = "baseline", "-"
        elif base is None:
            ratio, target = "-", "-"
        else:
            ratio = f"{f.rss_mib / base.rss_mib:.2f}×"
            target = f"≤ 2×: {verdict(f.rss_mib / base.rss_mib <= 2)}"
        lines.append(row([f"{f.process}: {f.label}", f"{f.rss_mib:.1f} MiB{workers}", ratio, target]))
    return "\n".join(lines)


def render(args: argparse.Namespace, results: Results, seconds: float) -> str:
    parts = [
        f"# Pipeline benchmark\n\n`{' '.join(['python -m bench.pipeline', *sys.argv[1:]])}`, {seconds:.0f} s."
    ]
    if results.latency:
        parts.append(
            "## End to end: recording callback → transcript stored\n\n"
            f"{latency_table(results.latency)}\n\n"
            "`recordings.created_at` → `transcripts.completed_at`, from the service's rows; fake providers "
            f"answer at once; embedded defaults. Idle: the next callback {args.pause:g} s after the previous "
            "transcript was stored; back to back: at once. Baseline: the pipeline's provider requests "
            "(media, upload, submit, fetch until final) made in a row by the app's own clients, with no "
            "queue, database or webhook."
        )
    if results.bursts:
        parts.append(
            f"## Burst: {args.burst_calls:,} calls, 16 at a time\n\n{burst_table(results.bursts)}\n\n"
            "The soak (`bench/soak`), no faults, fake AssemblyAI taking 0.05–1 s a transcript (median "
            "about 0.5 s: the floor of any p50 here); the soak's own settings (WORKER_THREADS=4, "
            "RECONCILE_INTERVAL=5, ...). Last callback: the last recording's first callback. Command: "
            f"`{burst.shown(results.bursts[0].command)}`."
        )
    if results.relays:
        parts.append(
            f"## Relay of a {args.relay_minutes:g}-minute dual-channel WAV "
            f"({results.relay_size / 1e6:.1f} MB)\n\n{relay_table(results.relays)}\n\n"
            "From fake Twilio's media request to fake AssemblyAI having read the whole upload, from the "
            f"fakes' request logs; the median of {args.relay_runs} run(s) each way, alternated. The fakes "
            "are Python servers in the benchmark's process, the same for all three rows: read the ratio. "
            "MB = 10⁶ bytes. The worker's growth: its peak RSS over the job (the kernel's "
            f"{results.relays[0].rss_method or 'peak'}) less its RSS before; the largest of the runs."
        )
    if results.footprints:
        parts.append(
            f"## Footprint: idle resident memory\n\n{footprint_table(results.footprints)}\n\n"
            "VmRSS, MiB = 2²⁰ bytes. A web worker: a gunicorn worker (gunicorn.conf.py defaults, "
            "WEB_CONCURRENCY workers) once each worker has served a request (`/healthz`; bare Flask: its "
            f"one route), then idle {footprint.IDLE_SECONDS:g} s. The queue consumer: `flask worker` as the "
            "Procfile runs it, idle, before any call. The web baseline runs gunicorn.conf.py's settings "
            "without its `post_worker_init` hook, which imports `app.auth` (so the whole app) and makes "
            "its stand-in password hash in every worker: bare Flask with the hook is shown beside it."
        )
    if results.failures:
        parts.append("## Not measured\n\n" + "\n".join(f"- {f}" for f in results.failures))
    return "\n\n".join(parts) + "\n"


# -- the run --------------------------------------------------------------------


def run_store(kind: str, args: argparse.Namespace, folder: Path, results: Results, wav: Path | None) -> None:
    """One service on one store: footprint first (nothing has run yet), then end to end, then the relay."""
    name = stack.NAMES[kind]
    print(f"{name}: starting the service", flush=True)
    with stack.running(kind, args, folder) as running:
        if "footprint" in args.only:
            found = results.attempt(f"footprint on {name}", lambda: footprint.service(running))
            results.footprints += found or []
        if "end-to-end" in args.only:
            found = results.attempt(
                f"end to end on {name}", lambda: latency.measure(running, args.calls, args.pause)
            )
            results.latency += found or []
        if wav is not None:
            found = results.attempt(f"relay on {name}", lambda: relay.measure(running, wav, args.relay_runs))
            results.relays += found or []


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    kinds = ["sqlite", "postgres"] if args.storage == "both" else [args.storage]
    started = time.monotonic()
    results = Results()
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        folder = Path(tmp)
        if "footprint" in args.only:
            print("bare baselines: gunicorn with bench/webhooks/bare.py, huey_consumer", flush=True)
            results.footprints += (
                results.attempt("bare baselines", lambda: footprint.bare(folder / "bare")) or []
            )
        wav = None
        if "relay" in args.only:
            wav = folder / "relay.wav"
            results.relay_size = relay.write_wav(wav, args.relay_minutes)
        for kind in kinds:
            name = stack.NAMES[kind]
            if args.only & {"end-to-end", "relay", "footprint"}:
                results.attempt(f"service on {name}", partial(run_store, kind, args, folder, results, wav))
            if "burst" in args.only:
                print(f"{name}: the burst", flush=True)
                found = results.attempt(f"burst on {name}", partial(burst.run, kind, name, args, folder))
                if found is not None:
                    results.bursts.append(found)
    report = render(args, results, time.monotonic() - started)
    print()
    print(report)
    if args.out:
        args.out.write_text(report)
    return 1 if results.failures else 0


if __name__ == "__main__":
    sys.exit(main())
