"""The OpenAPI 3.1 description of what a script may call, served at ``/api/openapi.json``.

Written by hand next to the routes it describes (app.api, app.pages'
``/dial`` and audio, app.exports), and held to them by
``tests/test_openapi.py``: schemathesis sends generated requests to every
operation here and checks each answer's status, headers and body against
this document.

Every error a route can give is listed with the one shape all errors have,
``{"error": "..."}``.
"""

from __future__ import annotations

from typing import Any

from .access import Permission
from .idempotency import MAX_KEY_LENGTH
from .listing import DIRECTIONS, MAX_LIMIT, MAX_QUERY, TRANSCRIPT_FILTERS
from .states import CallStatus, RecordingStatus, Stage, TranscriptStatus

VERSION = "1.0.0"

ERRORS = {
    400: "The request is malformed: a filter, cursor, body or header that means nothing here.",
    401: "No credentials, or an API token that is wrong, expired or revoked.",
    403: "The user's role or the token's scopes do not allow this.",
    404: "No such call or recording.",
    409: "A request with this Idempotency-Key is still being handled; send it again shortly.",
    413: "The body is over 1 MB.",
    416: "The byte range is not in the recording; `Content-Range` gives its length when known.",
    422: "Well-formed but refused: a speaker the call does not have, or a reused Idempotency-Key.",
    429: "A /dial limit is reached (per user, per hour or per day); wait a while.",
    502: "Twilio refused or failed; nothing was placed or handed over. Try again later.",
    503: "The service is not set up for this yet (a setting is missing), or the database is down.",
}


def _error(status: int) -> dict[str, Any]:
    return {
        "description": ERRORS[status],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _answers(ok: dict[str, dict[str, Any]], *errors: int) -> dict[str, Any]:
    # Every route may meet a database that is down, and every private one needs credentials.
    statuses = sorted({*errors, 401, 403, 503})
    return {**ok, **{str(status): _error(status) for status in statuses}}


def _json(schema: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _nullable(kind: str, **more: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **more}


EXAMPLE_CALL_SID = "CA0123456789abcdef0123456789abcdef"

CALL_SID = {
    "name": "call_sid",
    "in": "path",
    "required": True,
    "description": "The call's Twilio CallSid (CA + 32 hex characters).",
    "schema": {"type": "string", "minLength": 1, "maxLength": 64},
    "example": EXAMPLE_CALL_SID,
}

# A filter left blank, as a form sends its empty fields, is no filter.
EMPTY = {"type": "string", "pattern": r"^\s*$"}


def _or_empty(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [*schema.get("anyOf", [schema]), EMPTY]}


DATE_OR_TIME = _or_empty(
    {"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]}
)

# The list's filters: the dashboard's query string, the API's and the CSV's.
FILTERS: list[dict[str, Any]] = [
    {
        "name": "q",
        "in": "query",
        "description": (
            "Full-text search over transcripts, phone numbers and speaker names. Every word must "
            'match; `"a phrase"` in double quotes, `refun*` for a prefix; a number matches whole or '
            "by its last 7 or 4 digits."
        ),
        "schema": {"type": "string", "maxLength": MAX_QUERY},
    },
    {
        "name": "direction",
        "in": "query",
        "schema": _or_empty({"type": "string", "enum": list(DIRECTIONS)}),
    },
    {
        "name": "status",
        "in": "query",
        "description": "Twilio's call status; repeat it for any of several.",
        "style": "form",
        "explode": True,
        "schema": {
            "type": "array",
            "items": _or_empty({"type": "string", "enum": [str(s) for s in CallStatus]}),
        },
    },
    {
        "name": "transcript",
        "in": "query",
        "description": "How far the call's transcript got.",
        "schema": _or_empty({"type": "string", "enum": list(TRANSCRIPT_FILTERS)}),
    },
    {
        "name": "since",
        "in": "query",
        "description": "Calls from this date (the whole day, UTC) or time on.",
        "schema": DATE_OR_TIME,
    },
    {
        "name": "until",
        "in": "query",
        "description": "Calls up to this date (inclusive: the whole day, UTC) or time.",
        "schema": DATE_OR_TIME,
    },
    {
        "name": "number",
        "in": "query",
        "description": "Either party's number: E.164 (+14155550100) or its digits, spaces and ().- allowed.",
        "schema": _or_empty({"type": "string", "pattern": r"^[\s().-]*\+?[\s().-]*([0-9][\s().-]*){3,15}$"}),
    },
]

CALL_SUMMARY = {
    "type": "object",
    "required": [
        "call_sid",
        "direction",
        "direction_label",
        "from",
        "to",
        "title",
        "status",
        "started_at",
        "created_at",
        "updated_at",
        "duration_s",
        "transcript_status",
        "transcript_label",
        "in_progress",
        "preview",
        "snippet_html",
    ],
    "properties": {
        "call_sid": {"type": "string"},
        "direction": _nullable("string", description="Twilio's direction, e.g. inbound or outbound-api."),
        "direction_label": {"type": "string", "description": "The same in words: Voicemail, Forwarded call…"},
        "from": _nullable("string"),
        "to": _nullable("string"),
        "title": _nullable("string", description="An uploaded file's name; null for a call."),
        "status": _nullable("string", description="Twilio's call status."),
        "started_at": {"type": "string", "format": "date-time"},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "duration_s": _nullable("integer"),
        "transcript_status": {"type": "string", "enum": list(TRANSCRIPT_FILTERS)},
        "transcript_label": {"type": "string", "description": "done, queued, transcribing, failed…"},
        "in_progress": {"type": "boolean", "description": "The call or its transcript is still moving."},
        "preview": {"type": "string", "description": "The start of the transcript."},
        "snippet_html": _nullable(
            "string", description="With `q`: the words around the first hit, HTML-escaped, hits in <mark>."
        ),
    },
}

WORD = {
    "type": "object",
    "required": ["text", "start", "end", "confidence"],
    "properties": {
        "text": {"type": "string"},
        "start": {"type": "integer", "description": "ms from the start of the recording"},
        "end": {"type": "integer"},
        "confidence": _nullable("number"),
    },
}

TURN = {
    "type": "object",
    "required": ["speaker", "start", "end", "text", "words"],
    "properties": {
        "speaker": {"type": "string", "description": "The speaker's name (named, or the default)."},
        "start": {"type": "integer", "description": "ms from the start of the recording"},
        "end": {"type": "integer"},
        "text": {"type": "string"},
        "words": {"type": "array", "items": {"$ref": "#/components/schemas/Word"}},
    },
}

TRANSCRIPT = {
    "type": "object",
    "required": ["status", "text", "language", "model", "confidence", "words", "utterances"],
    "properties": {
        "status": {"type": "string", "enum": [str(s) for s in TranscriptStatus]},
        "text": _nullable("string"),
        "language": _nullable("string"),
        "model": _nullable("string"),
        "confidence": _nullable("number"),
        "words": {"type": "array", "description": "The engine's words, as it gave them."},
        "utterances": {"type": "array", "description": "The engine's turns, as it gave them."},
    },
}

RECORDING = {
    "type": "object",
    "required": [
        "recording_sid",
        "status",
        "stage",
        "channels",
        "duration_s",
        "engine",
        "source",
        "source_label",
        "error",
        "audio",
        "transcript",
        "dialogue",
    ],
    "properties": {
        "recording_sid": {"type": "string"},
        "status": {"type": "string", "enum": [str(s) for s in RecordingStatus]},
        "stage": _nullable("string", enum=[*(str(s) for s in Stage), None]),
        "channels": _nullable("integer"),
        "duration_s": _nullable("integer"),
        "engine": _nullable("string"),
        "source": _nullable("string", description="What recorded it: RecordVerb, DialVerb…"),
        "source_label": {"type": "string"},
        "error": _nullable("string", description="Why its transcript failed, when it did."),
        "audio": _nullable("string", description="The path of its audio, once Twilio has it."),
        "transcript": {"anyOf": [{"$ref": "#/components/schemas/Transcript"}, {"type": "null"}]},
        "dialogue": {"type": "array", "items": {"$ref": "#/components/schemas/Turn"}},
    },
}

CALL = {
    "type": "object",
    "required": [
        "call_sid",
        "direction",
        "direction_label",
        "from",
        "to",
        "title",
        "uploaded_by",
        "status",
        "started_at",
        "duration_s",
        "speakers",
        "recordings",
        "deletion",
    ],
    "properties": {
        "call_sid": {"type": "string"},
        "direction": _nullable("string"),
        "direction_label": {"type": "string"},
        "from": _nullable("string"),
        "to": _nullable("string"),
        "title": _nullable("string", description="An uploaded file's name; null for a call."),
        "uploaded_by": _nullable("string", description="Who uploaded the file; null for a call."),
        "status": _nullable("string"),
        "started_at": {"type": "string", "format": "date-time"},
        "duration_s": _nullable("integer"),
        "speakers": {"$ref": "#/components/schemas/Speakers"},
        "recordings": {"type": "array", "items": {"$ref": "#/components/schemas/Recording"}},
        "deletion": {
            "oneOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "required": ["requested_at", "requested_by", "error"],
                    "properties": {
                        "requested_at": {"type": "string", "format": "date-time"},
                        "requested_by": _nullable("string"),
                        "error": _nullable("string", description="Why the last step failed; it is retried."),
                    },
                },
            ],
            "description": "Set while the call is being deleted (DELETE /api/calls/{call_sid}).",
        },
    },
}

SPEAKERS = {
    "type": "object",
    "description": 'Each speaker label the transcripts use, with its name: {"A": "Dana", "1": "Caller"}.',
    "additionalProperties": {"type": "string"},
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string", "description": "What is wrong, in a sentence."}},
    },
    "CallSummary": CALL_SUMMARY,
    "CallList": {
        "type": "object",
        "required": ["calls", "next", "as_of"],
        "properties": {
            "calls": {"type": "array", "items": {"$ref": "#/components/schemas/CallSummary"}},
            "next": _nullable("string", description="The `before` of the next (older) page, or null."),
            "as_of": {
                "type": "string",
                "format": "date-time",
                "description": "The server's time of this answer: the next `updated_since`.",
            },
        },
    },
    "Call": CALL,
    "Recording": RECORDING,
    "Transcript": TRANSCRIPT,
    "Turn": TURN,
    "Word": WORD,
    "Speakers": SPEAKERS,
    "Dial": {
        "type": "object",
        "required": ["to"],
        "properties": {
            "to": {
                "type": "string",
                "minLength": 1,
                "maxLength": 32,
                "description": "In E.164: +14155550100.",
            }
        },
    },
    "Placed": {
        "type": "object",
        "required": ["call_sid", "status", "to"],
        "properties": {
            "call_sid": {"type": "string"},
            "status": {"type": "string", "description": "Twilio's call status, queued at first."},
            "to": {"type": "string"},
        },
    },
}


def _download(media_type: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {
            "Content-Disposition": {
                "description": "attachment, with a filename of the CallSid (or calls) and the date",
                "schema": {"type": "string"},
            }
        },
        "content": {media_type: {"schema": {"type": "string"}}},
    }


def _scopes(permission: Permission) -> list[dict[str, list[str]]]:
    return [{"token": [str(permission)]}, {"session": []}]


PATHS: dict[str, Any] = {
    "/api/calls": {
        "get": {
            "operationId": "listCalls",
            "summary": "The calls list, newest first",
            "description": "The dashboard's filters, search and keyset pages. Follow `next` as `before`.",
            "security": _scopes(Permission.READ),
            "parameters": [
                *FILTERS,
                {
                    "name": "updated_since",
                    "in": "query",
                    "description": "Only calls changed after this time: the last answer's `as_of`.",
                    "schema": _or_empty({"type": "string", "format": "date-time"}),
                },
                {
                    "name": "before",
                    "in": "query",
                    "description": "The `next` of the page before; any other value gets 400.",
                    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]*$", "maxLength": 64},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "schema": _or_empty(
                        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 50}
                    ),
                },
            ],
            "responses": _answers({"200": _json("CallList", "A page of calls.")}, 400),
        }
    },
    "/api/calls/{call_sid}": {
        "get": {
            "operationId": "getCall",
            "summary": "A call with its recordings, transcripts, dialogue and speaker names",
            "security": _scopes(Permission.READ),
            "parameters": [CALL_SID],
            "responses": _answers({"200": _json("Call", "The call.")}, 404),
        },
        "delete": {
            "operationId": "deleteCall",
            "summary": "Delete a call everywhere",
            "description": (
                "Marks the call for deletion and answers at once; the worker then deletes its recordings "
                "at Twilio, its transcripts at the engine, its audio files and its rows, and keeps a "
                "tombstone so that late callbacks cannot bring it back. Until then the call shows "
                "`deletion`. Asking again is harmless; a deleted call is a 404 that says when."
            ),
            "security": _scopes(Permission.DELETE),
            "parameters": [CALL_SID],
            "responses": _answers(
                {
                    "202": {
                        "description": "Being deleted.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["call_sid", "deleting"],
                                    "properties": {
                                        "call_sid": {"type": "string"},
                                        "deleting": {"const": True},
                                    },
                                }
                            }
                        },
                    }
                },
                404,
            ),
        },
    },
    "/api/calls/{call_sid}/speakers": {
        "put": {
            "operationId": "nameSpeakers",
            "summary": "Name a call's speakers",
            "description": (
                "Labels the call's transcripts use, with a name each (at most 80 printable characters); "
                "an empty name goes back to the default. Needs calls:edit, which only a person's session "
                "has: send the page's CSRF token in `X-CSRFToken`."
            ),
            "security": _scopes(Permission.EDIT),
            "parameters": [CALL_SID],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Speakers"}}},
            },
            "responses": _answers(
                {
                    "200": {
                        "description": "Every speaker of the call, with the name now shown.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["call_sid", "speakers"],
                                    "properties": {
                                        "call_sid": {"type": "string"},
                                        "speakers": {"$ref": "#/components/schemas/Speakers"},
                                    },
                                }
                            }
                        },
                    }
                },
                400,
                404,
                413,
                422,
            ),
        }
    },
    "/dial": {
        "post": {
            "operationId": "dial",
            "summary": "Place an outbound recorded call",
            "description": (
                "The number must be valid, in an allowed country (DIAL_ALLOWED_COUNTRIES) and no "
                "premium-rate or other special service, within the per-user, hourly and daily limits. "
                "Every attempt is on the audit trail. With the same `Idempotency-Key` a repeated request "
                "gets the first answer again instead of a second call."
            ),
            "security": _scopes(Permission.DIAL),
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "description": "Any string of yours, unique per call you mean to place; kept 24 hours.",
                    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
                }
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Dial"}}},
            },
            "responses": _answers(
                {"201": _json("Placed", "Twilio took the call; its status follows on the call.")},
                400,
                409,
                413,
                422,
                429,
                502,
            ),
        }
    },
    "/calls/{call_sid}/transcript.{format}": {
        "get": {
            "operationId": "exportTranscript",
            "summary": "A call's transcript as text, subtitles or JSON",
            "security": _scopes(Permission.READ),
            "parameters": [
                CALL_SID,
                {
                    "name": "format",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "enum": ["txt", "srt", "vtt", "json"]},
                },
            ],
            "responses": _answers(
                {
                    "200": {
                        **_download(
                            "text/plain", "The dialogue (txt), subtitles (srt, vtt) or the call (json)."
                        ),
                        "content": {
                            "text/plain": {"schema": {"type": "string"}},
                            "application/x-subrip": {"schema": {"type": "string"}},
                            "text/vtt": {"schema": {"type": "string"}},
                            "application/json": {"schema": {"$ref": "#/components/schemas/Call"}},
                        },
                    }
                },
                404,
            ),
        }
    },
    "/calls.csv": {
        "get": {
            "operationId": "exportCalls",
            "summary": "The calls list as CSV, streamed",
            "description": (
                "One row per call: call_sid, started_at, direction, from, to, status, duration_s, "
                "transcript_status, speakers, text. A cell a spreadsheet would run as a formula starts "
                "with ' ."
            ),
            "security": _scopes(Permission.READ),
            "parameters": [
                *FILTERS,
                {
                    "name": "limit",
                    "in": "query",
                    "description": "At most this many calls, newest first (default: all).",
                    "schema": _or_empty({"type": "integer", "minimum": 1, "maximum": 1_000_000}),
                },
            ],
            "responses": _answers({"200": _download("text/csv", "The calls, newest first.")}, 400),
        }
    },
    "/recordings/{recording_id}/audio": {
        "get": {
            "operationId": "recordingAudio",
            "summary": "A recording's audio, streamed from Twilio through the service",
            "description": "The `audio` path of a recording in a call. One `bytes` range may be asked for.",
            "security": _scopes(Permission.READ),
            "parameters": [
                {
                    "name": "recording_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
                    "example": 1,
                },
                {
                    "name": "Range",
                    "in": "header",
                    "description": (
                        "One range: bytes=START-END, bytes=START- or bytes=-LENGTH; a range past the "
                        "end gets 416. Any other value (another unit, several ranges) is ignored and "
                        "the whole recording is sent."
                    ),
                    "schema": {"type": "string"},
                },
            ],
            "responses": _answers(
                {
                    "200": {"description": "The whole recording.", "content": {"audio/wav": {}}},
                    "206": {
                        "description": "The range asked for.",
                        "headers": {"Content-Range": {"schema": {"type": "string"}}},
                        "content": {"audio/wav": {}},
                    },
                },
                404,
                416,
                502,
            ),
        }
    },
}


def document() -> dict[str, Any]:
    """The whole document. Its server is "/": the host it was fetched from."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "callscribe",
            "version": VERSION,
            "description": (
                "Phone calls recorded through Twilio and transcribed, and calls placed. Authenticate "
                "with an API token from `flask users token` as `Authorization: Bearer <token>` (its "
                "scopes limit it), or, from the dashboard's own pages, with the session cookie and "
                'the CSRF token in `X-CSRFToken` for writes. Errors are JSON `{"error": "..."}`.'
            ),
        },
        "servers": [{"url": "/"}],
        "components": {
            "securitySchemes": {
                "token": {"type": "http", "scheme": "bearer", "description": "An API token and its scopes."},
                "session": {"type": "apiKey", "in": "cookie", "name": "session"},
            },
            "schemas": SCHEMAS,
        },
        "paths": PATHS,
    }
