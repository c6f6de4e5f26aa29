"""Logging to stderr, with every configured secret masked.

The filter sits on our handler, so it also covers what libraries log
(twilio's HTTP client, requests, huey), not just our own messages.
"""

from __future__ import annotations

import logging
import sys

MASK = "[redacted]"


class RedactSecrets(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is masked whole.
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        cleaned = self.redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


def configure_logging(level: str, secrets: list[str]) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "callscribe", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.callscribe = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(secrets))
    root.addHandler(handler)
    root.setLevel(level)
    # twilio's client logs every request at INFO; its URLs are fine, but
    # keep the noise down unless someone asks for DEBUG.
    if level != "DEBUG":
        logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
