"""AssemblyAI's REST API: upload audio, create a transcript, read it back."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from . import ProviderError, error_from_exception, error_from_response

NAME = "AssemblyAI"


@dataclass(frozen=True)
class TranscriptResult:
    """What we keep of AssemblyAI's transcript object."""

    id: str
    status: str
    text: str | None = None
    words: list[dict[str, Any]] | None = None
    utterances: list[dict[str, Any]] | None = None
    confidence: float | None = None
    audio_duration: float | None = None
    language_code: str | None = None
    speech_model_used: str | None = None
    error: str | None = None
    audio_url: str | None = None
    webhook_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "error")


class AssemblyAI:
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

    def upload(self, chunks: Iterable[bytes]) -> str:
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

    def submit(self, params: dict[str, Any]) -> TranscriptResult:
        """``POST /v2/transcript``; ``params`` must be a valid TranscriptParams."""
        return _result(self._request("POST", "/v2/transcript", json=params))

    def get(self, transcript_id: str) -> TranscriptResult:
        return _result(self._request("GET", f"/v2/transcript/{transcript_id}"))

    def find_by_audio_url(self, audio_url: str, *, since: datetime, pages: int = 5) -> tuple[str, str] | None:
        """The id and status of a transcript created for ``audio_url`` since ``since``, if any.

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
                if item.get("audio_url") == audio_url:
                    return str(item["id"]), str(item.get("status"))
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


def _result(body: Any) -> TranscriptResult:
    if not isinstance(body, dict) or not body.get("id") or not body.get("status"):
        raise ProviderError(f"{NAME} sent a transcript without id or status", retryable=True)
    known = {f for f in TranscriptResult.__dataclass_fields__ if f != "extra"}
    return TranscriptResult(
        **{k: body.get(k) for k in known},
        extra={k: v for k, v in body.items() if k not in known},
    )
