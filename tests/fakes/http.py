"""Shared base for the fake provider servers: threading, request log, faults.

The fakes only ever listen on 127.0.0.1 with an OS-chosen port, so several
tests (or a gunicorn process started by a test) can use them side by side.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Self
from urllib.parse import parse_qsl

CHUNK_SIZE = 64 * 1024
MAX_BODY = 512 * 1024 * 1024


class Headers(Mapping[str, str]):
    """Read-only, case-insensitive header map that keeps the names as sent."""

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = list(items)
        self._lower: dict[str, str] = {}
        for name, value in self._items:
            self._lower.setdefault(name.lower(), value)

    def __getitem__(self, name: str) -> str:
        return self._lower[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lower

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for name, _ in self._items:
            if name.lower() not in seen:
                seen.add(name.lower())
                yield name

    def __len__(self) -> int:
        return len(self._lower)

    def get_all(self, name: str) -> list[str]:
        """Every value of a repeated header, in order."""
        return [v for n, v in self._items if n.lower() == name.lower()]

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it, for assertions in tests."""

    method: str
    path: str
    query: str
    headers: Headers
    body: bytes
    chunked: bool = False
    kind: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    authorized: bool = False
    time: float = field(default_factory=time.time)

    @property
    def target(self) -> str:
        """Path plus raw query string, byte for byte as requested."""
        return f"{self.path}?{self.query}" if self.query else self.path

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, list[str]]:
        """Form-encoded body as name -> list of values (names can repeat)."""
        out: dict[str, list[str]] = {}
        for name, value in parse_qsl(self.body.decode("utf-8"), keep_blank_values=True):
            out.setdefault(name, []).append(value)
        return out


Action = Literal["send", "drop", "truncate"]


@dataclass
class Response:
    """What a route answers; `action` lets faults drop or cut the reply."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    action: Action = "send"

    @classmethod
    def json(cls, status: int, payload: Any, headers: list[tuple[str, str]] | None = None) -> Response:
        body = json.dumps(payload).encode()
        return cls(
            status,
            body,
            [("Content-Type", "application/json; charset=utf-8"), *(headers or [])],
        )


@dataclass
class Fault:
    """A queued fault; applies to the next `remaining` requests of its kind."""

    action: Literal["fail", "delay", "drop", "truncate"]
    remaining: int
    seconds: float = 0.0
    response: Response | None = None
    after_handling: bool = False
    # A delay only: a client that hangs up while the request waits cancels it
    # (before handling, the request never takes effect).
    cancel_on_hangup: bool = False

    @property
    def delays_specially(self) -> bool:
        """A delay that is not the plain "wait, then handle" (it takes the fault slot)."""
        return self.action == "delay" and (self.after_handling or self.cancel_on_hangup)


@dataclass
class Route:
    """A matched endpoint: its fault kind and the function that answers it."""

    kind: str
    handler: Callable[[RecordedRequest], Response]
    params: dict[str, str] = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    """Tracks open connections so stop() can cut idle keep-alive sockets."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, fake: FakeHTTPServer) -> None:
        self.fake = fake
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Client hang-ups are normal in fault tests; keep stderr quiet."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "callscribe-fake/1.0"
    sys_version = ""
    timeout = 60
    # Headers and body go out in separate writes; without TCP_NODELAY the
    # body waits for the client's delayed ACK (about 40 ms) on a reused
    # connection, as the providers' own servers never make a client wait.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request stderr lines."""

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _read_body(self) -> tuple[bytes, bool]:
        """Read a Content-Length or chunked body (http.server does neither)."""
        encoding = self.headers.get("Transfer-Encoding", "")
        if "chunked" in encoding.lower():
            parts: list[bytes] = []
            total = 0
            while True:
                line = self.rfile.readline(1024)
                if not line.endswith(b"\n"):
                    raise ValueError("bad chunk size line")
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts), True
                total += size
                if total > MAX_BODY:
                    raise ValueError("body too large")
                data = self.rfile.read(size)
                if len(data) != size:
                    raise ValueError("chunk cut short")
                parts.append(data)
                if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                    raise ValueError("missing CRLF after chunk")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError("body too large")
        data = self.rfile.read(length) if length else b""
        if len(data) != length:
            raise ValueError("body cut short")
        return data, False

    def _handle(self) -> None:
        fake = self.server.fake
        try:
            body, chunked = self._read_body()
        except ValueError as exc:
            self.close_connection = True
            self._write(Response.json(400, {"error": f"Malformed request body: {exc}"}))
            return
        path, _, query = self.path.partition("?")
        request = RecordedRequest(
            method=self.command,
            path=path,
            query=query,
            headers=Headers(list(self.headers.items())),
            body=body,
            chunked=chunked,
        )
        response = fake._dispatch(request, self._client_gone)
        if response.action == "drop":
            self.close_connection = True
            return
        self._write(response)

    def _client_gone(self) -> bool:
        """Whether the client closed its end (e.g. its process was killed) while we wait."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def _write(self, response: Response) -> None:
        try:
            self.send_response(response.status)
            for name, value in response.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            if response.action == "truncate":
                self.send_header("Connection", "close")
            self.end_headers()
            body = memoryview(response.body)
            if response.action == "truncate":
                body = body[: len(body) // 2]
                self.close_connection = True
            for start in range(0, len(body), CHUNK_SIZE):
                self.wfile.write(body[start : start + CHUNK_SIZE])
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True


class FakeHTTPServer:
    """Base of the fakes: lifecycle, request log and fault injection.

    Subclasses implement `_route` (match a request to a Route), `_authenticate`
    (None when allowed, else the error Response) and `_error` (the provider's
    own error body for a status).
    """

    kinds: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.requests: list[RecordedRequest] = []
        self.errors: list[str] = []
        # Requests cancelled because the client hung up during a cancel_on_hangup delay.
        self.abandoned: list[RecordedRequest] = []
        self._faults: dict[str, list[Fault]] = {}
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # lifecycle -----------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server(self)
        port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"{type(self).__name__}:{port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server = self._server
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with server.sockets_lock:
            leftovers = list(server.open_sockets)
        for sock in leftovers:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # helpers for tests ---------------------------------------------------

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Poll until predicate() is truthy; background work is asynchronous."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            time.sleep(0.01)

    def requests_of(self, kind: str) -> list[RecordedRequest]:
        with self.lock:
            return [r for r in self.requests if r.kind == kind]

    # fault injection -----------------------------------------------------

    def _queue(self, kind: str, fault: Fault) -> None:
        if kind not in self.kinds:
            raise ValueError(f"unknown kind {kind!r}; expected one of {sorted(self.kinds)}")
        if fault.remaining < 1:
            raise ValueError("times must be >= 1")
        with self.lock:
            self._faults.setdefault(kind, []).append(fault)

    def delay_next(
        self,
        kind: str,
        seconds: float,
        times: int = 1,
        *,
        after_handling: bool = False,
        cancel_on_hangup: bool = False,
    ) -> None:
        """Answer the next `times` requests of `kind` only after `seconds`.

        By default the request waits, then takes effect. With
        after_handling=True it takes effect at once and only the answer
        waits (a reply that may never reach a client that gives up). With
        cancel_on_hangup=True a client that hangs up during the wait ends
        it; before handling, the request then never takes effect (it is
        logged in `abandoned`), like a server that had not got to it yet.
        """
        self._queue(
            kind,
            Fault(
                "delay",
                times,
                seconds=seconds,
                after_handling=after_handling,
                cancel_on_hangup=cancel_on_hangup,
            ),
        )

    def drop_next(self, kind: str, times: int = 1, *, after_handling: bool = False) -> None:
        """Close the connection without answering the next `times` requests.

        With after_handling=True the request takes effect first (the reply is
        lost, not the request), which is what makes client retries unsafe.
        """
        self._queue(kind, Fault("drop", times, after_handling=after_handling))

    def _fail(self, kind: str, response: Response, times: int) -> None:
        self._queue(kind, Fault("fail", times, response=response))

    def _custom_body(self, status: int, body: Any, headers: list[tuple[str, str]] | None = None) -> Response:
        """A test-chosen error body: JSON for dict/list, else sent verbatim."""
        if isinstance(body, dict | list):
            return Response.json(status, body, headers)
        raw = body.encode() if isinstance(body, str) else bytes(body)
        return Response(
            status,
            raw,
            [("Content-Type", "text/plain; charset=utf-8"), *(headers or [])],
        )

    def _count(self, kind: str, **params: str) -> int:
        """Authorized requests of a kind whose route params match."""
        with self.lock:
            return sum(
                1
                for r in self.requests
                if r.kind == kind and r.authorized and all(r.params.get(k) == v for k, v in params.items())
            )

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()

    def _take_faults(self, kind: str) -> tuple[float, Fault | None]:
        """Consume at most one delay and one other fault for this request."""
        delay = 0.0
        other: Fault | None = None
        with self.lock:
            queue = self._faults.get(kind, [])
            for fault in list(queue):
                if fault.action == "delay" and not fault.delays_specially and not delay:
                    delay = fault.seconds
                elif (fault.action != "delay" or fault.delays_specially) and other is None:
                    other = fault
                else:
                    continue
                fault.remaining -= 1
                if fault.remaining == 0:
                    queue.remove(fault)
        return delay, other

    # dispatch ------------------------------------------------------------

    def _route(self, request: RecordedRequest) -> Route | Response:
        raise NotImplementedError

    def _authenticate(self, request: RecordedRequest) -> Response | None:
        raise NotImplementedError

    def _error(self, status: int, message: str | None = None) -> Response:
        raise NotImplementedError

    def _wait(self, seconds: float, hung_up: Callable[[], bool] | None) -> str:
        """Sleep `seconds`; returns "elapsed", "stopped" (the fake stops) or "hung up"."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if self._stopping.wait(min(remaining, 0.05) if hung_up else remaining):
                return "stopped"
            if hung_up is not None and hung_up():
                return "hung up"
        return "elapsed"

    def _dispatch(self, request: RecordedRequest, hung_up: Callable[[], bool] | None = None) -> Response:
        try:
            routed = self._route(request)
            if isinstance(routed, Route):
                request = replace(request, kind=routed.kind, params=dict(routed.params))
            denied = self._authenticate(request)
            request = replace(request, authorized=denied is None)
            with self.lock:
                self.requests.append(request)
            if denied is not None:
                return denied
            if isinstance(routed, Response):
                return routed
            delay, fault = self._take_faults(routed.kind)
            if delay and self._stopping.wait(delay):
                return Response(0, action="drop")  # stopped mid-delay
            if fault is not None and fault.action == "fail" and fault.response is not None:
                return fault.response
            if fault is not None and fault.action == "drop" and not fault.after_handling:
                return Response(0, action="drop")
            special = fault if fault is not None and fault.delays_specially else None
            if special is not None and not special.after_handling:
                waited = self._wait(special.seconds, hung_up)
                if waited == "hung up":
                    with self.lock:
                        self.abandoned.append(request)
                if waited != "elapsed":
                    return Response(0, action="drop")
            response = routed.handler(request)
            if special is not None and special.after_handling:
                if self._wait(special.seconds, hung_up if special.cancel_on_hangup else None) != "elapsed":
                    return Response(0, action="drop")
            if fault is not None and fault.action == "drop":
                return Response(0, action="drop")
            if fault is not None and fault.action == "truncate":
                response.action = "truncate"
            return response
        except Exception:  # a bug in the fake must surface as a 500 plus fake.errors
            with self.lock:
                self.errors.append(traceback.format_exc())
            return self._error(500, "Internal error in fake server")
