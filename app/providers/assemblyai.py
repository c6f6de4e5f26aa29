"""AssemblyAI's REST API (v2): upload audio, create a transcript, read it back, delete it.

The only module that knows AssemblyAI's field names: it builds the body of
``POST /v2/transcript`` from :class:`TranscriptionOptions`, reads the
webhook's notice, and turns transcripts into :class:`TranscriptResult`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from ..states import TranscriptStatus
from . import ProviderError, error_from_exception, error_from_response
from .transcription import (
    Audio,
    AudioURL,
    Submission,
    TranscriptionOptions,
    TranscriptResult,
    Utterance,
    Word,
)

NAME = "AssemblyAI"
# AssemblyAI's ids are UUIDs today; allow any short id of that alphabet.
TRANSCRIPT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class MalformedNotice(ValueError):
    """A webhook body that is not AssemblyAI's notice; ``str()`` says what is wrong."""


def webhook_transcript_id(body: object) -> str:
    """The transcript id in AssemblyAI's webhook body ``{"transcript_id": ..., "status": ...}``."""
    if not isinstance(body, dict):
        raise MalformedNotice("Expected a JSON object.")
    transcript_id = body.get("transcript_id")
    if not isinstance(transcript_id, str) or not TRANSCRIPT_ID.match(transcript_id):
        raise MalformedNotice("Missing or malformed transcript_id.")
    return transcript_id


def transcript_params(audio_url: str, options: TranscriptionOptions) -> dict[str, Any]:
    """The body of ``POST /v2/transcript`` (the spec's TranscriptParams)."""
    params: dict[str, Any] = {"audio_url": audio_url, "speech_models": list(options.models)}
    if options.callback is not None:
        params.update(
            webhook_url=options.callback.url,
            webhook_auth_header_name=options.callback.header_name,
            webhook_auth_header_value=options.callback.secret,
        )
    if options.separate_speakers:
        params["speaker_labels"] = True
        if options.speakers is not None:
            params["speakers_expected"] = options.speakers
    else:
        params["multichannel"] = True
    if options.redact:
        # The text comes back with each finding replaced by its kind, "[PERSON_NAME]".
        params.update(redact_pii=True, redact_pii_policies=list(options.redact), redact_pii_sub="entity_name")
    if options.language == "auto":
        params["language_detection"] = True
    elif options.language:
        params["language_code"] = options.language
    return params


class AssemblyAI:
    """The AssemblyAI engine (see :class:`TranscriptionEngine`)."""

    name = "assemblyai"

    def __init__(
        self,
        api_key: str,
        base_url: str,
        *,
        session: requests.Session | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._session = session or requests.Session()
        self._headers = {"authorization": api_key}
        # Connect quickly or not at all; reading may take longer (uploads).
        self._timeout = (min(10.0, timeout), timeout)

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = dict(self._headers, **kwargs.pop("headers", {}))
        try:
            response = self._session.request(
                method, self._base_url + path, headers=headers, timeout=self._timeout, **kwargs
            )
        except requests.RequestException as exc:
            raise error_from_exception(NAME, exc) from None
        if not response.ok:
            raise error_from_response(NAME, response)
        try:
            return response.json()
        except ValueError:
            raise ProviderError(f"{NAME} sent a reply that is not JSON", retryable=True) from None

    def prepare(self, audio: Audio) -> str:
        """A URL AssemblyAI fetches itself is used as it is; a stream goes to ``/v2/upload``."""
        if isinstance(audio, AudioURL):
            return audio.url
        return self._upload(audio.chunks)

    def _upload(self, chunks: Iterable[bytes]) -> str:
        """Stream audio to ``/v2/upload`` (chunked) and return its upload_url."""
        body = self._request(
            "POST",
            "/v2/upload",
            data=chunks,
            headers={"Content-Type": "application/octet-stream"},
        )
        upload_url = body.get("upload_url") if isinstance(body, dict) else None
        if not upload_url:
            raise ProviderError(f"{NAME} upload returned no upload_url", retryable=True)
        return str(upload_url)

    def submit(self, audio_ref: str, options: TranscriptionOptions) -> Submission:
        """``POST /v2/transcript``."""
        result = _result(self._request("POST", "/v2/transcript", json=transcript_params(audio_ref, options)))
        return Submission(result.id, result.status)

    def fetch(self, transcript_id: str) -> TranscriptResult:
        return _result(self._request("GET", f"/v2/transcript/{transcript_id}"))

    def delete(self, transcript_id: str) -> None:
        """Blank the transcript's text and remove its uploaded audio (a stub record stays)."""
        self._request("DELETE", f"/v2/transcript/{transcript_id}")

    def find_submission(self, audio_ref: str, *, since: datetime, pages: int = 5) -> Submission | None:
        """A transcript created for ``audio_ref`` since ``since``, if any.

        Used to find a submission whose answer was lost, so it is not paid
        for twice. Pages back through the transcript list, newest first,
        until the transcripts are older than ``since`` (with an hour's
        margin for clocks that disagree).
        """
        oldest_wanted = since - timedelta(hours=1)
        params: dict[str, Any] = {"limit": 200}
        for _ in range(pages):
            body = self._request("GET", "/v2/transcript", params=params)
            items = [
                item for item in body.get("transcripts", []) if isinstance(item, dict) and item.get("id")
            ]
            for item in items:
                if item.get("audio_url") == audio_ref:
                    return Submission(str(item["id"]), _status(item.get("status")))
            if not items or _created(items[-1]) < oldest_wanted:
                return None
            params["before_id"] = items[-1]["id"]
        return None


def _created(item: dict[str, Any]) -> datetime:
    """When a listed transcript was created; unknown counts as recent, to keep looking."""
    try:
        created = datetime.fromisoformat(str(item.get("created")).replace("Z", "+00:00"))
    except ValueError:
        return datetime.max.replace(tzinfo=UTC)
    return created if created.tzinfo else created.replace(tzinfo=UTC)


def _status(value: object) -> TranscriptStatus:
    """AssemblyAI's status; one we do not know counts as queued, which moves nothing."""
    try:
        return TranscriptStatus(str(value))
    except ValueError:
        return TranscriptStatus.QUEUED


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _timed(item: dict[str, Any]) -> dict[str, Any]:
    """What a word and an utterance both carry: text, times in ms, confidence, who."""
    return {
        "text": str(item.get("text") or ""),
        "start": int(item.get("start") or 0),
        "end": int(item.get("end") or 0),
        "confidence": item.get("confidence"),
        "speaker": _text(item.get("speaker")),
        "channel": _text(item.get("channel")),
    }


def _words(items: object) -> tuple[Word, ...]:
    return tuple(Word(**_timed(w)) for w in items if isinstance(w, dict)) if isinstance(items, list) else ()


def _utterances(items: object) -> tuple[Utterance, ...]:
    if not isinstance(items, list):
        return ()
    return tuple(Utterance(**_timed(u), words=_words(u.get("words"))) for u in items if isinstance(u, dict))


def _result(body: Any) -> TranscriptResult:
    if not isinstance(body, dict) or not body.get("id") or not body.get("status"):
        raise ProviderError(f"{NAME} sent a transcript without id or status", retryable=True)
    return TranscriptResult(
        id=str(body["id"]),
        status=_status(body["status"]),
        text=_text(body.get("text")),
        words=_words(body.get("words")),
        utterances=_utterances(body.get("utterances")),
        confidence=body.get("confidence"),
        language=_text(body.get("language_code")),
        duration=body.get("audio_duration"),
        model=_text(body.get("speech_model_used")),
        error=_text(body.get("error")),
    )
