"""Settings: one table, read once from the environment, validated, frozen.

:class:`Settings` is that table: each field names its environment variable,
its type, default, validation and help text. The same table drives the
checks at start-up (a bad value is a :class:`ConfigError` naming the
variable), the setup checklist (:meth:`Settings.missing`) and the test that
``.env.example`` documents every variable. pydantic reads it.

Nothing in the package reads ``os.environ`` at import time. ``create_app``
builds a :class:`Settings` from the environment (or takes one from a test),
and every other module reads :func:`current_settings` or gets the values it
needs passed in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import phonenumbers
from flask import current_app
from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

DEFAULT_ASSEMBLYAI_BASE_URL = "https://api.assemblyai.com"
DEFAULT_TWILIO_API_BASE_URL = "https://api.twilio.com"
DEFAULT_SPEECH_MODELS = ("universal-3-pro", "universal-2")
# The kinds of personal data AssemblyAI can redact (its PiiPolicy), and those
# REDACT_PII removes unless REDACT_PII_POLICIES names others: what identifies a
# person, reaches them, or pays with their money.
PII_POLICIES = frozenset(
    "account_number banking_information blood_type credit_card_cvv credit_card_expiration "
    "credit_card_number date date_interval date_of_birth drivers_license drug duration email_address "
    "event filename gender_sexuality healthcare_number injury ip_address language location "
    "marital_status medical_condition medical_process money_amount nationality number_sequence "
    "occupation organization passport_number password person_age person_name phone_number "
    "physical_attribute political_affiliation religion statistics time url us_social_security_number "
    "username vehicle_id zodiac_sign".split()
)
DEFAULT_PII_POLICIES = (
    "person_name",
    "phone_number",
    "email_address",
    "location",
    "date_of_birth",
    "us_social_security_number",
    "passport_number",
    "drivers_license",
    "healthcare_number",
    "credit_card_number",
    "credit_card_cvv",
    "credit_card_expiration",
    "banking_information",
    "account_number",
    "password",
)
DEFAULT_GREETING = (
    "Hello. This call is recorded and transcribed. Please leave your message after the beep, then hang up."
)
WEBHOOK_HEADER_NAME = "X-Callscribe-Webhook-Secret"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


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
    settings: Settings = current_app.extensions["settings"]
    return settings


# -- how a value is read --------------------------------------------------------


def _problem(message: str) -> PydanticCustomError:
    return PydanticCustomError("setting", message)


def _whole_number(low: int, high: int) -> Callable[[Any], int]:
    def read(value: Any) -> int:
        try:
            number = int(value)
        except ValueError:
            raise _problem(f"must be a whole number, not {value!r}") from None
        if not low <= number <= high:
            raise _problem(f"must be between {low} and {high}, not {number}")
        return number

    return read


def WholeNumber(low: int, high: int) -> Any:  # a type in the table below
    return Annotated[int, BeforeValidator(_whole_number(low, high))]


def _choice(options: tuple[str, ...], normalise: Callable[[str], str], says: str) -> Callable[[Any], str]:
    def read(value: Any) -> str:
        value = normalise(str(value))
        if value not in options:
            raise _problem(says.format(value=value))
        return value

    return read


FLAGS = {
    **dict.fromkeys(("1", "true", "yes", "on"), True),
    **dict.fromkeys(("0", "false", "no", "off"), False),
}


def _flag(value: Any) -> bool:
    """1 or 0 (true/false, yes/no, on/off are read too)."""
    flag = FLAGS.get(str(value).strip().lower())
    if flag is None:
        raise _problem(f"must be 1 or 0, not {value!r}")
    return flag


def _origin(*, https_only: bool) -> Callable[[Any], str]:
    """An origin (scheme://host[:port]) without a trailing slash.

    Plain http is accepted only for loopback hosts, which is what tests and a
    local reverse proxy use; anything public must be https.
    """

    def read(value: Any) -> str:
        parts = urlsplit(str(value))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _problem(f"must be an https URL such as https://example.com, not {value!r}")
        if https_only and parts.scheme != "https" and parts.hostname not in LOOPBACK_HOSTS:
            raise _problem(f"must use https (Twilio will not call plain http), not {value!r}")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise _problem(f"must be an origin with no path, e.g. {parts.scheme}://{parts.netloc}")
        return f"{parts.scheme}://{parts.netloc}"

    return read


def _e164(value: Any) -> str:
    try:
        number = phonenumbers.parse(str(value), None)
    except phonenumbers.NumberParseException as exc:
        raise _problem(f"must be an E.164 number such as +14155550100 ({exc})") from None
    if not phonenumbers.is_possible_number(number):
        raise _problem(f"{value!r} is not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _sid(prefix: str) -> Callable[[Any], str]:
    def read(value: Any) -> str:
        rest = str(value)[len(prefix) :]
        if not (
            str(value).startswith(prefix)
            and len(rest) == 32
            and all(c in "0123456789abcdefABCDEF" for c in rest)
        ):
            raise _problem(f"must be '{prefix}' followed by 32 hex digits")
        return str(value)

    return read


def _models(value: Any) -> tuple[str, ...]:
    models = tuple(m.strip() for m in str(value).split(",") if m.strip())
    if not models:
        raise _problem("needs at least one model")
    return models


def _pii_policies(value: Any) -> tuple[str, ...]:
    policies = tuple(p.strip().lower() for p in str(value).split(",") if p.strip())
    unknown = sorted(set(policies) - PII_POLICIES)
    if unknown:
        raise _problem(f"unknown policies: {', '.join(unknown)} (e.g. person_name,phone_number)")
    if not policies:
        raise _problem("needs at least one policy")
    return policies


def _language(value: Any) -> str:
    """'auto' for language detection, or a language code such as en_us or de."""
    value = str(value).lower()
    if value != "auto" and not all(c.isalpha() or c == "_" for c in value):
        raise _problem("must be 'auto' or a language code such as en_us")
    return value


def language_code(value: str) -> str:
    """A language as ASSEMBLYAI_LANGUAGE takes it; ValueError, with the reason, when it is not one."""
    try:
        return _language(value.strip())
    except PydanticCustomError as problem:
        raise ValueError(f"The language {problem.message()}.") from None


def _countries(value: Any) -> tuple[str, ...]:
    codes = tuple(c.strip().upper() for c in str(value).split(",") if c.strip())
    unknown = [c for c in codes if c not in phonenumbers.SUPPORTED_REGIONS]
    if unknown:
        raise _problem(f"unknown country codes: {', '.join(unknown)} (use e.g. US,GB)")
    return codes


ADMIN_PASSWORD_MIN_LENGTH = 12


def _admin_password(value: Any) -> str:
    """Long enough to resist guessing; ADMIN_PASSWORD_HASH is the way to keep a shorter one."""
    if len(str(value)) < ADMIN_PASSWORD_MIN_LENGTH:
        raise _problem(
            f"must be at least {ADMIN_PASSWORD_MIN_LENGTH} characters long "
            "(or set ADMIN_PASSWORD_HASH from `flask users hash` instead)"
        )
    return str(value)


def _password_hash(value: Any) -> str:
    """A hash from ``flask users hash``: werkzeug's method$salt$hash form."""
    if str(value).count("$") < 2:
        raise _problem("must be a hash printed by `flask users hash`")
    return str(value)


def _redis_url(value: Any) -> str:
    if not str(value).startswith(("redis://", "rediss://", "unix://")):
        raise _problem("must start with redis://, rediss:// or unix://")
    return str(value)


def _database_url(value: Any) -> str:
    value = str(value)
    # Heroku and others still hand out the old postgres:// scheme, which
    # SQLAlchemy no longer accepts; psycopg 3 is the driver we ship.
    for prefix in ("postgres://", "postgresql://"):
        if value.startswith(prefix):
            return "postgresql+psycopg://" + value[len(prefix) :]
    if value.startswith(("postgresql+", "sqlite:")):
        return value
    raise _problem("must be a postgres:// or sqlite:/// URL")


def read(reader: Callable[[Any], Any]) -> BeforeValidator:
    return BeforeValidator(reader)


def setting(
    variable: str,
    default: Any,
    help: str,
    *,
    secret: bool = False,
    hidden: bool = False,
    needed_for: str | None = None,
    or_: str | None = None,
    also: str | None = None,
) -> Any:
    """One row of the table: the variable, its default and what it is for.

    ``secret`` values are masked in every log line; ``hidden`` ones are only
    kept out of ``repr``. ``needed_for`` puts an unset variable on the setup
    checklist, unless the variable ``or_`` names is set. ``also`` is an
    older name still read.
    """
    extra: dict[str, Any] = {"secret": secret}
    if needed_for:
        extra["needed_for"] = needed_for
    if or_:
        extra["or"] = or_
    return Field(
        default,
        alias=variable,
        validation_alias=AliasChoices(variable, also) if also else variable,
        description=help,
        repr=not (secret or hidden),
        json_schema_extra=extra,
    )


class Settings(BaseModel):
    """Everything the service can be configured with. ``.env.example`` explains each in full."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    # -- identity and storage
    secret_key: str = setting("SECRET_KEY", None, "Signs session cookies; generated when unset.", secret=True)
    database_url: Annotated[str, read(_database_url)] = setting(
        "DATABASE_URL", None, "postgres://… or sqlite:///…; a SQLite file in the instance folder when unset."
    )
    # -- Twilio
    twilio_account_sid: Annotated[str | None, read(_sid("AC"))] = setting(
        "TWILIO_ACCOUNT_SID", None, "Account SID.", needed_for="placing calls and downloading recordings"
    )
    twilio_auth_token: str | None = setting(
        "TWILIO_AUTH_TOKEN",
        None,
        "Auth token: checks webhook signatures, downloads recordings.",
        secret=True,
        needed_for="checking Twilio webhooks, calls and recordings",
    )
    twilio_phone_number: Annotated[str | None, read(_e164)] = setting(
        "TWILIO_PHONE_NUMBER", None, "The Twilio number, E.164.", needed_for="placing outbound calls"
    )
    twilio_api_base_url: Annotated[str, read(_origin(https_only=True))] = setting(
        "TWILIO_API_BASE_URL", DEFAULT_TWILIO_API_BASE_URL, "Twilio's REST API origin."
    )
    # -- the public address
    base_url: Annotated[str | None, read(_origin(https_only=True))] = setting(
        "BASE_URL",
        None,
        "The https origin Twilio and AssemblyAI call back to.",
        needed_for="every webhook: Twilio and AssemblyAI call back to it",
    )
    # -- AssemblyAI
    assemblyai_api_key: str | None = setting(
        "ASSEMBLYAI_API_KEY",
        None,
        "API key.",
        secret=True,
        needed_for="transcription",
        also="ASSEMBLYAI_KEY",
    )
    assemblyai_base_url: Annotated[str, read(_origin(https_only=True))] = setting(
        "ASSEMBLYAI_BASE_URL", DEFAULT_ASSEMBLYAI_BASE_URL, "API origin (the EU one keeps data in the EU)."
    )
    assemblyai_speech_models: Annotated[tuple[str, ...], read(_models)] = setting(
        "ASSEMBLYAI_SPEECH_MODELS", DEFAULT_SPEECH_MODELS, "Speech models in priority order, comma-separated."
    )
    assemblyai_webhook_secret: str | None = setting(
        "ASSEMBLYAI_WEBHOOK_SECRET",
        None,
        "The header AssemblyAI sends back; derived when unset.",
        hidden=True,
    )
    assemblyai_language: Annotated[str | None, read(_language)] = setting(
        "ASSEMBLYAI_LANGUAGE", None, "A language code, or auto to detect it."
    )
    redact_pii: Annotated[bool, read(_flag)] = setting(
        "REDACT_PII", False, "1: transcripts are stored with personal data replaced by its kind."
    )
    redact_pii_policies: Annotated[tuple[str, ...], read(_pii_policies)] = setting(
        "REDACT_PII_POLICIES", DEFAULT_PII_POLICIES, "With REDACT_PII: the kinds of data removed (a, b, …)."
    )
    # -- the queue
    redis_url: Annotated[str | None, read(_redis_url)] = setting(
        "REDIS_URL", None, "Redis for the queue; a SQLite file when unset.", hidden=True
    )
    queue_name: str = setting("QUEUE_NAME", "callscribe", "Name of the queue.")
    # -- the dashboard
    admin_password: Annotated[str | None, read(_admin_password)] = setting(
        "ADMIN_PASSWORD",
        None,
        "Password of the dashboard user admin, at least 12 characters.",
        secret=True,
        needed_for="logging in to the dashboard (or add users with flask users add)",
        or_="ADMIN_PASSWORD_HASH",
    )
    admin_password_hash: Annotated[str | None, read(_password_hash)] = setting(
        "ADMIN_PASSWORD_HASH", None, "Or its hash from flask users hash.", hidden=True
    )
    session_idle_minutes: WholeNumber(1, 525600) = setting(  # type: ignore[valid-type]
        "SESSION_IDLE_MINUTES", 720, "Minutes without a page view before a session ends."
    )
    session_max_days: WholeNumber(1, 365) = setting(  # type: ignore[valid-type]
        "SESSION_MAX_DAYS", 7, "Days after logging in when a session ends, however busy."
    )
    trusted_proxies: WholeNumber(0, 10) = setting(  # type: ignore[valid-type]
        "TRUSTED_PROXIES",
        1,
        "Proxies in front of the app whose X-Forwarded-For and -Proto are believed.",
    )
    # -- calls
    forward_to: Annotated[str | None, read(_e164)] = setting(
        "FORWARD_TO", None, "Forward inbound calls here and record both parties; voicemail when unset."
    )
    recording_delivery: Annotated[
        Literal["upload", "url"],
        read(_choice(("upload", "url"), str.lower, "must be 'upload' or 'url', not {value!r}")),
    ] = setting("RECORDING_DELIVERY", "upload", "upload the audio, or hand over its url.")
    greeting: str = setting("GREETING", DEFAULT_GREETING, "What callers hear before the beep.")
    max_recording_seconds: WholeNumber(1, 14400) = setting(  # type: ignore[valid-type]
        "MAX_RECORDING_SECONDS", 3600, "Longest recording, in seconds."
    )
    # -- uploaded audio (flask transcribe, /upload)
    media_dir: str | None = setting(
        "MEDIA_DIR", None, "Folder that keeps uploaded audio; instance/media when unset."
    )
    max_upload_mb: WholeNumber(1, 100000) = setting(  # type: ignore[valid-type]
        "MAX_UPLOAD_MB", 500, "Largest audio file /upload accepts, in MB."
    )
    # -- retention
    delete_twilio_recording_after: Annotated[
        Literal["transcribed", "never"],
        read(_choice(("transcribed", "never"), str.lower, "must be 'transcribed' or 'never', not {value!r}")),
    ] = setting(
        "DELETE_TWILIO_RECORDING_AFTER",
        "never",
        "transcribed: delete each recording at Twilio once its transcript is stored; never.",
    )
    keep_audio: Annotated[bool, read(_flag)] = setting(
        "KEEP_AUDIO", False, "1: keep a copy of each recording in MEDIA_DIR, to play after Twilio's is gone."
    )
    retention_days: Annotated[int | None, read(_whole_number(1, 36500))] = setting(
        "RETENTION_DAYS", None, "Delete whole calls older than this many days; unset keeps everything."
    )
    # -- background work
    reconcile_interval: WholeNumber(5, 86400) = setting(  # type: ignore[valid-type]
        "RECONCILE_INTERVAL", 120, "Seconds between reconciliation runs."
    )
    http_timeout: Annotated[float, read(lambda v: float(_whole_number(1, 600)(v)))] = setting(
        "HTTP_TIMEOUT", 30.0, "Seconds to wait for a provider's answer."
    )
    job_max_attempts: WholeNumber(1, 50) = setting(  # type: ignore[valid-type]
        "JOB_MAX_ATTEMPTS", 8, "Failed attempts before a recording shows as failed."
    )
    job_timeout: WholeNumber(5, 86400) = setting(  # type: ignore[valid-type]
        "JOB_TIMEOUT", 900, "Seconds a job may hold a recording before it counts as crashed."
    )
    worker_threads: WholeNumber(1, 64) = setting(  # type: ignore[valid-type]
        "WORKER_THREADS", 2, "Jobs one worker process runs at once."
    )
    # -- limits on /dial
    dial_countries: Annotated[tuple[str, ...] | None, read(_countries)] = setting(
        "DIAL_ALLOWED_COUNTRIES", None, "ISO codes /dial may call; the Twilio number's country when unset."
    )
    dial_per_user_per_hour: WholeNumber(0, 10000) = setting(  # type: ignore[valid-type]
        "DIAL_PER_USER_PER_HOUR", 10, "Calls one user may place per hour."
    )
    dial_per_hour: WholeNumber(0, 100000) = setting(  # type: ignore[valid-type]
        "DIAL_PER_HOUR", 30, "Calls all users may place per hour."
    )
    dial_daily_limit: WholeNumber(0, 1000000) = setting(  # type: ignore[valid-type]
        "DIAL_DAILY_LIMIT", 100, "Calls all users may place per 24 hours."
    )
    log_level: Annotated[
        Literal["DEBUG", "INFO", "WARNING", "ERROR"],
        read(_choice(LOG_LEVELS, str.upper, "must be DEBUG, INFO, WARNING or ERROR")),
    ] = setting("LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR.")

    # Not a variable: whether SECRET_KEY came from the instance folder.
    secret_key_generated: bool = False

    @classmethod
    def variables(cls) -> dict[str, str]:
        """Every environment variable in the table, with its help text."""
        return {f.alias: f.description or "" for f in cls.model_fields.values() if f.alias}

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, instance_path: str = "instance"
    ) -> Settings:
        """Parse and validate; raise :class:`ConfigError` naming the bad variable."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in cls.model_fields.values():
            choices = (
                field.validation_alias.choices if isinstance(field.validation_alias, AliasChoices) else []
            )
            for name in [field.alias, *choices]:
                value = env.get(str(name)) if name else None
                if value is not None and value.strip():
                    values[str(name)] = value.strip()
        if "SECRET_KEY" not in values:
            values.update(SECRET_KEY=_instance_secret_key(instance_path), secret_key_generated=True)
        values.setdefault("DATABASE_URL", _default_database(instance_path))
        try:
            return cls.model_validate(values)
        except ValidationError as invalid:
            error = invalid.errors()[0]
            raise ConfigError(str(error["loc"][0]), error["msg"]) from None

    # Derived values -----------------------------------------------------

    @property
    def webhook_secret(self) -> str:
        """The header value AssemblyAI must send back: set on its own, or derived."""
        if self.assemblyai_webhook_secret:
            return self.assemblyai_webhook_secret
        digest = hmac.new(self.secret_key.encode(), b"assemblyai-webhook", hashlib.sha256)
        return digest.hexdigest()

    @property
    def dial_allowed_countries(self) -> tuple[str, ...]:
        """ISO country codes /dial may call; by default the Twilio number's own country."""
        if self.dial_countries is not None:
            return self.dial_countries
        if self.twilio_phone_number is None:
            return ()
        number = phonenumbers.parse(self.twilio_phone_number, None)
        region = phonenumbers.region_code_for_number(number)
        return (region,) if region else ()

    def value(self, variable: str) -> Any:
        """The value of an environment variable of the table, by its name."""
        for name, field in type(self).model_fields.items():
            if field.alias == variable:
                return getattr(self, name)
        raise KeyError(variable)

    def missing(self) -> list[tuple[str, str]]:
        """Variables still to set, each with what does not work without it."""
        gaps = []
        for name, field in type(self).model_fields.items():
            extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
            needed_for = extra.get("needed_for")
            alternative = extra.get("or")
            if needed_for and not getattr(self, name):
                if not (alternative and self.value(str(alternative))):
                    gaps.append((str(field.alias), str(needed_for)))
        return gaps

    def secrets(self) -> list[str]:
        """Every secret value, so that log filters and tests can look for them."""
        values = [
            getattr(self, name)
            for name, field in type(self).model_fields.items()
            if isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get("secret")
        ]
        values.append(self.webhook_secret)
        if self.twilio_account_sid and self.twilio_auth_token:
            # The Authorization header as it goes to Twilio.
            basic = f"{self.twilio_account_sid}:{self.twilio_auth_token}".encode()
            values.append(base64.b64encode(basic).decode())
        return [v for v in values if v]


def _default_database(instance_path: str) -> str:
    return f"sqlite:///{os.path.join(os.path.abspath(instance_path), 'callscribe.db')}"


def _instance_secret_key(instance_path: str) -> str:
    """A random key kept in the instance folder, so a first run just works.

    Every gunicorn worker and the queue worker read the same file, so
    sessions and the webhook secret agree across processes. A deployment
    should set SECRET_KEY: the file is lost with an ephemeral disk.
    """
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
