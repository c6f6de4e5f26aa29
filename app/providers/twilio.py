"""Twilio's REST API: place calls, read recordings.

Calls go through twilio's own REST client. Recording media is fetched with
``requests`` as a stream, from a URL we build ourselves from the account SID
and a validated RecordingSid on Twilio's API host: the account's credentials
are sent nowhere else, whatever a callback's ``RecordingUrl`` says.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from . import ProviderError, error_from_exception, error_from_response

NAME = "Twilio"
RECORDING_SID = re.compile(r"^RE[0-9a-f]{32}$")
CALL_SID = re.compile(r"^CA[0-9a-f]{32}$")
ACCOUNT_SID = re.compile(r"^AC[0-9a-f]{32}$")
CHUNK_SIZE = 64 * 1024


@dataclass(frozen=True)
class PlacedCall:
    sid: str
    status: str
    direction: str | None
    from_number: str | None
    to_number: str | None


@dataclass(frozen=True)
class RecordingInfo:
    sid: str
    call_sid: str
    status: str
    channels: int
    duration: int | None
    source: str | None


class RangeNotSatisfiable(ProviderError):
    """Twilio cannot serve the byte range asked for; ``content_range`` is its ``bytes */LENGTH``."""

    def __init__(self, content_range: str | None) -> None:
        super().__init__(f"{NAME} cannot serve that byte range", retryable=False, status=416)
        self.content_range = content_range


class RecordingMedia:
    """An open media download: iterate ``chunks()`` exactly once.

    The byte count is checked against Content-Length at the end, so a
    truncated download fails loudly instead of being transcribed in part.
    """

    def __init__(self, response: requests.Response) -> None:
        self._response = response
        length = response.headers.get("Content-Length")
        self.expected_length = int(length) if length and length.isdigit() else None
        self.received = 0
        # Twilio served only the byte range asked for (206), with its Content-Range.
        self.partial = response.status_code == 206
        self.content_range = response.headers.get("Content-Range")

    def chunks(self) -> Iterator[bytes]:
        try:
            for chunk in self._response.iter_content(CHUNK_SIZE):
                self.received += len(chunk)
                yield chunk
        except requests.RequestException:
            self._cut_short()
        if self.expected_length is not None and self.received != self.expected_length:
            self._cut_short()
        if self.received == 0:
            raise ProviderError(f"{NAME} sent an empty recording", retryable=True)

    def _cut_short(self) -> None:
        expected = f" of {self.expected_length}" if self.expected_length is not None else ""
        raise ProviderError(
            f"{NAME} recording download was cut short ({self.received}{expected} bytes)",
            retryable=True,
        )


class Twilio:
    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        api_base_url: str,
        *,
        session: requests.Session | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.account_sid = account_sid
        self._auth = (account_sid, auth_token)
        self._api_base_url = api_base_url.rstrip("/")
        self._session = session or requests.Session()
        self._timeout = (min(10.0, timeout), timeout)
        self._client = Client(account_sid, auth_token, http_client=TwilioHttpClient(timeout=timeout))
        # The REST client's host is fixed to api.twilio.com; pointing it
        # elsewhere is only for tests against a fake server on loopback.
        self._client.api.base_url = self._api_base_url

    def place_call(
        self,
        *,
        to: str,
        from_: str,
        twiml_url: str,
        status_url: str,
    ) -> PlacedCall:
        try:
            call = self._client.calls.create(
                to=to,
                from_=from_,
                url=twiml_url,
                method="POST",
                status_callback=status_url,
                status_callback_method="POST",
                status_callback_event=["initiated", "ringing", "answered", "completed"],
            )
        except TwilioRestException as exc:
            # Twilio's message is meant for people ("Invalid 'To' Phone
            # Number"); the exception's str() carries the request URL.
            retryable = exc.status == 429 or exc.status >= 500
            raise ProviderError(
                f"Twilio refused the call: {exc.msg}" + (f" (error {exc.code})" if exc.code else ""),
                retryable=retryable,
                status=exc.status,
            ) from None
        except (TwilioException, requests.RequestException) as exc:
            raise ProviderError(
                f"Twilio could not be reached ({type(exc).__name__})", retryable=True
            ) from None
        return PlacedCall(
            sid=call.sid,
            status=call.status,
            direction=call.direction,
            from_number=call._from,
            to_number=call.to,
        )

    def _recording_path(self, recording_sid: str) -> str:
        if not RECORDING_SID.match(recording_sid):
            raise ProviderError(f"not a RecordingSid: {recording_sid[:40]!r}", retryable=False)
        return f"/2010-04-01/Accounts/{self.account_sid}/Recordings/{recording_sid}"

    def media_url(self, recording_sid: str) -> str:
        """The public media URL (no credentials), for accounts whose media is public."""
        return f"{self._api_base_url}{self._recording_path(recording_sid)}.wav"

    @contextmanager
    def open_media(
        self, recording_sid: str, *, channels: int = 1, byte_range: str | None = None
    ) -> Iterator[RecordingMedia]:
        """Stream a recording's WAV file with the account's credentials.

        ``byte_range`` is passed on as the ``Range`` header. Twilio may answer
        with that range (206) or with the whole file (200): ``partial`` says
        which. A range Twilio cannot serve raises :class:`RangeNotSatisfiable`.
        """
        params = {"RequestedChannels": "2"} if channels == 2 else None
        try:
            response = self._session.get(
                self.media_url(recording_sid),
                params=params,
                headers={"Range": byte_range} if byte_range else None,
                auth=self._auth,
                stream=True,
                timeout=self._timeout,
            )
        except requests.RequestException as exc:
            raise error_from_exception(f"{NAME} media", exc) from None
        try:
            if response.status_code == 416:
                raise RangeNotSatisfiable(response.headers.get("Content-Range"))
            if not response.ok:
                error = error_from_response(f"{NAME} media", response)
                # A recording that is not there yet (404 just after the
                # callback) may well be there in a minute.
                error.retryable = error.retryable or response.status_code == 404
                raise error
            yield RecordingMedia(response)
        finally:
            response.close()

    def delete_recording(self, recording_sid: str) -> bool:
        """Delete the recording and its media at Twilio; False when Twilio had no such recording."""
        url = f"{self._api_base_url}{self._recording_path(recording_sid)}.json"
        try:
            response = self._session.delete(url, auth=self._auth, timeout=self._timeout)
        except requests.RequestException as exc:
            raise error_from_exception(NAME, exc) from None
        if response.status_code == 404:
            return False
        if not response.ok:
            raise error_from_response(NAME, response)
        return True

    def call_recordings(self, call_sid: str) -> list[RecordingInfo]:
        """A call's recordings, for picking up a recording whose callback was lost."""
        if not CALL_SID.match(call_sid):
            raise ProviderError(f"not a CallSid: {call_sid[:40]!r}", retryable=False)
        url = f"{self._api_base_url}/2010-04-01/Accounts/{self.account_sid}/Calls/{call_sid}/Recordings.json"
        try:
            response = self._session.get(url, auth=self._auth, timeout=self._timeout)
        except requests.RequestException as exc:
            raise error_from_exception(NAME, exc) from None
        if not response.ok:
            raise error_from_response(NAME, response)
        items: list[dict[str, Any]] = response.json().get("recordings", [])
        return [
            RecordingInfo(
                sid=item["sid"],
                call_sid=item.get("call_sid") or call_sid,
                status=item.get("status") or "completed",
                channels=int(item.get("channels") or 1),
                duration=int(item["duration"]) if str(item.get("duration", "")).isdigit() else None,
                source=item.get("source"),
            )
            for item in items
            if RECORDING_SID.match(str(item.get("sid", "")))
        ]
