"""Fake of the slice of Twilio's REST API (2010-04-01) that callscribe uses.

Speaks the real wire format (form-encoded requests, Twilio JSON resources
and errors, Basic auth on everything including recording media) so the
service can be tested against it with only its base URL swapped.

Recording media follows Twilio on channels: a dual-channel recording is
served as a mono mix-down unless the request asks ``RequestedChannels=2``.
The fake can only mix down what it can read, so this applies to recordings
added as real 16-bit PCM WAV files; any other bytes (tests that only care
which bytes travel) are served exactly as added, whatever is asked.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import secrets
import sys
import wave
from array import array
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs

from .http import FakeHTTPServer, Fault, RecordedRequest, Response, Route

API = "/2010-04-01"
_ACCOUNT = r"/2010-04-01/Accounts/(?P<account_sid>[^/]+)"
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(_ACCOUNT + r"/Calls\.json"), "calls_create"),
    (
        "GET",
        re.compile(_ACCOUNT + r"/Calls/(?P<call_sid>[^/]+)/Recordings\.json"),
        "recordings_list",
    ),
    ("GET", re.compile(_ACCOUNT + r"/Calls/(?P<call_sid>[^/.]+)\.json"), "call_fetch"),
    (
        "GET",
        re.compile(_ACCOUNT + r"/Recordings/(?P<recording_sid>[^/.]+)\.json"),
        "recording",
    ),
    (
        "GET",
        re.compile(_ACCOUNT + r"/Recordings/(?P<recording_sid>[^/.]+)(?P<ext>\.wav|\.mp3)?"),
        "media",
    ),
    (
        "DELETE",
        re.compile(_ACCOUNT + r"/Recordings/(?P<recording_sid>[^/.]+)\.json"),
        "recording_delete",
    ),
]


# The number the fake account owns unless told otherwise: the tests' TWILIO_PHONE_NUMBER.
DEFAULT_PHONE_NUMBER = "+14155550100"
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
# Besides phone numbers, Twilio calls Client identities and SIP addresses.
_OTHER_DESTINATIONS = ("client:", "sip:")


def make_sid(prefix: str) -> str:
    """A Twilio-shaped SID: two-letter prefix plus 32 lowercase hex digits."""
    return prefix + secrets.token_hex(16)


def _now() -> str:
    return format_datetime(datetime.now(UTC))


def twilio_error(status: int, code: int, message: str) -> Response:
    """Twilio's JSON error body, as the twilio library parses it."""
    return Response.json(
        status,
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
    )


class FakeTwilio(FakeHTTPServer):
    """Twilio REST API fake: calls.create, call recordings, recording media.

    calls.create checks its numbers as Twilio does, each refusal a 400 with
    Twilio's code, in this order: ``To`` must be E.164 (or ``client:`` /
    ``sip:``), else 21211; ``From`` must be E.164, else 21212; ``From`` must
    be one of the account's ``phone_numbers`` or a caller id a test verified
    with ``verify_caller_id``, else 21210; ``To`` must not start with a
    prefix a test blocked with ``block_destinations`` (Twilio's geo
    permissions), else 21215.
    """

    kinds = frozenset(
        {"calls_create", "call_fetch", "recordings_list", "recording", "media", "recording_delete"}
    )

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        api_keys: dict[str, str] | None = None,
        phone_numbers: tuple[str, ...] = (DEFAULT_PHONE_NUMBER,),
    ) -> None:
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        # Numbers bought on the account, and other numbers verified as caller ids.
        self.phone_numbers = set(phone_numbers)
        self.verified_caller_ids: set[str] = set()
        self.blocked_destinations: set[str] = set()
        # API key SID -> secret; Twilio accepts these instead of the token.
        self.api_keys = dict(api_keys or {})
        self.calls_created: list[dict[str, list[str]]] = []
        self.calls: dict[str, dict[str, Any]] = {}
        self.recordings: dict[str, dict[str, Any]] = {}
        self._audio: dict[str, bytes] = {}
        self.deleted_recordings: list[str] = []  # each DELETE that removed one, in order
        # Like a CDN that does not do ranges: answer every Range with the whole file.
        self.ignore_ranges = False

    # test controls -------------------------------------------------------

    def add_recording(
        self,
        recording_sid: str,
        audio: bytes,
        call_sid: str | None = None,
        channels: int = 1,
        duration: int = 5,
        *,
        source: str = "OutboundAPI",
        status: str = "completed",
    ) -> dict[str, Any]:
        """Make a recording's media and metadata available; returns the metadata.

        ``audio`` that is a WAV file must have ``channels`` channels: a
        dual-channel recording is a two-channel WAV.
        """
        layout = _pcm_layout(audio)
        if layout is not None and layout[0] != channels:
            raise ValueError(f"a {layout[0]}-channel WAV added as a {channels}-channel recording")
        uri = f"{API}/Accounts/{self.account_sid}/Recordings/{recording_sid}"
        now = _now()
        resource = {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "call_sid": call_sid,
            "conference_sid": None,
            "date_created": now,
            "date_updated": now,
            "start_time": now,
            "duration": str(duration),
            "sid": recording_sid,
            "price": None,
            "price_unit": "USD",
            "status": status,
            "channels": channels,
            "source": source,
            "error_code": None,
            "uri": uri + ".json",
            "encryption_details": None,
            "subresource_uris": {
                "add_on_results": uri + "/AddOnResults.json",
                "transcriptions": uri + "/Transcriptions.json",
            },
        }
        with self.lock:
            self.recordings[recording_sid] = resource
            self._audio[recording_sid] = bytes(audio)
        return self._public(resource)

    def _public(self, resource: dict[str, Any]) -> dict[str, Any]:
        """The resource as served; media_url points at this fake once started."""
        uri = resource["uri"].removesuffix(".json")
        host = self.base_url or "https://api.twilio.com"
        return {**resource, "media_url": host + uri}

    def media_downloads(self, recording_sid: str) -> int:
        """How many authorized media requests arrived for this recording."""
        return self._count("media", recording_sid=recording_sid)

    def fail_next(self, kind: str, status: int = 500, times: int = 1, body: Any = None) -> None:
        """Answer the next `times` requests of `kind` with an error."""
        response = self._error(status) if body is None else self._custom_body(status, body)
        self._fail(kind, response, times)

    def fail_next_call_create(
        self,
        status: int = 400,
        code: int = 21211,
        message: str = "Invalid 'To' Phone Number",
    ) -> None:
        """Reject the next calls.create the way Twilio rejects a bad number."""
        self._fail("calls_create", twilio_error(status, code, message), 1)

    def verify_caller_id(self, number: str) -> None:
        """Let calls come from ``number`` without buying it, as a verified caller id."""
        with self.lock:
            self.verified_caller_ids.add(number)

    def block_destinations(self, *prefixes: str) -> None:
        """Refuse calls to numbers starting with any of ``prefixes`` (a whole number
        blocks itself): what Twilio's geo permissions do to a country or range."""
        with self.lock:
            self.blocked_destinations.update(prefixes)

    def truncate_next_media(self, times: int = 1) -> None:
        """Announce the full Content-Length, send half the audio, hang up."""
        self._queue("media", Fault("truncate", times))

    # protocol ------------------------------------------------------------

    def _error(self, status: int, message: str | None = None) -> Response:
        return twilio_error(status, 20000 + status, message or _REASONS.get(status, "Error"))

    def _authenticate(self, request: RecordedRequest) -> Response | None:
        header = request.headers.get("Authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user = password = ""
            if (user, password) == (self.account_sid, self.auth_token) or (
                user in self.api_keys and self.api_keys[user] == password
            ):
                return None
        response = twilio_error(401, 20003, "Authenticate")
        response.headers.append(("WWW-Authenticate", 'Basic realm="Twilio API"'))
        return response

    def _route(self, request: RecordedRequest) -> Route | Response:
        path_matched = False
        for method, pattern, kind in _ROUTES:
            match = pattern.fullmatch(request.path)
            if match is None:
                continue
            path_matched = True
            if method == request.method:
                params = {k: v for k, v in match.groupdict().items() if v is not None}
                if params["account_sid"] != self.account_sid:
                    return self._not_found(request)
                return Route(kind, getattr(self, f"_on_{kind}"), params)
        if path_matched:
            return twilio_error(405, 20004, "Method not allowed")
        return self._not_found(request)

    def _not_found(self, request: RecordedRequest) -> Response:
        return twilio_error(404, 20404, f"The requested resource {request.path} was not found")

    def _on_calls_create(self, request: RecordedRequest) -> Response:
        form = request.form()
        with self.lock:
            self.calls_created.append(form)

        def first(name: str) -> str | None:
            values = form.get(name)
            return values[0] if values else None

        if not first("To"):
            return twilio_error(400, 21201, "No 'To' number is specified")
        if not first("From"):
            return twilio_error(400, 21213, "No 'From' number is specified")
        if not (first("Url") or first("Twiml") or first("ApplicationSid")):
            return twilio_error(
                400,
                21205,
                "Either a 'Url', 'Twiml' or 'ApplicationSid' parameter is required",
            )
        refused = self._refuse_numbers(first("To") or "", first("From") or "")
        if refused is not None:
            return refused
        sid = make_sid("CA")
        now = _now()
        uri = f"{API}/Accounts/{self.account_sid}/Calls/{sid}"
        call = {
            "sid": sid,
            "date_created": now,
            "date_updated": now,
            "parent_call_sid": None,
            "account_sid": self.account_sid,
            "to": first("To"),
            "to_formatted": first("To"),
            "from": first("From"),
            "from_formatted": first("From"),
            "phone_number_sid": None,
            "status": "queued",
            "start_time": None,
            "end_time": None,
            "duration": None,
            "price": None,
            "price_unit": "USD",
            "direction": "outbound-api",
            "answered_by": None,
            "api_version": "2010-04-01",
            "forwarded_from": None,
            "group_sid": None,
            "caller_name": None,
            "queue_time": "0",
            "trunk_sid": None,
            "uri": uri + ".json",
            "subresource_uris": {
                "notifications": uri + "/Notifications.json",
                "recordings": uri + "/Recordings.json",
                "payments": uri + "/Payments.json",
                "events": uri + "/Events.json",
                "siprec": uri + "/Siprec.json",
                "streams": uri + "/Streams.json",
                "transcriptions": uri + "/Transcriptions.json",
                "user_defined_message_subscriptions": uri + "/UserDefinedMessageSubscriptions.json",
                "user_defined_messages": uri + "/UserDefinedMessages.json",
            },
        }
        with self.lock:
            self.calls[sid] = call
        return Response.json(201, call)

    def _refuse_numbers(self, to: str, from_: str) -> Response | None:
        """Twilio's answer to numbers it will not call, or None when it will."""
        if not (_E164.fullmatch(to) or to.startswith(_OTHER_DESTINATIONS)):
            return twilio_error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if not _E164.fullmatch(from_):
            return twilio_error(400, 21212, f"Invalid 'From' Phone Number: {from_}")
        with self.lock:
            owned = from_ in self.phone_numbers or from_ in self.verified_caller_ids
            blocked = any(to.startswith(prefix) for prefix in self.blocked_destinations)
        if not owned:
            return twilio_error(
                400,
                21210,
                f"The source phone number provided, {from_}, is not yet verified for your account. "
                "You may only make calls from phone numbers that you've verified or purchased from Twilio.",
            )
        if blocked:
            return twilio_error(
                400,
                21215,
                f"Account not authorized to call {to}. "
                "Perhaps you need to enable some international permissions.",
            )
        return None

    def _on_call_fetch(self, request: RecordedRequest) -> Response:
        with self.lock:
            call = self.calls.get(request.params["call_sid"])
        return Response.json(200, call) if call else self._not_found(request)

    def _on_recording(self, request: RecordedRequest) -> Response:
        with self.lock:
            resource = self.recordings.get(request.params["recording_sid"])
        return Response.json(200, self._public(resource)) if resource else self._not_found(request)

    def _on_recording_delete(self, request: RecordedRequest) -> Response:
        """Twilio deletes the recording and its media: 204, then 404 for the same SID."""
        sid = request.params["recording_sid"]
        with self.lock:
            resource = self.recordings.pop(sid, None)
            self._audio.pop(sid, None)
            if resource is not None:
                self.deleted_recordings.append(sid)
        return Response(204) if resource else self._not_found(request)

    def _on_media(self, request: RecordedRequest) -> Response:
        sid = request.params["recording_sid"]
        with self.lock:
            audio = self._audio.get(sid)
        if audio is None:
            return self._not_found(request)
        query = {k: v[-1] for k, v in parse_qs(request.query).items()}
        if query.get("RequestedChannels") != "2":
            audio = _mono_mix_down(audio)
        mp3 = request.params.get("ext") == ".mp3"
        headers = [("Content-Type", "audio/mpeg" if mp3 else "audio/x-wav"), ("Accept-Ranges", "bytes")]
        wanted = request.headers.get("Range")
        if wanted and not self.ignore_ranges:
            span = _byte_span(wanted, len(audio))
            if span is None:
                return Response(416, b"", [("Content-Range", f"bytes */{len(audio)}")])
            start, stop = span
            headers.append(("Content-Range", f"bytes {start}-{stop - 1}/{len(audio)}"))
            return Response(206, audio[start:stop], headers)
        return Response(200, audio, headers)

    def _on_recordings_list(self, request: RecordedRequest) -> Response:
        call_sid = request.params["call_sid"]
        query = {k: v[-1] for k, v in parse_qs(request.query).items()}
        try:
            page = max(int(query.get("Page", 0)), 0)
            page_size = min(max(int(query.get("PageSize", 50)), 1), 1000)
        except ValueError:
            return twilio_error(400, 20001, "Invalid paging parameter")
        with self.lock:
            items = [self._public(r) for r in self.recordings.values() if r["call_sid"] == call_sid]
        items.reverse()  # Twilio lists newest first
        chunk = items[page * page_size : (page + 1) * page_size]
        base = f"{API}/Accounts/{self.account_sid}/Calls/{call_sid}/Recordings.json"

        def page_uri(n: int) -> str:
            return f"{base}?PageSize={page_size}&Page={n}"

        has_next = (page + 1) * page_size < len(items)
        return Response.json(
            200,
            {
                "recordings": chunk,
                "end": page * page_size + max(len(chunk) - 1, 0),
                "first_page_uri": page_uri(0),
                "next_page_uri": page_uri(page + 1) if has_next else None,
                "previous_page_uri": page_uri(page - 1) if page > 0 else None,
                "page": page,
                "page_size": page_size,
                "start": page * page_size,
                "uri": page_uri(page),
            },
        )


def _pcm_layout(audio: bytes) -> tuple[int, int] | None:
    """(channels, sample width) of a WAV file; None for bytes that are no WAV."""
    try:
        with wave.open(io.BytesIO(audio), "rb") as wav:
            return wav.getnchannels(), wav.getsampwidth()
    except (wave.Error, EOFError):
        return None


def _mono_mix_down(audio: bytes) -> bytes:
    """A two-channel 16-bit WAV as one channel, each frame the mean of its two
    samples; anything else unchanged."""
    if _pcm_layout(audio) != (2, 2):
        return audio
    with wave.open(io.BytesIO(audio), "rb") as stereo:
        rate = stereo.getframerate()
        samples = array("h", stereo.readframes(stereo.getnframes()))
    if sys.byteorder == "big":
        samples.byteswap()  # WAV is little-endian
    mono = array("h", ((left + right) // 2 for left, right in zip(samples[::2], samples[1::2], strict=True)))
    if sys.byteorder == "big":
        mono.byteswap()
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(mono.tobytes())
    return out.getvalue()


def _byte_span(header: str, length: int) -> tuple[int, int] | None:
    """One ``bytes=`` range as (start, stop), as a web server reads it; None when it cannot be served."""
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    first, _, last = spec.strip().partition("-")
    try:
        if not first:  # the last N bytes
            start, stop = max(0, length - int(last)), length
        else:
            start, stop = int(first), min(length, int(last) + 1) if last else length
    except ValueError:
        return None
    return (start, stop) if 0 <= start < stop else None


_REASONS = {
    400: "Bad Request",
    404: "The requested resource was not found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
