"""Settings: read once from the environment, validated, frozen.

Nothing in the package reads ``os.environ`` at import time. ``create_app``
builds a :class:`Settings` from the environment (or takes one from a test),
and every other module reads ``current_app.extensions["settings"]`` or gets
the values it needs passed in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

DEFAULT_ASSEMBLYAI_BASE_URL = "https://api.assemblyai.com"
DEFAULT_TWILIO_API_BASE_URL = "https://api.twilio.com"
DEFAULT_SPEECH_MODELS = ("universal-3-pro", "universal-2")
DEFAULT_GREETING = (
    "Hello. This call is recorded and transcribed. Please leave your message after the beep, then hang up."
)
WEBHOOK_HEADER_NAME = "X-Callscribe-Webhook-Secret"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class ConfigError(ValueError):
    """A setting has a value the service cannot run with; names the variable."""

    def __init__(self, variable: str, problem: str) -> None:
        self.variable = variable
        super().__init__(f"{variable}: {problem}")


class NotConfigured(Exception):
    """A feature was used whose settings are missing: answered with a 503."""

    def __init__(self, variables: list[str], feature: str) -> None:
        self.variables = variables
        self.feature = feature
        super().__init__(f"Not configured: {feature} needs {' and '.join(variables)}.")


def require(feature: str, **values: str | None) -> None:
    """Raise NotConfigured naming every variable in ``values`` that is not set."""
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise NotConfigured(missing, feature)


def current_settings() -> Settings:
    from flask import current_app

    settings: Settings = current_app.extensions["settings"]
    return settings


@dataclass(frozen=True)
class Settings:
    """Everything the service can be configured with. See ``.env.example``."""

    secret_key: str
    database_url: str
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = field(default=None, repr=False)
    twilio_phone_number: str | None = None
    twilio_api_base_url: str = DEFAULT_TWILIO_API_BASE_URL
    base_url: str | None = None
    assemblyai_api_key: str | None = field(default=None, repr=False)
    assemblyai_base_url: str = DEFAULT_ASSEMBLYAI_BASE_URL
    assemblyai_speech_models: tuple[str, ...] = DEFAULT_SPEECH_MODELS
    assemblyai_webhook_secret: str | None = field(default=None, repr=False)
    assemblyai_language: str | None = None
    redis_url: str | None = field(default=None, repr=False)
    queue_name: str = "callscribe"
    admin_password: str | None = field(default=None, repr=False)
    admin_password_hash: str | None = field(default=None, repr=False)
    forward_to: str | None = None
    recording_delivery: str = "upload"
    greeting: str = DEFAULT_GREETING
    max_recording_seconds: int = 3600
    reconcile_interval: int = 120
    http_timeout: float = 30.0
    job_max_attempts: int = 8
    job_timeout: int = 900
    dial_allowed_countries: tuple[str, ...] = ()
    dial_per_user_per_hour: int = 10
    dial_per_hour: int = 30
    dial_daily_limit: int = 100
    log_level: str = "INFO"
    secret_key_generated: bool = False

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, instance_path: str = "instance"
    ) -> Settings:
        """Parse and validate; raise :class:`ConfigError` naming the bad variable."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name)
            if value is None:
                return None
            value = value.strip()
            return value or None

        secret_key = get("SECRET_KEY")
        generated = False
        if secret_key is None:
            secret_key = _instance_secret_key(instance_path)
            generated = True

        base_url = get("BASE_URL")
        if base_url is not None:
            base_url = _origin("BASE_URL", base_url, https_only=True)

        models = tuple(
            m.strip()
            for m in (get("ASSEMBLYAI_SPEECH_MODELS") or ",".join(DEFAULT_SPEECH_MODELS)).split(",")
            if m.strip()
        )
        if not models:
            raise ConfigError("ASSEMBLYAI_SPEECH_MODELS", "needs at least one model")

        delivery = (get("RECORDING_DELIVERY") or "upload").lower()
        if delivery not in ("upload", "url"):
            raise ConfigError("RECORDING_DELIVERY", f"must be 'upload' or 'url', not {delivery!r}")

        account_sid = get("TWILIO_ACCOUNT_SID")
        if account_sid is not None and not _is_sid(account_sid, "AC"):
            raise ConfigError("TWILIO_ACCOUNT_SID", "must be 'AC' followed by 32 hex digits")

        phone_number = get("TWILIO_PHONE_NUMBER")
        if phone_number is not None:
            phone_number = _e164("TWILIO_PHONE_NUMBER", phone_number)
        forward_to = get("FORWARD_TO")
        if forward_to is not None:
            forward_to = _e164("FORWARD_TO", forward_to)

        log_level = (get("LOG_LEVEL") or "INFO").upper()
        if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError("LOG_LEVEL", "must be DEBUG, INFO, WARNING or ERROR")

        return cls(
            secret_key=secret_key,
            secret_key_generated=generated,
            database_url=_database_url(get("DATABASE_URL"), instance_path),
            twilio_account_sid=account_sid,
            twilio_auth_token=get("TWILIO_AUTH_TOKEN"),
            twilio_phone_number=phone_number,
            twilio_api_base_url=_origin(
                "TWILIO_API_BASE_URL",
                get("TWILIO_API_BASE_URL") or DEFAULT_TWILIO_API_BASE_URL,
                https_only=True,
            ),
            base_url=base_url,
            assemblyai_api_key=get("ASSEMBLYAI_API_KEY") or get("ASSEMBLYAI_KEY"),
            assemblyai_base_url=_origin(
                "ASSEMBLYAI_BASE_URL",
                get("ASSEMBLYAI_BASE_URL") or DEFAULT_ASSEMBLYAI_BASE_URL,
                https_only=True,
            ),
            assemblyai_speech_models=models,
            assemblyai_webhook_secret=get("ASSEMBLYAI_WEBHOOK_SECRET"),
            assemblyai_language=_language(get("ASSEMBLYAI_LANGUAGE")),
            redis_url=_redis_url(get("REDIS_URL")),
            queue_name=get("QUEUE_NAME") or "callscribe",
            admin_password=get("ADMIN_PASSWORD"),
            admin_password_hash=_password_hash(get("ADMIN_PASSWORD_HASH")),
            forward_to=forward_to,
            recording_delivery=delivery,
            greeting=get("GREETING") or DEFAULT_GREETING,
            max_recording_seconds=_int("MAX_RECORDING_SECONDS", get("MAX_RECORDING_SECONDS"), 3600, 1, 14400),
            reconcile_interval=_int("RECONCILE_INTERVAL", get("RECONCILE_INTERVAL"), 120, 5, 86400),
            http_timeout=float(_int("HTTP_TIMEOUT", get("HTTP_TIMEOUT"), 30, 1, 600)),
            job_max_attempts=_int("JOB_MAX_ATTEMPTS", get("JOB_MAX_ATTEMPTS"), 8, 1, 50),
            job_timeout=_int("JOB_TIMEOUT", get("JOB_TIMEOUT"), 900, 5, 86400),
            dial_allowed_countries=_countries(get("DIAL_ALLOWED_COUNTRIES"), phone_number),
            dial_per_user_per_hour=_int(
                "DIAL_PER_USER_PER_HOUR", get("DIAL_PER_USER_PER_HOUR"), 10, 0, 10000
            ),
            dial_per_hour=_int("DIAL_PER_HOUR", get("DIAL_PER_HOUR"), 30, 0, 100000),
            dial_daily_limit=_int("DIAL_DAILY_LIMIT", get("DIAL_DAILY_LIMIT"), 100, 0, 1000000),
            log_level=log_level,
        )

    # Derived values -----------------------------------------------------

    @property
    def webhook_secret(self) -> str:
        """The header value AssemblyAI must send back: set on its own, or derived."""
        if self.assemblyai_webhook_secret:
            return self.assemblyai_webhook_secret
        digest = hmac.new(self.secret_key.encode(), b"assemblyai-webhook", hashlib.sha256)
        return digest.hexdigest()

    def public_url(self, path: str) -> str | None:
        return f"{self.base_url}{path}" if self.base_url else None

    def missing(self) -> list[tuple[str, str]]:
        """Variables still to set, each with what does not work without it."""
        gaps = []
        if not self.twilio_account_sid:
            gaps.append(("TWILIO_ACCOUNT_SID", "placing calls and downloading recordings"))
        if not self.twilio_auth_token:
            gaps.append(("TWILIO_AUTH_TOKEN", "checking Twilio webhooks, calls and recordings"))
        if not self.twilio_phone_number:
            gaps.append(("TWILIO_PHONE_NUMBER", "placing outbound calls"))
        if not self.base_url:
            gaps.append(("BASE_URL", "every webhook: Twilio and AssemblyAI call back to it"))
        if not self.assemblyai_api_key:
            gaps.append(("ASSEMBLYAI_API_KEY", "transcription"))
        if not self.admin_password and not self.admin_password_hash:
            gaps.append(("ADMIN_PASSWORD", "logging in to the dashboard (or add users with flask users add)"))
        return gaps

    def secrets(self) -> list[str]:
        """Every secret value, so that log filters and tests can look for them."""
        values = [
            self.secret_key,
            self.twilio_auth_token,
            self.assemblyai_api_key,
            self.webhook_secret,
            self.admin_password,
        ]
        if self.twilio_account_sid and self.twilio_auth_token:
            # The Authorization header as it goes to Twilio.
            basic = f"{self.twilio_account_sid}:{self.twilio_auth_token}".encode()
            values.append(base64.b64encode(basic).decode())
        return [v for v in values if v]


def _is_sid(value: str, prefix: str) -> bool:
    rest = value[len(prefix) :]
    return value.startswith(prefix) and len(rest) == 32 and all(c in "0123456789abcdefABCDEF" for c in rest)


def _origin(variable: str, value: str, *, https_only: bool) -> str:
    """An origin (scheme://host[:port]) without a trailing slash.

    Plain http is accepted only for loopback hosts, which is what tests and a
    local reverse proxy use; anything public must be https.
    """
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(variable, f"must be an https URL such as https://example.com, not {value!r}")
    if https_only and parts.scheme != "https" and parts.hostname not in LOOPBACK_HOSTS:
        raise ConfigError(variable, f"must use https (Twilio will not call plain http), not {value!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(variable, f"must be an origin with no path, e.g. {parts.scheme}://{parts.netloc}")
    return f"{parts.scheme}://{parts.netloc}"


def _e164(variable: str, value: str) -> str:
    import phonenumbers

    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException as exc:
        raise ConfigError(variable, f"must be an E.164 number such as +14155550100 ({exc})") from None
    if not phonenumbers.is_possible_number(number):
        raise ConfigError(variable, f"{value!r} is not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _int(variable: str, value: str | None, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(variable, f"must be a whole number, not {value!r}") from None
    if not low <= number <= high:
        raise ConfigError(variable, f"must be between {low} and {high}, not {number}")
    return number


def _database_url(value: str | None, instance_path: str) -> str:
    if value is None:
        return f"sqlite:///{os.path.join(os.path.abspath(instance_path), 'callscribe.db')}"
    # Heroku and others still hand out the old postgres:// scheme, which
    # SQLAlchemy no longer accepts; psycopg 3 is the driver we ship.
    for prefix in ("postgres://", "postgresql://"):
        if value.startswith(prefix):
            return "postgresql+psycopg://" + value[len(prefix) :]
    if value.startswith(("postgresql+", "sqlite:")):
        return value
    raise ConfigError("DATABASE_URL", "must be a postgres:// or sqlite:/// URL")


def _language(value: str | None) -> str | None:
    """'auto' for language detection, or a language code such as en_us or de."""
    if value is None:
        return None
    value = value.lower()
    if value != "auto" and not all(c.isalpha() or c == "_" for c in value):
        raise ConfigError("ASSEMBLYAI_LANGUAGE", "must be 'auto' or a language code such as en_us")
    return value


def _countries(value: str | None, phone_number: str | None) -> tuple[str, ...]:
    """ISO country codes /dial may call; by default the Twilio number's own country."""
    import phonenumbers

    if value is None:
        if phone_number is None:
            return ()
        region = phonenumbers.region_code_for_number(phonenumbers.parse(phone_number, None))
        return (region,) if region else ()
    codes = tuple(c.strip().upper() for c in value.split(",") if c.strip())
    unknown = [c for c in codes if c not in phonenumbers.SUPPORTED_REGIONS]
    if unknown:
        raise ConfigError(
            "DIAL_ALLOWED_COUNTRIES", f"unknown country codes: {', '.join(unknown)} (use e.g. US,GB)"
        )
    return codes


def _password_hash(value: str | None) -> str | None:
    """A hash from ``flask users hash``: werkzeug's method$salt$hash form."""
    if value is not None and value.count("$") < 2:
        raise ConfigError("ADMIN_PASSWORD_HASH", "must be a hash printed by `flask users hash`")
    return value


def _redis_url(value: str | None) -> str | None:
    if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("REDIS_URL", "must start with redis://, rediss:// or unix://")
    return value


def _instance_secret_key(instance_path: str) -> str:
    """A random key kept in the instance folder, so a first run just works.

    Every gunicorn worker and the queue worker read the same file, so
    sessions and the webhook secret agree across processes. A deployment
    should set SECRET_KEY: the file is lost with an ephemeral disk.
    """
    import secrets

    os.makedirs(instance_path, exist_ok=True)
    path = os.path.join(instance_path, "secret_key")
    if not os.path.exists(path):
        # Write aside, then link into place: link fails if another process
        # won the race, and nobody ever reads a half-written file.
        tmp = f"{path}.{os.getpid()}"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    with open(path) as f:
        return f.read().strip()
