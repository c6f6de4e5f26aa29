"""Timing the dashboard over HTTP as a signed-in admin, and the web workers' memory."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import requests

from tests.helpers import ADMIN_PASSWORD

WARM_UP = 3
TIMEOUT = 120.0


class NotAvailable(Exception):
    """The route is not there (404): the row says so instead of a time."""


@dataclass
class Timing:
    samples_ms: list[float] = field(default_factory=list)
    note: str = ""  # "not available", or what went wrong
    detail: str = ""  # what was measured (URL, hits, depth)

    def median(self) -> float | None:
        return percentile(self.samples_ms, 50)

    def p95(self) -> float | None:
        return percentile(self.samples_ms, 95)


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


class Browser:
    """A signed-in admin's session on the running service."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()

    def close(self) -> None:
        self.session.close()

    def log_in(self) -> None:
        form = self.session.get(f"{self.base_url}/login", timeout=TIMEOUT)
        form.raise_for_status()
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        if token is None:
            raise RuntimeError("the login form carries no CSRF token")
        answer = self.session.post(
            f"{self.base_url}/login",
            data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token.group(1)},
            allow_redirects=False,
            timeout=TIMEOUT,
        )
        if answer.status_code != 302:
            raise RuntimeError(f"logging in answered {answer.status_code}: {answer.text[:300]}")

    def get(self, path: str) -> requests.Response:
        return self.session.get(urljoin(self.base_url + "/", path.lstrip("/")), timeout=TIMEOUT)

    def time(
        self, paths: Callable[[int], str], requests_: int, *, optional: bool = False
    ) -> tuple[Timing, requests.Response]:
        """``WARM_UP`` requests, then ``requests_`` timed ones; every answer must be 200.

        An ``optional`` route (one still being built) that answers 404 at once raises NotAvailable.
        """
        timing = Timing()
        last: requests.Response | None = None
        for i in range(-WARM_UP, requests_):
            started = time.perf_counter()
            last = self.get(paths(i))
            elapsed = (time.perf_counter() - started) * 1000
            if optional and last.status_code == 404 and i == -WARM_UP:
                raise NotAvailable(paths(i))
            if last.status_code != 200:
                timing.note = f"HTTP {last.status_code} for {paths(i)}"
                return timing, last
            if i >= 0:
                timing.samples_ms.append(elapsed)
        assert last is not None
        return timing, last


class PageLinks(HTMLParser):
    """The list's link to older calls: ``<a rel="next">``, or "Older" in ``nav.pages``."""

    def __init__(self) -> None:
        super().__init__()
        self.rel_next: str | None = None
        self.older: str | None = None
        self._in_pages = 0
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        if tag == "nav":
            self._in_pages += 1 if "pages" in classes or self._in_pages else 0
        if tag in ("a", "link") and "next" in (attributes.get("rel") or "").split():
            self.rel_next = self.rel_next or attributes.get("href")
        if tag == "a" and self._in_pages:
            self._href, self._text = attributes.get("href"), []

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            if "".join(self._text).strip().lower().startswith("older") and self.older is None:
                self.older = self._href
            self._href = None
        if tag == "nav" and self._in_pages:
            self._in_pages -= 1

    @property
    def next(self) -> str | None:
        return self.rel_next or self.older


def next_page(html: str) -> str | None:
    links = PageLinks()
    links.feed(html)
    return links.next


def call_links(html: str) -> int:
    """How many calls a list page shows (links to /calls/<sid>)."""
    return len(set(re.findall(r'href="/calls/(CA[0-9a-f]{32})"', html)))


def deep_page(browser: Browser, depth: int) -> tuple[str, int]:
    """Follow the list's link to older calls ``depth`` times (or until the last page)."""
    path, followed = "/", 0
    while followed < depth:
        answer = browser.get(path)
        answer.raise_for_status()
        older = next_page(answer.text)
        if older is None:
            break
        path = urljoin(path, older)
        followed += 1
    return path, followed


# -- memory ------------------------------------------------------------------------------


def worker_pids(master: int) -> list[int]:
    """gunicorn's worker processes: the master's children."""
    try:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    except OSError:
        return []
    return [int(pid) for pid in children]


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


@dataclass
class MemoryPeak:
    before_kib: int = 0
    peak_kib: int = 0


@contextmanager
def watch_memory(master: int, interval: float = 0.005) -> Iterator[MemoryPeak]:
    """The largest resident size of any one web worker while the block runs, sampled every 5 ms."""
    peak = MemoryPeak()
    peak.before_kib = max((rss_kib(p) or 0 for p in worker_pids(master)), default=0)
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for pid in worker_pids(master):
                peak.peak_kib = max(peak.peak_kib, rss_kib(pid) or 0)
            stop.wait(interval)

    thread = threading.Thread(target=sample, name="rss", daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join()
