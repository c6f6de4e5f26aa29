"""What every benchmark needs around the service it runs: the serving settings, a port, a queue to forget."""

from __future__ import annotations

import os
import socket
import time

import redis

# gunicorn.conf.py's and the worker's sizes: a benchmark runs the service with
# this process's values, when set, and says which it ran with.
SERVING_VARIABLES = ("WEB_CONCURRENCY", "WEB_THREADS", "WORKER_THREADS")


def serving_settings() -> dict[str, str]:
    """This process's WEB_CONCURRENCY, WEB_THREADS and WORKER_THREADS, where set."""
    return {name: os.environ[name] for name in SERVING_VARIABLES if os.environ.get(name)}


def serving_label(settings: dict[str, str]) -> str:
    """How the web process was sized, as gunicorn.conf.py reads ``settings``."""
    return f"{settings.get('WEB_CONCURRENCY', '2')} workers × {settings.get('WEB_THREADS', '16')} threads"


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


def forget_queue(redis_url: str, queue: str) -> None:
    """The run's queue keys (jobs no worker took) go with it."""
    with redis.Redis.from_url(redis_url) as client:
        for key in client.scan_iter(match=f"*{queue}*"):
            client.delete(key)
