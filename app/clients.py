"""The one place that builds the provider clients from Settings, and finds them again.

``init_app`` builds each adapter once, when its settings are there;
:func:`twilio` and :func:`engine` return them, or raise the one
:class:`NotConfigured` error that names what is missing (a 503 on a page,
a wait in the worker, an exit code 1 in the CLI).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import Flask, current_app

from .config import NotConfigured, Settings
from .providers.assemblyai import AssemblyAI
from .providers.transcription import TranscriptionEngine
from .providers.twilio import Twilio

# What each provider needs, by the settings' variable names.
REQUIRED = {
    "Twilio": ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"),
    "assemblyai": ("ASSEMBLYAI_API_KEY",),
}
# The features each stands for, as the error names them.
FEATURES = {"Twilio": "Twilio", "assemblyai": "transcription"}
DEFAULT_ENGINE = "assemblyai"


@dataclass(frozen=True)
class Clients:
    settings: Settings
    twilio: Twilio | None
    engines: dict[str, TranscriptionEngine] = field(default_factory=dict)

    def missing(self, provider: str) -> NotConfigured:
        variables = [name for name in REQUIRED[provider] if not self.settings.value(name)]
        return NotConfigured(variables, FEATURES[provider])


def build(settings: Settings) -> Clients:
    twilio = None
    if settings.twilio_account_sid and settings.twilio_auth_token:
        twilio = Twilio(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            settings.twilio_api_base_url,
            timeout=settings.http_timeout,
        )
    engines: dict[str, TranscriptionEngine] = {}
    if settings.assemblyai_api_key:
        engines[AssemblyAI.name] = AssemblyAI(
            settings.assemblyai_api_key,
            settings.assemblyai_base_url,
            timeout=settings.http_timeout,
        )
    return Clients(settings, twilio, engines)


def init_app(app: Flask, settings: Settings) -> None:
    app.extensions["clients"] = build(settings)


def _clients() -> Clients:
    clients: Clients = current_app.extensions["clients"]
    return clients


def twilio() -> Twilio:
    """The Twilio adapter, or NotConfigured naming what is missing."""
    clients = _clients()
    if clients.twilio is None:
        raise clients.missing("Twilio")
    return clients.twilio


def engine(name: str | None = None) -> TranscriptionEngine:
    """The transcription engine ``name`` (by default the configured one), or NotConfigured."""
    clients = _clients()
    name = name or DEFAULT_ENGINE
    found = clients.engines.get(name)
    if found is None:
        raise clients.missing(name)
    return found
