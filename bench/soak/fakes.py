"""The fake providers as the soak uses them: counted faults, random processing time.

Only composition on top of ``tests/fakes``: a fault still goes through the
fakes' own queues; these subclasses just write down which ones a request
actually met, so the report can tell injected faults from triggered ones.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass

from tests.fakes import FakeAssemblyAI, FakeTwilio
from tests.fakes.http import Fault


class _CountsFaults:
    """Mixin over FakeHTTPServer: count the faults requests actually met, by label."""

    lock: threading.RLock
    slow_threshold: float = 0.0  # a delay longer than this is the client's timeout

    def _init_counts(self) -> None:
        self.triggered: Counter[str] = Counter()

    def _take_faults(self, kind: str) -> tuple[float, Fault | None]:
        delay, fault = super()._take_faults(kind)  # type: ignore[misc]
        with self.lock:
            if delay:
                self.triggered[slow_label(kind, delay, self.slow_threshold)] += 1
            if fault is not None:
                self.triggered[fault_label(kind, fault)] += 1
        return delay, fault


def slow_label(kind: str, seconds: float, timeout: float) -> str:
    return f"{kind} slow ({'past' if seconds > timeout else 'within'} HTTP_TIMEOUT)"


def fault_label(kind: str, fault: Fault) -> str:
    if fault.action == "fail" and fault.response is not None:
        retry_after = dict(fault.response.headers).get("Retry-After")
        return f"{kind} {fault.response.status}" + (f" Retry-After {retry_after}" if retry_after else "")
    if fault.action == "drop":
        return f"{kind} dropped ({'reply lost' if fault.after_handling else 'request lost'})"
    return f"{kind} {fault.action}d"


class SoakTwilio(_CountsFaults, FakeTwilio):
    def __init__(self, account_sid: str, auth_token: str, *, slow_threshold: float) -> None:
        super().__init__(account_sid, auth_token)
        self.slow_threshold = slow_threshold
        self._init_counts()


class SoakAssemblyAI(_CountsFaults, FakeAssemblyAI):
    """AssemblyAI with a random processing time per transcript."""

    def __init__(self, api_key: str, *, delay_range: tuple[float, float], slow_threshold: float) -> None:
        self._delay_range = delay_range
        super().__init__(api_key, auto_complete=True)
        self.slow_threshold = slow_threshold
        self._init_counts()

    @property
    def processing_delay(self) -> float:  # read once per transcript by FakeAssemblyAI._process
        return random.uniform(*self._delay_range)

    @processing_delay.setter
    def processing_delay(self, value: float) -> None:
        """FakeAssemblyAI.__init__ sets a fixed delay; the soak's range wins."""

    def webhooks_still_to_lose(self) -> int:
        with self.lock:
            return self._lose_webhooks


@dataclass(frozen=True)
class FaultKind:
    label: str
    provider: str  # "twilio" or "assemblyai"
    kind: str  # the fake's request kind
    action: str  # fail, drop, drop-after, slow, truncate, lose-webhook
    status: int | None = None
    retry_after: int | None = None


def catalogue(only: str = "") -> list[FaultKind]:
    """The faults the soak injects (those whose label has one of ``only``'s comma-separated words)."""
    faults: list[FaultKind] = []
    for kind in ("upload", "submit", "fetch"):
        faults += [
            FaultKind(f"{kind} 429 Retry-After 1", "assemblyai", kind, "fail", 429, 1),
            FaultKind(f"{kind} 500", "assemblyai", kind, "fail", 500),
            FaultKind(f"{kind} 503", "assemblyai", kind, "fail", 503),
            FaultKind(f"{kind} dropped", "assemblyai", kind, "drop"),
            FaultKind(f"{kind} slow", "assemblyai", kind, "slow"),
        ]
    faults += [
        FaultKind("media 500", "twilio", "media", "fail", 500),
        FaultKind("media truncated", "twilio", "media", "truncate"),
        FaultKind("webhook lost", "assemblyai", "webhook", "lose-webhook"),
    ]
    words = [w.strip() for w in only.split(",") if w.strip()]
    return [f for f in faults if any(w in f.label for w in words)] if words else faults


class FaultInjector:
    """Queues random faults on the fakes and counts what it queued."""

    def __init__(
        self,
        twilio: SoakTwilio,
        assemblyai: SoakAssemblyAI,
        rng: random.Random,
        timeout: float,
        only: str = "",
    ) -> None:
        self.twilio = twilio
        self.assemblyai = assemblyai
        self.rng = rng
        self.timeout = timeout
        self.kinds = catalogue(only)
        self.injected: Counter[str] = Counter()
        self._lock = threading.Lock()

    def inject_one(self) -> str:
        with self._lock:
            fault = self.rng.choice(self.kinds)
            label = self._apply(fault)
            self.injected[label] += 1
            return label

    def _apply(self, fault: FaultKind) -> str:
        if fault.action == "lose-webhook":
            self.assemblyai.lose_webhooks(1)
            return fault.label
        if fault.action == "truncate":
            self.twilio.truncate_next_media()
            return fault.label
        fake = self.twilio if fault.provider == "twilio" else self.assemblyai
        if fault.action == "fail":
            if fault.provider == "twilio":
                self.twilio.fail_next(fault.kind, fault.status or 500)
            else:
                self.assemblyai.fail_next(fault.kind, fault.status, retry_after=fault.retry_after)
            return fault.label
        if fault.action == "drop":
            # A lost reply to an upload cannot be found again (AssemblyAI has no
            # list of uploads), so the upload's request is lost, never its reply.
            # Submissions and fetches lose either.
            after = fault.kind != "upload" and self.rng.random() < 0.5
            fake.drop_next(fault.kind, after_handling=after)
            return f"{fault.kind} dropped ({'reply lost' if after else 'request lost'})"
        if fault.action == "slow":
            # Up to 1.5 x HTTP_TIMEOUT: some answers are only slow, some time out
            # (and the fake still acts on the request: the reply is what is lost).
            # Uploads only ever come slowly, for the same reason as above: an
            # upload that times out is stored all the same, and cannot be found.
            longest = 0.8 * self.timeout if fault.kind == "upload" else 1.5 * self.timeout
            seconds = round(self.rng.uniform(0.5, longest), 2)
            fake.delay_next(fault.kind, seconds)
            return slow_label(fault.kind, seconds, self.timeout)
        raise AssertionError(fault)

    def triggered(self) -> Counter[str]:
        counts = Counter(self.twilio.triggered) + Counter(self.assemblyai.triggered)
        lost = len(self.assemblyai.lost_webhooks)
        if lost:
            counts["webhook lost"] = lost
        return counts
