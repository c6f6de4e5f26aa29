"""The only place webhooks are authenticated.

* Twilio signs every request with ``X-Twilio-Signature`` over the URL it
  called. Behind ngrok or a PaaS router TLS ends before us, so the URL is
  rebuilt from ``BASE_URL`` plus the path and the raw query string, never
  from ``Host`` or ``X-Forwarded-*`` headers a client could forge.
* AssemblyAI sends back the static header we gave it when submitting.

There is no switch to skip either check: tests sign their requests.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from functools import lru_cache, wraps
from typing import Any

from flask import abort, request
from twilio.request_validator import RequestValidator

from .config import WEBHOOK_HEADER_NAME, current_settings, require

log = logging.getLogger(__name__)


def twilio_public_url() -> str:
    """The URL Twilio requested, as Twilio saw it."""
    settings = current_settings()
    url = f"{settings.base_url}{request.script_root}{request.path}"
    # Byte for byte: re-encoding the query string would break the signature.
    query = request.query_string.decode("latin-1")
    return f"{url}?{query}" if query else url


@lru_cache(maxsize=4)
def _validator(auth_token: str) -> RequestValidator:
    """One validator per auth token and process, not one per request."""
    return RequestValidator(auth_token)


def twilio_signed(view: Callable[..., Any]) -> Callable[..., Any]:
    """Answer 403 unless the request carries a valid Twilio signature."""

    @wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        settings = current_settings()
        require("Twilio webhooks", TWILIO_AUTH_TOKEN=settings.twilio_auth_token, BASE_URL=settings.base_url)
        assert settings.twilio_auth_token is not None
        signature = request.headers.get("X-Twilio-Signature", "")
        validator = _validator(settings.twilio_auth_token)
        if not signature or not validator.validate(twilio_public_url(), request.form, signature):
            log.warning("rejected %s: %s Twilio signature", request.path, "bad" if signature else "no")
            abort(403, "Invalid or missing X-Twilio-Signature.")
        account_sid = request.form.get("AccountSid")
        if settings.twilio_account_sid and account_sid and account_sid != settings.twilio_account_sid:
            log.warning("rejected %s: callback for another account", request.path)
            abort(403, "This callback belongs to another Twilio account.")
        return view(*args, **kwargs)

    return checked


def assemblyai_authenticated(view: Callable[..., Any]) -> Callable[..., Any]:
    """Answer 401 unless the request carries the header we asked AssemblyAI to send."""

    @wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        expected = current_settings().webhook_secret.encode()
        given = request.headers.get(WEBHOOK_HEADER_NAME, "").encode()
        if not hmac.compare_digest(given, expected):
            log.warning("rejected %s: %s webhook secret", request.path, "bad" if given else "no")
            abort(401, "Invalid or missing webhook secret.")
        return view(*args, **kwargs)

    return checked
