"""Adapters for the outside APIs. No other module talks HTTP to a provider.

Each adapter takes its HTTP session, base URL, credentials and timeout in
its constructor, returns the project's own dataclasses and raises
:class:`ProviderError`, whose ``retryable`` flag tells the pipeline whether
trying again later can help.
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime

import requests


class ProviderError(Exception):
    """A provider call failed. ``str()`` is short and safe to show a user."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after


def error_from_response(provider: str, response: requests.Response) -> ProviderError:
    """Turn a non-2xx answer into a ProviderError: 429 and 5xx are worth a retry."""
    status = response.status_code
    detail = ""
    try:
        body = response.json()
        if isinstance(body, dict):
            detail = str(body.get("error") or body.get("message") or "")[:300]
    except ValueError:
        pass
    message = f"{provider} answered HTTP {status}" + (f": {detail}" if detail else "")
    retryable = status == 429 or status >= 500 or status == 408
    return ProviderError(
        message,
        retryable=retryable,
        status=status,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
    )


def error_from_exception(provider: str, exc: requests.RequestException) -> ProviderError:
    """Network trouble (timeouts, dropped connections) is always worth a retry."""
    kind = type(exc).__name__
    return ProviderError(f"{provider} could not be reached ({kind})", retryable=True)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After is either seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
