"""Other processes' memory and output, read from /proc (Linux), and their peak resident size.

No third-party package: ``/proc/<pid>/status`` has the resident size
(``VmRSS``) and its peak (``VmHWM``); writing ``5`` to ``clear_refs`` sets
the peak back to the current size, so a peak can be taken over one step.
Where that write is refused, :class:`PeakWatch` samples ``VmRSS`` instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

PROC = Path("/proc")
MIB = 1024 * 1024


def _status_kib(pid: int, field: str) -> int:
    for line in (PROC / str(pid) / "status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == field:
            return int(value.split()[0])
    raise LookupError(f"/proc/{pid}/status has no {field}")


def rss_mib(pid: int) -> float:
    """The process's resident size now, in MiB."""
    return _status_kib(pid, "VmRSS") / 1024


def peak_mib(pid: int) -> float:
    """The process's peak resident size (since it started, or since :func:`reset_peak`), in MiB."""
    return _status_kib(pid, "VmHWM") / 1024


def reset_peak(pid: int) -> bool:
    """Set the process's peak resident size back to its current size; False if that is refused."""
    try:
        (PROC / str(pid) / "clear_refs").write_text("5")
    except OSError:
        return False
    return True


def parent_of(pid: int) -> int:
    """The parent's process id, from ``/proc/<pid>/stat`` (the name in brackets may hold anything)."""
    stat = (PROC / str(pid) / "stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def children(pid: int) -> list[int]:
    """The process's children, in order of their ids."""
    found = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            try:
                if parent_of(int(entry.name)) == pid:
                    found.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue  # it ended while we looked
    return sorted(found)


def written_bytes(pid: int) -> int:
    """Bytes the process has passed to write and send calls (``wchar``): files, pipes and sockets."""
    for line in (PROC / str(pid) / "io").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == "wchar":
            return int(value)
    raise LookupError(f"/proc/{pid}/io has no wchar")


class PeakWatch:
    """The growth of a process's resident size over a ``with`` block: its peak, less its size before.

    Resets the kernel's peak where allowed (exact); else samples ``VmRSS``
    every ``interval`` seconds (a peak shorter than that can be missed).
    """

    def __init__(self, pid: int, interval: float = 0.005) -> None:
        self.pid = pid
        self.interval = interval
        self.before = 0.0
        self.peak = 0.0
        self.method = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def growth(self) -> float:
        return max(0.0, self.peak - self.before)

    def __enter__(self) -> PeakWatch:
        self.before = rss_mib(self.pid)
        if reset_peak(self.pid):
            self.method = "VmHWM after clear_refs"
        else:
            self.method = f"VmRSS sampled every {self.interval * 1000:.0f} ms"
            self.peak = self.before
            self._thread = threading.Thread(target=self._sample, name="peak-watch", daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.peak = max(self.peak, rss_mib(self.pid))
            except OSError:
                return

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, rss_mib(self.pid))
        else:
            self.peak = peak_mib(self.pid)


def watch_peak(pid: int, interval: float = 0.005) -> Callable[[], float]:
    """Sample another process's ``VmHWM`` until it ends; call the result (after it ended) for the peak.

    For a child that was forked from this process and then ran another
    program: after ``exec`` its ``VmHWM`` counts the new program only, where
    ``ru_maxrss`` also counts the copy of this process it was for a moment.
    """
    peak = [0.0]

    def sample() -> None:
        while True:
            try:
                peak[0] = max(peak[0], peak_mib(pid))
            except (OSError, LookupError):
                return  # ended (a zombie has no VmHWM)
            time.sleep(interval)

    thread = threading.Thread(target=sample, name=f"peak-{pid}", daemon=True)
    thread.start()

    def result() -> float:
        thread.join()
        return peak[0]

    return result
