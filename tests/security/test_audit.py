"""Every /dial attempt is on the audit trail: who, how, from where, which number, what came of it."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from app.models import ApiToken, db
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import dial_attempts, login

PASSWORD = "a long enough password"


def test_a_refused_number_leaves_an_audit_row_with_method_and_address(
    app: Flask, twilio_api: FakeTwilio
) -> None:
    client = app.test_client()
    login(client)
    answer = client.post(
        "/dial",
        json={"to": "not a number"},
        environ_base={"REMOTE_ADDR": "127.0.0.1"},
        headers={"X-Forwarded-For": "203.0.113.9"},
    )
    assert answer.status_code == 400
    (row,) = dial_attempts(app)
    assert (row.username, row.auth_method, row.client_address) == ("admin", "session", "203.0.113.9")
    assert (row.to_number, row.outcome) == ("not a number", "refused")
    assert row.reason and "E.164" in row.reason
    assert twilio_api.calls_created == []


def test_a_token_dial_names_its_token(app: Flask, twilio_api: FakeTwilio) -> None:
    runner = app.test_cli_runner()
    runner.invoke(args=["users", "add", "dialer", "--password-stdin"], input=PASSWORD + "\n")
    token = runner.invoke(args=["users", "token", "dialer"]).output.splitlines()[0]
    answer = app.test_client().post(
        "/dial", json={"to": "+14155550123"}, headers={"Authorization": f"Bearer {token}"}, csrf=False
    )
    assert answer.status_code == 201
    with app.app_context():
        token_id = db.session.scalar(select(ApiToken.id))
    (row,) = dial_attempts(app)
    assert (row.username, row.auth_method, row.outcome) == ("dialer", f"token:{token_id}", "placed")


def test_a_viewer_refused_by_role_is_on_the_trail(app: Flask, twilio_api: FakeTwilio) -> None:
    runner = app.test_cli_runner()
    runner.invoke(
        args=["users", "add", "vera", "--role", "viewer", "--password-stdin"], input=PASSWORD + "\n"
    )
    client = app.test_client()
    client.post("/login", data={"username": "vera", "password": PASSWORD})
    assert client.post("/dial", json={"to": "+14155550123"}).status_code == 403
    (row,) = dial_attempts(app)
    assert (row.username, row.outcome, row.to_number) == ("vera", "refused", "+14155550123")
    assert row.reason and "viewer" in row.reason


def test_admins_read_the_trail_on_the_users_page_and_with_flask_audit(
    app: Flask, twilio_api: FakeTwilio
) -> None:
    client = app.test_client()
    login(client)
    client.post("/dial", json={"to": "+14155550123"})
    client.post("/dial", json={"to": "+1900"})
    page = client.get("/users").get_data(as_text=True)
    assert "+14155550123" in page and "+1900" in page and "refused" in page and "placed" in page
    printed = app.test_cli_runner().invoke(args=["audit"]).output.splitlines()
    assert len(printed) == 2
    assert printed[0].split("\t")[1:6] == ["admin", "session", "127.0.0.1", "+1900", "refused"]
    assert printed[1].split("\t")[4:6] == ["+14155550123", "placed"]
