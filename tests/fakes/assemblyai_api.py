"""Fake of AssemblyAI's pre-recorded REST API (v2) with real webhooks.

Requests are validated against AssemblyAI's own OpenAPI spec, transcripts
follow its Transcript schema, and webhooks are delivered (with retries, as
AssemblyAI does) to the service's public URL mapped onto a local port.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from jsonschema import ValidationError

from .http import FakeHTTPServer, RecordedRequest, Response, Route
from .openapi import spec_path, transcript_params_validator

UPLOAD_PREFIX = "https://cdn.assemblyai.com/upload/"
STATUSES = ("queued", "processing", "completed", "error")
# Request fields the Transcript resource does not echo back.
_NOT_ECHOED = {
    "audio_url",
    "webhook_auth_header_value",
    "content_safety_confidence",
    "speaker_options",
}


def _timestamp() -> str:
    """AssemblyAI's list timestamps: naive UTC ISO 8601 with microseconds."""
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


@dataclass
class TranscriptJob:
    """Server-side bookkeeping for one transcript (not part of the API)."""

    id: str
    seq: int
    params: dict[str, Any]
    audio_source: str  # "upload" or "external"
    created: str
    completed: str | None = None
    deleted: bool = False
    transcript: dict[str, Any] = field(default_factory=dict)


class FakeAssemblyAI(FakeHTTPServer):
    """AssemblyAI v2 fake: upload, transcript submit/get/list/delete, webhooks."""

    kinds = frozenset({"upload", "submit", "fetch", "list", "delete"})

    def __init__(
        self,
        api_key: str,
        *,
        processing_delay: float = 0.0,
        auto_complete: bool = True,
        webhook_retry_interval: float = 0.2,
        webhook_max_attempts: int = 10,
        webhook_timeout: float = 10.0,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.processing_delay = processing_delay
        self.auto_complete = auto_complete
        self.webhook_retry_interval = webhook_retry_interval
        self.webhook_max_attempts = webhook_max_attempts
        self.webhook_timeout = webhook_timeout
        self.uploads: list[dict[str, Any]] = []
        self.submissions: list[dict[str, Any]] = []
        self.rejected: list[dict[str, Any]] = []
        self.unvalidated: list[dict[str, Any]] = []
        self.jobs: dict[str, TranscriptJob] = {}
        self.webhook_attempts: list[dict[str, Any]] = []
        self.lost_webhooks: list[str] = []
        self._upload_data: dict[str, bytes] = {}
        self._results_by_audio: dict[bytes, dict[str, Any]] = {}
        self._results_by_url: dict[str, dict[str, Any]] = {}
        self._webhook_routes: list[tuple[str, str]] = []
        self._lose_webhooks = 0
        self._seq = 0

    # test controls -------------------------------------------------------

    def set_result_for_audio(
        self,
        audio_bytes: bytes,
        text: str,
        utterances: list[dict[str, Any]] | None = None,
        error: str | None = None,
    ) -> None:
        """What transcribing these uploaded bytes yields (error= makes it fail).

        Utterances are dicts with "text" and "speaker" ("A", "B") and/or
        "channel" (1, 2); the other form is derived, so one registration
        serves both speaker_labels and multichannel requests. An utterance's
        "unsure" ({"word": 0.42}) gives those words that confidence.
        """
        with self.lock:
            self._results_by_audio[bytes(audio_bytes)] = {
                "text": text,
                "utterances": utterances,
                "error": error,
            }

    def set_result_for_url(
        self,
        audio_url: str,
        text: str,
        utterances: list[dict[str, Any]] | None = None,
        error: str | None = None,
    ) -> None:
        """Like set_result_for_audio, for a non-upload audio_url."""
        with self.lock:
            self._results_by_url[audio_url] = {
                "text": text,
                "utterances": utterances,
                "error": error,
            }

    def result_for(self, audio_url: str, params: dict[str, Any]) -> dict[str, Any]:
        """The registered or default outcome: {"text", "utterances", "error"}.

        An external URL with nothing registered fails with AssemblyAI's
        download error: the real service cannot fetch auth-protected media.
        """
        with self.lock:
            if audio_url in self._results_by_url:
                return dict(self._results_by_url[audio_url])
            data = self._upload_data.get(audio_url)
            if data is None:
                return {
                    "text": None,
                    "utterances": None,
                    "error": f"Download error, unable to download {audio_url}. "
                    "Please make sure the file exists and is accessible from the internet.",
                }
            if data in self._results_by_audio:
                return dict(self._results_by_audio[data])
        if not data:
            return {
                "text": None,
                "utterances": None,
                "error": "Transcoding failed. File does not appear to contain audio.",
            }
        return {
            "text": f"transcript of {len(data)} bytes",
            "utterances": None,
            "error": None,
        }

    def route_webhooks(self, public_origin: str, local_origin: str) -> None:
        """Deliver webhooks for public_origin to a local server, like a tunnel."""
        host = urlsplit(local_origin).hostname or ""
        if urlsplit(local_origin).scheme != "http" or not _is_loopback(host):
            raise ValueError(f"local_origin must be http:// on a loopback address, got {local_origin!r}")
        with self.lock:
            self._webhook_routes.append((public_origin.rstrip("/"), local_origin.rstrip("/")))

    def lose_webhooks(self, times: int = 1) -> None:
        """The next `times` webhook deliveries never happen at all."""
        with self.lock:
            self._lose_webhooks += times

    def fail_next(
        self,
        kind: str,
        status: int | None = None,
        times: int = 1,
        retry_after: int | str | None = None,
        body: Any = None,
    ) -> None:
        """Error the next `times` requests of kind; status defaults to 500, or 429 with retry_after.

        ``retry_after`` is sent as the Retry-After header: seconds, or a
        string sent verbatim (an HTTP date, or something malformed).
        """
        status = status or (429 if retry_after is not None else 500)
        headers = [("Retry-After", str(retry_after))] if retry_after is not None else []
        if body is None:
            response = self._error(status)
            response.headers += headers
        else:
            response = self._custom_body(status, body, headers)
        self._fail(kind, response, times)

    def fetches(self, transcript_id: str) -> int:
        """How many authorized GETs of this transcript arrived (polling count)."""
        return self._count("fetch", transcript_id=transcript_id)

    def transcript(self, transcript_id: str) -> dict[str, Any]:
        """Current transcript JSON, exactly as GET would answer it."""
        with self.lock:
            return json.loads(json.dumps(self.jobs[transcript_id].transcript))

    def complete(
        self,
        transcript_id: str,
        text: str | None = None,
        utterances: list[dict[str, Any]] | None = None,
    ) -> None:
        """Finish a transcript now (default result unless text is given)."""
        with self.lock:
            job = self.jobs[transcript_id]
            if text is None and utterances is None:
                result = self.result_for(job.params["audio_url"], job.params)
            else:
                joined = " ".join(u["text"] for u in utterances or [])
                result = {
                    "text": text if text is not None else joined,
                    "utterances": utterances,
                    "error": None,
                }
        self._finish(transcript_id, result)

    def fail(self, transcript_id: str, error: str = "Transcription failed") -> None:
        """Move a transcript to status error with this message."""
        self._finish(transcript_id, {"text": None, "utterances": None, "error": error})

    # transcript lifecycle ------------------------------------------------

    def _new_transcript(self, job: TranscriptJob) -> dict[str, Any]:
        params = job.params
        transcript: dict[str, Any] = {
            "id": job.id,
            "status": "queued",
            "audio_url": params["audio_url"],
            "speech_model": None,
            "language_model": "assemblyai_default",
            "acoustic_model": "assemblyai_default",
            "language_code": "en_us",
            "language_confidence_threshold": None,
            "language_confidence": None,
            "punctuate": True,
            "format_text": True,
            "multichannel": False,
            "speaker_labels": False,
            "auto_highlights": False,
            "redact_pii": False,
            "summarization": False,
            "webhook_url": None,
            "webhook_auth": bool(params.get("webhook_auth_header_name")),
            "webhook_auth_header_name": None,
            "webhook_status_code": None,
            "text": None,
            "words": None,
            "utterances": None,
            "confidence": None,
            "audio_duration": None,
        }
        transcript.update({k: v for k, v in params.items() if k not in _NOT_ECHOED})
        if params.get("language_detection"):
            transcript["language_code"] = params.get("language_code")
        return transcript

    def _process(self, transcript_id: str) -> None:
        """Background: queued -> processing -> completed/error, as the API does."""
        with self.lock:
            job = self.jobs.get(transcript_id)
            if job is None or job.transcript["status"] != "queued":
                return
            job.transcript["status"] = "processing"
        if self._stopping.wait(self.processing_delay):
            return
        with self.lock:
            if job.transcript["status"] != "processing" or job.deleted:
                return
            result = self.result_for(job.params["audio_url"], job.params)
        self._finish(transcript_id, result)

    def _finish(self, transcript_id: str, result: dict[str, Any]) -> None:
        with self.lock:
            job = self.jobs[transcript_id]
            if job.deleted:
                return
            transcript = job.transcript
            job.completed = _timestamp()
            if result.get("error"):
                transcript.update(
                    status="error",
                    error=result["error"],
                    text=None,
                    words=None,
                    utterances=None,
                )
            else:
                transcript.pop("error", None)
                transcript.update(_build_result(job.params, result["text"] or "", result.get("utterances")))
                transcript["status"] = "completed"
            status = transcript["status"]
        self._start_webhook(transcript_id, status)

    # webhooks ------------------------------------------------------------

    def _start_webhook(self, transcript_id: str, status: str) -> None:
        with self.lock:
            job = self.jobs[transcript_id]
            if not job.params.get("webhook_url"):
                return
            if self._lose_webhooks > 0:
                self._lose_webhooks -= 1
                self.lost_webhooks.append(transcript_id)
                return
        thread = threading.Thread(
            target=self._deliver,
            args=(transcript_id, status),
            name=f"webhook-{transcript_id}",
            daemon=True,
        )
        thread.start()

    def _local_url(self, public_url: str) -> str | None:
        """Map a public webhook URL onto a routed local origin, byte for byte."""
        url = public_url.split("#", 1)[0]
        with self.lock:
            routes = list(self._webhook_routes)
        for public, local in routes:
            if url == public or url.startswith((public + "/", public + "?")):
                return local + url[len(public) :]
        host = urlsplit(url).hostname or ""
        return url if urlsplit(url).scheme == "http" and _is_loopback(host) else None

    def _deliver(self, transcript_id: str, status: str) -> None:
        with self.lock:
            params = dict(self.jobs[transcript_id].params)
        public_url = params["webhook_url"]
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "AssemblyAI-Webhook (fake)",
        }
        if params.get("webhook_auth_header_name") and params.get("webhook_auth_header_value") is not None:
            headers[params["webhook_auth_header_name"]] = params["webhook_auth_header_value"]
        body = json.dumps({"transcript_id": transcript_id, "status": status}).encode()
        target = self._local_url(public_url)
        for attempt in range(1, self.webhook_max_attempts + 1):
            if self._stopping.is_set():
                return
            code, error = (
                (None, "UnroutableWebhookURL") if target is None else self._post(target, body, headers)
            )
            with self.lock:
                self.webhook_attempts.append(
                    {
                        "transcript_id": transcript_id,
                        "attempt": attempt,
                        "url": target or public_url,
                        "public_url": public_url,
                        "status": code,
                        "error": error,
                        "headers": dict(headers),
                        "body": body,
                        "time": time.time(),
                    }
                )
                if code is not None:
                    self.jobs[transcript_id].transcript["webhook_status_code"] = code
            if code is not None and (200 <= code < 300 or 400 <= code < 500):
                return  # delivered, or rejected for good: AssemblyAI never retries a 4xx
            if attempt < self.webhook_max_attempts and self._stopping.wait(self.webhook_retry_interval):
                return

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, str | None]:
        parts = urlsplit(url)
        target = url[len(f"{parts.scheme}://{parts.netloc}") :] or "/"
        conn = http.client.HTTPConnection(
            parts.hostname or "", parts.port or 80, timeout=self.webhook_timeout
        )
        try:
            conn.request("POST", target, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            return response.status, None
        except (OSError, http.client.HTTPException) as exc:
            return None, type(exc).__name__
        finally:
            conn.close()

    # protocol ------------------------------------------------------------

    def _error(self, status: int, message: str | None = None) -> Response:
        return Response.json(status, {"error": message or _REASONS.get(status, "Error")})

    def _authenticate(self, request: RecordedRequest) -> Response | None:
        if request.headers.get("authorization") == self.api_key:
            return None
        return self._error(401, "Authentication error, API token missing/invalid")

    def _route(self, request: RecordedRequest) -> Route | Response:
        method, path = request.method, request.path
        if path == "/v2/upload":
            return (
                Route("upload", self._on_upload)
                if method == "POST"
                else self._error(405, "Method not allowed")
            )
        if path == "/v2/transcript":
            if method == "POST":
                return Route("submit", self._on_submit)
            if method == "GET":
                return Route("list", self._on_list)
            return self._error(405, "Method not allowed")
        if path.startswith("/v2/transcript/") and path.count("/") == 3:
            params = {"transcript_id": path.rsplit("/", 1)[1]}
            if method == "GET":
                return Route("fetch", self._on_fetch, params)
            if method == "DELETE":
                return Route("delete", self._on_delete, params)
            return self._error(405, "Method not allowed")
        return self._error(404, "Not found")

    def _on_upload(self, request: RecordedRequest) -> Response:
        upload_url = UPLOAD_PREFIX + str(uuid.uuid4())
        with self.lock:
            self._upload_data[upload_url] = request.body
            self.uploads.append(
                {
                    "upload_url": upload_url,
                    "data": request.body,
                    "chunked": request.chunked,
                    "headers": dict(request.headers),
                }
            )
        return Response.json(200, {"upload_url": upload_url})

    def _reject(
        self,
        body: Any,
        message: str,
        status: int = 400,
        errors: list[str] | None = None,
    ) -> Response:
        with self.lock:
            self.rejected.append({"body": body, "error": message, "errors": errors or [message]})
        return self._error(status, message)

    def _on_submit(self, request: RecordedRequest) -> Response:
        try:
            body = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            return self._reject(request.body, "Invalid JSON body")
        if not isinstance(body, dict):
            return self._reject(body, "Request body must be a JSON object")
        if spec_path() is None:
            # Without the spec (a clone without shared/) check only what the
            # API requires; CI always has the spec and validates in full.
            errors = [
                ValidationError(f"{name!r} is a required property")
                for name in ("audio_url", "speech_models")
                if name not in body
            ]
            with self.lock:
                self.unvalidated.append(body)
        else:
            errors = sorted(
                transcript_params_validator().iter_errors(body),
                key=lambda e: list(e.absolute_path),
            )
        if errors:
            messages = [f"{e.json_path}: {e.message}" for e in errors]
            return self._reject(body, errors[0].message, errors=messages)
        audio_url: str = body["audio_url"]
        with self.lock:
            issued = audio_url in self._upload_data
        if audio_url.startswith(UPLOAD_PREFIX) and not issued:
            return self._reject(body, "Cannot access uploaded file", status=403)
        with self.lock:
            self._seq += 1
            job = TranscriptJob(
                id=str(uuid.uuid4()),
                seq=self._seq,
                params=body,
                audio_source="upload" if issued else "external",
                created=_timestamp(),
            )
            job.transcript = self._new_transcript(job)
            self.jobs[job.id] = job
            self.submissions.append(body)
            response = Response.json(200, job.transcript)
        if self.auto_complete:
            threading.Thread(target=self._process, args=(job.id,), name=f"aai-{job.id}", daemon=True).start()
        return response

    def _on_fetch(self, request: RecordedRequest) -> Response:
        with self.lock:
            job = self.jobs.get(request.params["transcript_id"])
            if job is None:
                return self._error(404, "Transcript not found")
            return Response.json(200, job.transcript)

    def _on_delete(self, request: RecordedRequest) -> Response:
        with self.lock:
            job = self.jobs.get(request.params["transcript_id"])
            if job is None:
                return self._error(404, "Transcript not found")
            if job.transcript["status"] in ("queued", "processing"):
                return self._error(400, "Transcript is still being processed and cannot be deleted")
            self._upload_data.pop(job.params["audio_url"], None)
            job.deleted = True
            job.transcript.update(
                audio_url="http://deleted_by_user",
                text="Deleted by user.",
                words=None,
                utterances=None,
                confidence=None,
            )
            if job.transcript.get("webhook_url"):
                job.transcript["webhook_url"] = "http://deleted_by_user"
            return Response.json(200, job.transcript)

    def _on_list(self, request: RecordedRequest) -> Response:
        query = {k: v[-1] for k, v in parse_qs(request.query, keep_blank_values=True).items()}
        try:
            limit = int(query.get("limit", "10"))
        except ValueError:
            return self._error(400, "limit must be an integer")
        if not 1 <= limit <= 200:
            return self._error(400, "limit must be between 1 and 200")
        status = query.get("status")
        if status is not None and status not in STATUSES:
            return self._error(400, f"Invalid status {status!r}")
        with self.lock:
            jobs = sorted(self.jobs.values(), key=lambda j: j.seq, reverse=True)  # newest first
            anchors: dict[str, int] = {}
            for name in ("before_id", "after_id"):
                if name in query:
                    anchor = self.jobs.get(query[name])
                    if anchor is None:
                        return self._error(400, f"{name}: transcript {query[name]} not found")
                    anchors[name] = anchor.seq
            if "before_id" in anchors:
                jobs = [j for j in jobs if j.seq < anchors["before_id"]]
            if "after_id" in anchors:
                jobs = [j for j in jobs if j.seq > anchors["after_id"]]
            if status is not None:
                jobs = [j for j in jobs if j.transcript["status"] == status]
            if "created_on" in query:
                jobs = [j for j in jobs if j.created.startswith(query["created_on"] + "T")]
            # Newer-than pages hold the transcripts nearest the anchor.
            page = jobs[-limit:] if "after_id" in anchors and "before_id" not in anchors else jobs[:limit]
            items = [
                {
                    "id": j.id,
                    "resource_url": f"{self.base_url}/v2/transcript/{j.id}",
                    "status": j.transcript["status"],
                    "created": j.created,
                    "completed": j.completed,
                    "audio_url": j.transcript["audio_url"],
                    "error": j.transcript.get("error"),
                }
                for j in page
            ]
        base = f"{self.base_url}/v2/transcript"
        details = {
            "limit": limit,
            "result_count": len(items),
            "current_url": f"{base}?{request.query}" if request.query else base,
            "prev_url": f"{base}?limit={limit}&before_id={items[-1]['id']}" if items else None,
            "next_url": f"{base}?limit={limit}&after_id={items[0]['id']}" if items else None,
        }
        return Response.json(200, {"page_details": details, "transcripts": items})


def _is_loopback(host: str) -> bool:
    """Webhooks are only ever sent to this machine (tests have no network)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _build_result(
    params: dict[str, Any], text: str, utterances: list[dict[str, Any]] | None
) -> dict[str, Any]:
    """Completed-transcript fields: words (ms), utterances, confidence, duration."""
    multichannel = bool(params.get("multichannel"))
    diarized = multichannel or bool(params.get("speaker_labels"))
    source = utterances if (diarized and utterances) else [{"text": text, "speaker": "A", "channel": 1}]
    cursor = 240
    built: list[dict[str, Any]] = []
    all_words: list[dict[str, Any]] = []
    for index, utterance in enumerate(source):
        channel, speaker = _labels(utterance, multichannel)
        words = []
        for token in str(utterance["text"]).split():
            end = cursor + 120 + 60 * len(token)
            word: dict[str, Any] = {
                "text": token,
                "start": cursor,
                "end": end,
                "confidence": utterance.get("unsure", {}).get(token, round(0.9 + (len(token) % 10) / 100, 5)),
                "speaker": speaker if diarized else None,
                "channel": channel if multichannel else None,
            }
            words.append(word)
            cursor = end + 80
        if words:
            confidence = sum(w["confidence"] for w in words) / len(words)
            built.append(
                {
                    "confidence": round(confidence, 5),
                    "start": words[0]["start"],
                    "end": words[-1]["end"],
                    "text": str(utterance["text"]),
                    "words": words,
                    "speaker": speaker,
                    "channel": channel if multichannel else None,
                }
            )
        all_words += words
        cursor += 500 if index < len(source) - 1 else 0
    result: dict[str, Any] = {
        "text": text,
        "words": all_words,
        "utterances": built if diarized else None,
        "confidence": round(sum(w["confidence"] for w in all_words) / len(all_words), 5)
        if all_words
        else None,
        "audio_duration": max(1, -(-cursor // 1000)),
        "speech_model_used": params["speech_models"][0] if params.get("speech_models") else "universal-2",
    }
    if multichannel:
        result["audio_channels"] = max([int(u["channel"]) for u in built] + [1])
    return result


def _labels(utterance: dict[str, Any], multichannel: bool) -> tuple[str, str]:
    """Channel ("1", "2") and speaker ("A"/"B", or the channel when multichannel)."""
    speaker = utterance.get("speaker")
    channel = utterance.get("channel")
    if channel is None:
        channel = ord(str(speaker)[0].upper()) - 64 if speaker and str(speaker)[0].isalpha() else 1
    channel = str(channel)
    if multichannel:
        return channel, channel
    if speaker is None or str(speaker).isdigit():
        speaker = chr(64 + int(channel)) if channel.isdigit() else "A"
    return channel, str(speaker)


_REASONS = {
    400: "Bad request",
    404: "Not found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
