"""Item 7: idle resident memory of a web worker and of the queue consumer, beside bare baselines.

A web worker is a gunicorn worker process (a child of the master) once it
has served a request: requests go on new connections until every worker's
``wchar`` (bytes it wrote: the answer and its access-log line) has grown,
so each has served at least one; then, after a pause, each one's ``VmRSS``
is read and the largest reported. The queue consumer is ``flask worker`` as
the Procfile runs it, idle since it started.

The baselines: ``bench/webhooks/bare.py`` under gunicorn with
gunicorn.conf.py (its one route, POSTed), and a bare ``huey_consumer`` of
``bench/pipeline/bare_huey.py`` (SqliteHuey, one task) with as many threads
as the app's worker.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import requests

from app.config import Settings
from bench.pipeline import procs
from bench.pipeline.stack import Running
from bench.running import wait_for_port
from tests.e2e.service import WORKER_READY, Process, free_port, process_env

IDLE_SECONDS = 2.0
WEB, CONSUMER = "web worker", "queue consumer"
BARE_WEB = "bare Flask (bench/webhooks/bare.py) under gunicorn.conf.py"
BARE_CONSUMER = "bare huey_consumer (bench/pipeline/bare_huey.py: SqliteHuey, one task)"
MEASURED, BASELINE = "measured", "baseline"


@dataclass
class Footprint:
    process: str  # WEB or CONSUMER
    label: str  # a store's name, or which bare process
    rss_mib: float
    role: str = MEASURED
    processes: int = 1  # gunicorn workers read (the largest is reported)


def gunicorn_workers(master: int, timeout: float = 20.0) -> list[int]:
    """The master's workers, once their number has held still for a second."""
    deadline = time.monotonic() + timeout
    workers, since = procs.children(master), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = procs.children(master)
        if now != workers:
            workers, since = now, time.monotonic()
        elif workers and time.monotonic() - since >= 1.0:
            return workers
    raise RuntimeError(f"gunicorn {master} has no steady set of workers: {workers}")


def web_worker_rss(master: int, url: str, method: str, limit: int = 200) -> tuple[float, int]:
    """Serve requests until each worker has served one; then the largest worker's idle RSS (MiB)."""
    workers = gunicorn_workers(master)
    written = {pid: procs.written_bytes(pid) for pid in workers}
    served: set[int] = set()
    for _ in range(limit):
        answer = requests.request(method, url, headers={"Connection": "close"}, timeout=10)
        if answer.status_code >= 400:
            raise RuntimeError(f"{method} {url} answered {answer.status_code}")
        time.sleep(0.02)
        served |= {pid for pid in workers if procs.written_bytes(pid) > written[pid]}
        if served == set(workers):
            break
    else:
        raise RuntimeError(f"after {limit} requests only workers {sorted(served)} of {workers} served one")
    time.sleep(IDLE_SECONDS)
    return max(procs.rss_mib(pid) for pid in workers), len(workers)


def service(running: Running) -> list[Footprint]:
    """The service's web worker and queue consumer, idle; run first, before any call."""
    master, consumer = running.service.web.pid, running.service.worker.pid
    assert master is not None and consumer is not None
    rss, count = web_worker_rss(master, f"{running.service.local_url}/healthz", "GET")
    idle = procs.rss_mib(consumer)
    return [
        Footprint(WEB, f"{running.name}: gunicorn worker of wsgi:app", rss, processes=count),
        Footprint(CONSUMER, f"{running.name}: flask worker", idle),
    ]


def bare_web(folder: Path, name: str) -> tuple[float, int]:
    """bench/webhooks/bare.py under gunicorn.conf.py: its largest worker's RSS after a request."""
    port = free_port()
    web = Process(
        name,
        ["gunicorn", "-c", "gunicorn.conf.py", "bench.webhooks.bare:app"],
        process_env({"PORT": str(port), "HOST": "127.0.0.1"}),
        folder / f"{name}.log",
    )
    try:
        web.start()
        wait_for_port(port)
        assert web.pid is not None
        return web_worker_rss(web.pid, f"http://127.0.0.1:{port}/twilio/recording-status", "POST")
    finally:
        web.stop()


def bare_consumer(folder: Path) -> float:
    """A bare huey_consumer with as many threads as the app's worker: its idle RSS."""
    threads = Settings.from_env({"SECRET_KEY": "x"}).worker_threads  # the worker's default
    consumer = Process(
        "bare-consumer",
        [
            "huey_consumer",
            "bench.pipeline.bare_huey.huey",
            "--workers",
            str(threads),
            "--worker-type",
            "thread",
        ],
        process_env({"BENCH_BARE_HUEY_FILE": str(folder / "bare-huey.db")}),
        folder / "bare-consumer.log",
    )
    try:
        consumer.start()
        deadline = time.monotonic() + 20
        while WORKER_READY not in consumer.tail(50):
            if consumer.exit_code is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the bare consumer did not start:\n{consumer.tail()}")
            time.sleep(0.1)
        time.sleep(IDLE_SECONDS)
        assert consumer.pid is not None
        return procs.rss_mib(consumer.pid)
    finally:
        consumer.stop()


def bare(folder: Path) -> list[Footprint]:
    """The baselines, one after the other."""
    folder.mkdir(parents=True, exist_ok=True)
    rss, count = bare_web(folder, "bare-web")
    return [
        Footprint(WEB, BARE_WEB, rss, BASELINE, count),
        Footprint(CONSUMER, BARE_CONSUMER, bare_consumer(folder), BASELINE),
    ]
