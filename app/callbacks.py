"""The public paths that Twilio and AssemblyAI call, named once.

The routes in :mod:`app.webhooks` are declared with these names, and every
absolute URL handed to a provider is built here, so renaming a route cannot
silently break a provider's callbacks.
"""

from __future__ import annotations

from urllib.parse import urlencode

TWILIO_VOICE = "/twilio/voice"
TWILIO_OUTBOUND = "/twilio/outbound"
TWILIO_RECORDED = "/twilio/recorded"
TWILIO_CALL_STATUS = "/twilio/call-status"
TWILIO_RECORDING_STATUS = "/twilio/recording-status"
ASSEMBLYAI_WEBHOOK = "/assemblyai/webhook"

# Every path a provider calls starts with one of these: such callers are
# servers, and get JSON errors.
PROVIDER_PREFIXES = ("/twilio/", "/assemblyai/")


def public_url(base_url: str, path: str, **query: str | int) -> str:
    """The absolute URL of ``path`` on BASE_URL, with its query string."""
    url = f"{base_url}{path}"
    return f"{url}?{urlencode(query)}" if query else url
