"""Settings are parsed once; a bad value is an error that names its variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import ConfigError, Settings


def settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env(env, instance_path=str(tmp_path))


def test_defaults_need_no_configuration(tmp_path: Path) -> None:
    s = settings(tmp_path)
    assert s.database_url == f"sqlite:///{tmp_path}/callscribe.db"
    assert s.assemblyai_base_url == "https://api.assemblyai.com"
    assert s.assemblyai_speech_models == ("universal-3-pro", "universal-2")
    assert s.recording_delivery == "upload"
    assert s.reconcile_interval == 120
    assert s.redis_url is None


def test_missing_credentials_are_listed_not_fatal(tmp_path: Path) -> None:
    missing = [name for name, _ in settings(tmp_path).missing()]
    assert missing == [
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "TWILIO_PHONE_NUMBER",
        "BASE_URL",
        "ASSEMBLYAI_API_KEY",
        "ADMIN_PASSWORD",
    ]


def test_generated_secret_key_is_kept_in_the_instance_folder(tmp_path: Path) -> None:
    first, second = settings(tmp_path), settings(tmp_path)
    assert first.secret_key_generated
    assert len(first.secret_key) == 64
    assert first.secret_key == second.secret_key
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_tutorial_alias_for_the_assemblyai_key(tmp_path: Path) -> None:
    assert settings(tmp_path, ASSEMBLYAI_KEY="abc123").assemblyai_api_key == "abc123"
    both = settings(tmp_path, ASSEMBLYAI_KEY="old", ASSEMBLYAI_API_KEY="new")
    assert both.assemblyai_api_key == "new"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@db.example:5432/calls", "postgresql+psycopg://u:p@db.example:5432/calls"),
        ("postgresql://u@localhost/calls", "postgresql+psycopg://u@localhost/calls"),
        ("sqlite:////var/data/calls.db", "sqlite:////var/data/calls.db"),
    ],
)
def test_database_url_forms(tmp_path: Path, given: str, expected: str) -> None:
    assert settings(tmp_path, DATABASE_URL=given).database_url == expected


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("BASE_URL", "http://callscribe.example", "https"),
        ("BASE_URL", "https://callscribe.example/app", "no path"),
        ("BASE_URL", "callscribe.example", "https URL"),
        ("ASSEMBLYAI_SPEECH_MODELS", " , ", "at least one model"),
        ("ASSEMBLYAI_BASE_URL", "http://api.assemblyai.com", "https"),
        ("RECORDING_DELIVERY", "email", "'upload' or 'url'"),
        ("MAX_RECORDING_SECONDS", "ten", "whole number"),
        ("RECONCILE_INTERVAL", "3", "between 5"),
        ("TWILIO_ACCOUNT_SID", "not-a-sid", "32 hex"),
        ("TWILIO_PHONE_NUMBER", "555-0100", "E.164"),
        ("FORWARD_TO", "+1", "E.164"),
        ("DATABASE_URL", "mysql://x", "postgres"),
        ("REDIS_URL", "localhost:6379", "redis://"),
        ("ADMIN_PASSWORD", "eleven char", "at least 12 characters"),
        ("TRUSTED_PROXIES", "-1", "between 0"),
        ("TRUSTED_PROXIES", "one", "whole number"),
    ],
)
def test_bad_values_name_the_variable(tmp_path: Path, variable: str, value: str, says: str) -> None:
    with pytest.raises(ConfigError) as error:
        settings(tmp_path, **{variable: value})
    assert error.value.variable == variable
    assert str(error.value).startswith(f"{variable}: ")
    assert says in str(error.value)


def test_admin_password_of_twelve_characters_is_enough(tmp_path: Path) -> None:
    assert settings(tmp_path, ADMIN_PASSWORD="twelve chars").admin_password == "twelve chars"


def test_one_proxy_is_trusted_by_default(tmp_path: Path) -> None:
    assert settings(tmp_path).trusted_proxies == 1
    assert settings(tmp_path, TRUSTED_PROXIES="0").trusted_proxies == 0


def test_base_url_loses_its_trailing_slash(tmp_path: Path) -> None:
    assert settings(tmp_path, BASE_URL="https://abc.ngrok.app/").base_url == "https://abc.ngrok.app"


def test_loopback_http_is_allowed_for_local_proxies_and_tests(tmp_path: Path) -> None:
    s = settings(tmp_path, ASSEMBLYAI_BASE_URL="http://127.0.0.1:8081")
    assert s.assemblyai_base_url == "http://127.0.0.1:8081"


def test_webhook_secret_is_derived_unless_set(tmp_path: Path) -> None:
    derived = settings(tmp_path, SECRET_KEY="k1").webhook_secret
    assert derived == settings(tmp_path, SECRET_KEY="k1").webhook_secret
    assert derived != settings(tmp_path, SECRET_KEY="k2").webhook_secret
    assert "k1" not in derived
    assert settings(tmp_path, ASSEMBLYAI_WEBHOOK_SECRET="mine").webhook_secret == "mine"


def test_secrets_stay_out_of_repr(tmp_path: Path) -> None:
    s = settings(tmp_path, TWILIO_AUTH_TOKEN="tok-secret", ASSEMBLYAI_API_KEY="key-secret")
    assert "tok-secret" not in repr(s)
    assert "key-secret" not in repr(s)
