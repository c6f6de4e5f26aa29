"""REDACT_PII: what AssemblyAI is asked for, checked against its OpenAPI spec."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from app.config import DEFAULT_PII_POLICIES, ConfigError, Settings
from tests.fakes.assemblyai_api import FakeAssemblyAI
from tests.fakes.openapi import validate_transcript_params
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import full_env, login
from tests.pages import Calls


def submitted(
    make_app: Callable[..., Flask], twilio: FakeTwilio, assemblyai: FakeAssemblyAI, **env: str
) -> dict[str, Any]:
    app = make_app(**env)
    client = app.test_client()
    login(client)
    Calls(app, client, twilio, assemblyai).recorded(1)
    [submission] = assemblyai.submissions
    validate_transcript_params(submission)
    return submission


def test_redaction_asks_for_the_default_policies_replaced_by_their_kind(
    make_app: Callable[..., Flask], twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    body = submitted(make_app, twilio_api, assemblyai_api, REDACT_PII="1")

    assert body["redact_pii"] is True and body["redact_pii_sub"] == "entity_name"
    assert body["redact_pii_policies"] == list(DEFAULT_PII_POLICIES)
    assert "person_name" in body["redact_pii_policies"] and "phone_number" in body["redact_pii_policies"]


def test_the_policies_can_be_chosen(
    make_app: Callable[..., Flask], twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    body = submitted(
        make_app,
        twilio_api,
        assemblyai_api,
        REDACT_PII="1",
        REDACT_PII_POLICIES="person_name, Medical_Condition",
    )

    assert body["redact_pii_policies"] == ["person_name", "medical_condition"]


def test_without_redact_pii_nothing_is_redacted(
    make_app: Callable[..., Flask], twilio_api: FakeTwilio, assemblyai_api: FakeAssemblyAI
) -> None:
    body = submitted(make_app, twilio_api, assemblyai_api, REDACT_PII_POLICIES="person_name")

    assert not {"redact_pii", "redact_pii_policies", "redact_pii_sub"} & set(body)


@pytest.mark.parametrize("value", ["person_name,shoe_size", " , "])
def test_an_unknown_policy_is_refused_at_start_up_by_name(value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({**full_env(None, None), "REDACT_PII_POLICIES": value})

    assert "REDACT_PII_POLICIES" in str(refused.value)
