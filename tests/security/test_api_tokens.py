"""Scripts call /dial with an API token instead of a session and its CSRF token."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from app.models import ApiToken, DialAttempt, db, utcnow
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


def dial_with(client: FlaskClient, token: str) -> Any:
    return client.post(
        "/dial", json={"to": "+14155550123"}, headers={"Authorization": f"Bearer {token}"}, csrf=False
    )


def test_a_bearer_token_beside_a_session_acts_as_the_tokens_user_alone(
    app: Flask, twilio_api: FakeTwilio
) -> None:
    token = token_for(app, "dialer")
    client = app.test_client()
    login(client)  # an admin's session cookie rides along
    assert dial_with(client, token).status_code == 201
    with app.app_context():
        (attempt,) = db.session.scalars(select(DialAttempt)).all()
        token_id = db.session.scalar(select(ApiToken.id))
        assert (attempt.username, attempt.auth_method) == ("dialer", f"token:{token_id}")


def test_a_user_holds_several_tokens_and_one_is_revoked_alone(app: Flask, twilio_api: FakeTwilio) -> None:
    first = token_for(app)
    runner = app.test_cli_runner()
    second = runner.invoke(args=["users", "token", "ada", "--scope", "calls:dial"]).output.splitlines()[0]
    listing = runner.invoke(args=["users", "tokens", "ada"]).output.splitlines()
    assert len(listing) == 2 and all("active" in line for line in listing)
    first_id = listing[0].split("\t")[0]
    assert runner.invoke(args=["users", "revoke", first_id]).exit_code == 0
    assert dial_with(app.test_client(), first).status_code == 401
    assert dial_with(app.test_client(), second).status_code == 201
    assert "revoked" in runner.invoke(args=["users", "tokens", "ada"]).output.splitlines()[0]


def test_an_expired_token_is_refused(app: Flask, twilio_api: FakeTwilio) -> None:
    runner = app.test_cli_runner()
    runner.invoke(args=["users", "add", "ada", "--password-stdin"], input=PASSWORD + "\n")
    result = runner.invoke(args=["users", "token", "ada", "--expires", "30d"])
    token, info = result.output.splitlines()[:2]
    assert "valid" in info and "UTC" in info
    assert dial_with(app.test_client(), token).status_code == 201
    with app.app_context():
        db.session.execute(update(ApiToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert dial_with(app.test_client(), token).status_code == 401
    bad = runner.invoke(args=["users", "token", "ada", "--expires", "soon"])
    assert bad.exit_code == 1 and "30d" in bad.output


def test_a_tokens_last_use_is_written_at_most_once_a_minute(app: Flask) -> None:
    token = token_for(app)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    def last_used() -> Any:
        with app.app_context():
            value = db.session.scalar(select(ApiToken.last_used_at))
            db.session.rollback()
            return value

    assert last_used() is None
    app.test_client().get("/", headers=headers)
    first = last_used()
    assert first is not None
    for _ in range(3):
        app.test_client().get("/", headers=headers)
    assert last_used() == first, "no write on every request"
    with app.app_context():
        db.session.execute(update(ApiToken).values(last_used_at=first - timedelta(seconds=61)))
        db.session.commit()
    app.test_client().get("/", headers=headers)
    assert last_used() > first - timedelta(seconds=61)


def test_a_new_user_is_a_member_and_the_environments_admin_an_admin(app: Flask) -> None:
    runner = app.test_cli_runner()
    runner.invoke(args=["users", "add", "ada", "--password-stdin"], input=PASSWORD + "\n")
    assert runner.invoke(args=["users", "list"]).output.strip() == "ada\tmember"
    client = app.test_client()
    login(client)
    assert client.get("/users").status_code == 200
