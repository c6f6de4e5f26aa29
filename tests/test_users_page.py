"""/users: admins add users, change roles, make and revoke tokens from the page."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.models import ApiToken, User, db
from tests.helpers import login

PASSWORD = "a long enough password"


def admin(app: Flask) -> FlaskClient:
    client = app.test_client()
    login(client)
    return client


def user_roles(app: Flask) -> dict[str, str]:
    with app.app_context():
        roles = {name: role for name, role in db.session.execute(select(User.username, User.role))}
        db.session.rollback()
        return roles


def test_an_admin_adds_a_user_with_a_role_and_changes_it(app: Flask) -> None:
    client = admin(app)
    added = client.post("/users", data={"username": "vera", "password": PASSWORD, "role": "viewer"})
    assert added.status_code == 302 and user_roles(app) == {"vera": "viewer"}
    assert client.post("/users/vera/role", data={"role": "member"}).status_code == 302
    assert user_roles(app) == {"vera": "member"}
    page = client.get("/users").get_data(as_text=True)
    assert "vera" in page and 'value="member" selected' in page


def test_a_bad_form_is_a_400_that_says_why_and_stores_nothing(app: Flask) -> None:
    client = admin(app)
    short = client.post("/users", data={"username": "vera", "password": "short", "role": "viewer"})
    assert short.status_code == 400 and "at least 10" in short.get_data(as_text=True)
    odd = client.post("/users", data={"username": "vera", "password": PASSWORD, "role": "overlord"})
    assert odd.status_code == 400
    assert client.post("/users/nobody/role", data={"role": "viewer"}).status_code == 400
    assert user_roles(app) == {}


def test_a_token_made_on_the_page_is_shown_once_and_can_be_revoked(app: Flask) -> None:
    client = admin(app)
    client.post("/users", data={"username": "bot", "password": PASSWORD, "role": "member"})
    made = client.post(
        "/users/bot/tokens", data={"scope": ["calls:read"], "expires": "7d"}, follow_redirects=True
    )
    token = re.search(r"(cs_[0-9a-f]{48})", made.get_data(as_text=True))
    assert token, "the new token is shown"
    bearer = {"Authorization": f"Bearer {token.group(1)}", "Accept": "application/json"}
    assert app.test_client().get("/", headers=bearer).status_code == 200
    assert token.group(1) not in client.get("/users").get_data(as_text=True), "shown only once"
    with app.app_context():
        row = db.session.scalars(select(ApiToken)).one()
        assert (row.scopes, row.expires_at is not None) == ("calls:read", True)
        token_id = row.id
    assert client.post(f"/tokens/{token_id}/revoke").status_code == 302
    assert app.test_client().get("/", headers=bearer).status_code == 401
