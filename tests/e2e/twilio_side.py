"""Twilio's side of a call: the signed webhooks it sends, in the order it sends them.

Twilio signs each request over the public URL it called (``BASE_URL`` plus
the path); the request reaches the service on a local port, as it would
through a tunnel or a PaaS router.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from email.utils import format_datetime

import requests
from twilio.request_validator import RequestValidator

from tests.helpers import ACCOUNT_SID, AUTH_TOKEN, BASE_URL, TWILIO_NUMBER


def twilio_time(when: datetime | None = None) -> str:
    """Twilio's timestamps: RFC 2822, UTC."""
    return format_datetime(when or datetime.now(UTC))


class TwilioSide:
    def __init__(self, session: requests.Session, local_url: str) -> None:
        self.session = session
        self.local_url = local_url
        self.validator = RequestValidator(AUTH_TOKEN)

    def post(self, url: str, params: dict[str, str]) -> requests.Response:
        """POST a form to a public URL, signed as Twilio signs it, delivered locally."""
        if not url.startswith(BASE_URL + "/"):
            raise ValueError(f"{url} is not on the service's public origin {BASE_URL}")
        return self.session.post(
            self.local_url + url[len(BASE_URL) :],
            data=params,
            headers={
                "X-Twilio-Signature": self.validator.compute_signature(url, params),
                "User-Agent": "TwilioProxy/1.1",
            },
            timeout=10,
        )

    def incoming_call(self, call_sid: str, caller: str) -> ET.Element:
        """The voice webhook of the phone number; returns the TwiML's root."""
        response = self.post(
            f"{BASE_URL}/twilio/voice",
            {
                "AccountSid": ACCOUNT_SID,
                "ApiVersion": "2010-04-01",
                "CallSid": call_sid,
                "CallStatus": "ringing",
                "Direction": "inbound",
                "From": caller,
                "To": TWILIO_NUMBER,
            },
        )
        assert response.status_code == 200, f"/twilio/voice answered {response.status_code}: {response.text}"
        assert response.headers["Content-Type"].startswith("text/xml"), response.headers["Content-Type"]
        root = ET.fromstring(response.text)
        assert root.tag == "Response", response.text
        return root

    def call_status(self, call_sid: str, caller: str, status: str, **extra: str) -> None:
        params = {
            "AccountSid": ACCOUNT_SID,
            "ApiVersion": "2010-04-01",
            "CallSid": call_sid,
            "CallStatus": status,
            "Direction": "inbound",
            "From": caller,
            "To": TWILIO_NUMBER,
            "Timestamp": twilio_time(),
            **extra,
        }
        response = self.post(f"{BASE_URL}/twilio/call-status", params)
        assert response.status_code in (200, 204), (
            f"call-status {status} answered {response.status_code}: {response.text}"
        )

    def recording_completed(
        self,
        call_sid: str,
        recording_sid: str,
        *,
        channels: int,
        source: str,
        duration: int,
        callback_url: str = f"{BASE_URL}/twilio/recording-status",
    ) -> None:
        params = {
            "AccountSid": ACCOUNT_SID,
            "CallSid": call_sid,
            "RecordingSid": recording_sid,
            "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{recording_sid}",
            "RecordingStatus": "completed",
            "RecordingDuration": str(duration),
            "RecordingChannels": str(channels),
            "RecordingSource": source,
            "RecordingStartTime": twilio_time(),
            "ErrorCode": "0",
        }
        response = self.post(callback_url, params)
        assert response.status_code in (200, 204), (
            f"recording-status answered {response.status_code}: {response.text}"
        )
