"""The other clients beside the webhooks: signed-in readers, slow downloads, live-status polls.

Run by ``bench.load`` as a process of its own (``python -m bench.load.clients
SPEC OUT``), one asyncio event loop for all of them, apart from the webhook
sender. It prints ``ready`` once every client has sent its first request
(and each reader has had its first answer), keeps going until ``stop`` (or
end of file) arrives on stdin, then stops them all, writes what each kind
of client did to OUT as JSON, and exits. A line ``mark`` on stdin (sent
as the webhooks' schedule starts) sets every count back to zero, so the
counts are those of the measured window; ``stop`` ends it.

* Readers (aiohttp, each with its own signed-in session cookie) load their
  paths in turn, back to back: the next request goes out as soon as the
  last answer has been read.
* Slow downloads (audio, CSV) are plain sockets: a small receive buffer
  (``SO_RCVBUF``), ``Connection: close``, and ``read_rate`` bytes a second
  read in chunks of ``chunk`` bytes, so the server's writes block as they
  would for a client on a bad line. A finished download starts again.
* Polls ask ``/api/calls?updated_since=`` every ``interval`` seconds, from
  the ``as_of`` of the last answer minus 5 seconds, as ``app/static/calls.js``
  does on the calls list while a call is in progress.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

TIMEOUT = 120.0
RCVBUF = 4096
# calls.js asks a little further back than its last answer.
OVERLAP = timedelta(seconds=5)
KEEPALIVE = 1.5  # below gunicorn's 2 s keep-alive, as in the sender


@dataclass
class Tally:
    """What one kind of client did."""

    requests: int = 0  # requests sent
    answered: int = 0  # answers read to the end
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # seconds, whole answer (readers, polls)
    first_bytes: list[float] = field(default_factory=list)  # seconds to the status line (slow)
    bytes: int = 0
    paths: Counter[str] = field(default_factory=Counter)

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "answered": self.answered,
            "statuses": dict(self.statuses),
            "errors": dict(self.errors),
            "latencies": self.latencies,
            "first_bytes": self.first_bytes,
            "bytes": self.bytes,
            "paths": dict(self.paths),
        }


class Request:
    """One request: sent; waiting until its answer begins; in flight until it ends."""

    def __init__(self, clients: Clients, kind: str, path: str) -> None:
        self.clients, self.kind, self.waiting = clients, kind, True
        tally = clients.tally(kind)
        tally.requests += 1
        tally.paths[path] += 1
        clients.pending[kind] += 1
        clients.in_flight[kind] += 1

    def began(self) -> None:
        if self.waiting:
            self.waiting = False
            self.clients.pending[self.kind] -= 1

    def end(self) -> None:
        self.began()
        self.clients.in_flight[self.kind] -= 1


class Clients:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.host: str = spec["host"]
        self.port: int = spec["port"]
        self.base = f"http://{self.host}:{self.port}"
        self.tallies: dict[str, Tally] = {}
        self.in_flight: Counter[str] = Counter()  # requests sent and not yet ended, by kind
        self.in_flight_at_mark: Counter[str] = Counter()
        self.pending: Counter[str] = Counter()  # requests sent whose answer has not begun, by kind
        self.waiting = 0  # clients that have not yet sent their first request
        self.all_started = asyncio.Event()

    def tally(self, kind: str) -> Tally:
        """The current window's counts of ``kind`` (looked up each time: ``mark`` starts new ones)."""
        return self.tallies.setdefault(kind, Tally())

    def _expect(self, kind: str) -> asyncio.Event:
        self.tally(kind)  # counted from the start, even if it never gets to send again
        self.waiting += 1
        return asyncio.Event()

    def _started(self, first: asyncio.Event) -> None:
        if not first.is_set():
            first.set()
            self.waiting -= 1
            if self.waiting == 0:
                self.all_started.set()

    def session(self, cookie: str) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE),
            timeout=aiohttp.ClientTimeout(total=TIMEOUT),
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"Cookie": cookie},
        )

    async def reader(self, cookie: str, paths: list[str]) -> None:
        """Back to back through ``paths``, forever."""
        first = self._expect("readers")
        loop = asyncio.get_running_loop()
        async with self.session(cookie) as session:
            while True:
                for path in paths:
                    request, began = Request(self, "readers", path), loop.time()
                    try:
                        async with session.get(self.base + path) as answer:
                            request.began()
                            await answer.read()
                        tally = self.tally("readers")
                        tally.statuses[str(answer.status)] += 1
                        tally.answered += 1
                        tally.latencies.append(loop.time() - began)
                    except (aiohttp.ClientError, TimeoutError) as error:
                        self.tally("readers").errors[type(error).__name__] += 1
                        await asyncio.sleep(0.2)
                    finally:
                        request.end()
                    self._started(first)

    async def slow(self, kind: str, path: str, cookie: str) -> None:
        """Download ``path`` at ``read_rate`` bytes a second; again when it ends."""
        rate, chunk = float(self.spec["read_rate"]), int(self.spec["chunk"])
        first = self._expect(kind)
        loop = asyncio.get_running_loop()
        message = (
            f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nCookie: {cookie}\r\n"
            "Accept: */*\r\nConnection: close\r\n\r\n"
        ).encode()
        while True:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            sock.setblocking(False)
            request: Request | None = None
            try:
                await loop.sock_connect(sock, (self.host, self.port))
                await loop.sock_sendall(sock, message)
                request, began, head, status = Request(self, kind, path), loop.time(), b"", ""
                self._started(first)
                while data := await loop.sock_recv(sock, chunk):
                    self.tally(kind).bytes += len(data)
                    if not status:
                        head += data
                        if b"\r\n" in head:
                            status = head.split(b" ", 2)[1].decode()
                            request.began()
                            self.tally(kind).first_bytes.append(loop.time() - began)
                            head = b""
                    await asyncio.sleep(len(data) / rate)
                self.tally(kind).answered += 1
                self.tally(kind).statuses[status or "closed unanswered"] += 1
            except OSError as error:
                self.tally(kind).errors[type(error).__name__] += 1
                await asyncio.sleep(0.5)
            finally:
                if request is not None:
                    request.end()
                sock.close()

    async def poller(self, cookie: str, query: str, interval: float) -> None:
        """The calls list's live status: ``/api/calls`` with ``updated_since``, every ``interval``."""
        first = self._expect("polls")
        loop = asyncio.get_running_loop()
        as_of = datetime.now(UTC)
        async with self.session(cookie) as session:
            while True:
                since = (as_of - OVERLAP).isoformat(timespec="milliseconds").replace("+00:00", "Z")
                path = "/api/calls?" + (f"{query}&" if query else "") + "updated_since=" + quote(since)
                request, began = Request(self, "polls", "/api/calls?updated_since=…"), loop.time()
                self._started(first)  # under way: its answer may be slow to come
                try:
                    headers = {"Accept": "application/json"}
                    async with session.get(self.base + path, headers=headers) as answer:
                        request.began()
                        body = await answer.read()
                    tally = self.tally("polls")
                    tally.statuses[str(answer.status)] += 1
                    tally.answered += 1
                    tally.latencies.append(loop.time() - began)
                    if answer.status == 200:
                        as_of = datetime.fromisoformat(json.loads(body)["as_of"])
                except (aiohttp.ClientError, TimeoutError) as error:
                    self.tally("polls").errors[type(error).__name__] += 1
                finally:
                    request.end()
                await asyncio.sleep(interval)

    def jobs(self) -> list[Coroutine[Any, Any, None]]:
        spec = self.spec
        jobs = [self.reader(cookie, spec["readers"]["paths"]) for cookie in spec["readers"]["cookies"]]
        slow = spec["slow"]
        for kind in ("audio", "csv"):
            jobs += [self.slow(kind, path, slow["cookie"]) for path in slow[kind]]
        polls = spec["polls"]
        for _ in range(polls["count"]):
            jobs.append(self.poller(polls["cookie"], polls["query"], polls["interval"]))
        return jobs

    async def run(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        tasks = [asyncio.create_task(job) for job in self.jobs()]
        began = loop.time()
        if tasks:
            await asyncio.wait_for(self.all_started.wait(), TIMEOUT)
        print(f"ready {loop.time() - began:.2f}", flush=True)
        window = 0.0
        while True:
            line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
            if line == "mark":
                self.tallies = {kind: Tally() for kind in self.tallies}
                self.in_flight_at_mark = Counter(self.in_flight)
                window = time.monotonic()
            if line in ("stop", ""):
                break
        seconds = time.monotonic() - window if window else 0.0
        pending_at_end = dict(self.pending)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return {
            "seconds": seconds,
            "in_flight_at_mark": dict(self.in_flight_at_mark),
            "pending_at_end": pending_at_end,
            "tallies": {kind: tally.as_json() for kind, tally in self.tallies.items()},
        }


def main(argv: list[str]) -> int:
    spec_path, out_path = Path(argv[0]), Path(argv[1])
    result = asyncio.run(Clients(json.loads(spec_path.read_text())).run())
    out_path.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
