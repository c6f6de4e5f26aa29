"""Scripts call /dial with an API token instead of a session and its CSRF token."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from app.models import ApiToken, db
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import login

PASSWORD = "a long enough password"


def token_for(app: Flask, username: str = "ada") -> str:
    runner = app.test_cli_runner()
    runner.invoke(args=["users", "add", username, "--password-stdin"], input=PASSWORD + "\n")
    result = runner.invoke(args=["users", "token", username])
    assert result.exit_code == 0, result.output
    return result.output.splitlines()[0]


def test_a_script_dials_with_its_token(app: Flask, twilio_api: FakeTwilio) -> None:
    token = token_for(app)
    assert token.startswith("cs_") and len(token) > 40
    response = app.test_client().post(
        "/dial", json={"to": "+14155550123"}, headers={"Authorization": f"Bearer {token}"}, csrf=False
    )
    assert response.status_code == 201
    assert len(twilio_api.calls_created) == 1
    with app.app_context():
        stored = db.session.scalar(select(ApiToken.token_hash))
        assert stored and token not in stored


def test_a_wrong_token_is_refused_even_beside_a_valid_session(app: Flask, twilio_api: FakeTwilio) -> None:
    client = app.test_client()
    login(client)
    response = client.post(
        "/dial", json={"to": "+14155550123"}, headers={"Authorization": "Bearer cs_wrong"}, csrf=False
    )
    assert response.status_code == 401
    assert twilio_api.calls_created == []


def test_a_token_for_an_unknown_user_is_refused(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["users", "token", "nobody"])
    assert result.exit_code != 0 and "no user nobody" in result.output
