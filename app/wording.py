"""People's words for Twilio's values: what the pages show, with the raw value kept for a tooltip.

Twilio says ``outbound-api``, ``DialVerb`` and ``RecordVerb``; the people
reading the dashboard say "dialled from here", "forwarded call" and
"voicemail". The JSON API keeps the raw values and adds these labels.
"""

from __future__ import annotations

from collections.abc import Iterable

DIRECTIONS = {
    "inbound": "Inbound",
    "outbound-api": "Outbound (dialled from here)",
    "outbound-dial": "Outbound (forwarded leg)",
    "upload": "Uploaded file",
}
SOURCES = {
    "DialVerb": "Forwarded call",
    "RecordVerb": "Voicemail",
    "OutboundAPI": "Outbound (dialled from here)",
    "StartCallRecordingAPI": "Recording started by the API",
    "Conference": "Conference",
    "Trunking": "SIP trunk",
}


def direction(raw: str | None) -> str:
    """A call's direction in words; an unknown value reads as itself."""
    if not raw:
        return "—"
    return DIRECTIONS.get(raw, raw)


def source(raw: str | None) -> str:
    """How a recording was made, in words."""
    if not raw:
        return "—"
    return SOURCES.get(raw, raw)


def call_kind(raw_direction: str | None, sources: Iterable[str | None]) -> str:
    """What a call was, for the list: a forwarded call or a voicemail says so; otherwise its direction."""
    for raw in sources:
        if raw in ("DialVerb", "RecordVerb"):
            return SOURCES[raw]
    return direction(raw_direction)
