"""Sessions that really end: on logout, a new password, a new role or removal, when idle, and when old.

Each test copies the session cookie as an attacker who stole it would, and
replays it afterwards.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient

from tests.helpers import ADMIN_PASSWORD, login

PASSWORD = "a long enough password"


def cookie_of(client: FlaskClient) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None, "no session cookie"
    return cookie.value


def replay(app: Flask, cookie: str, path: str = "/") -> int:
    """A second browser that only has the copied cookie."""
    thief = app.test_client()
    thief.set_cookie("session", cookie)
    return int(thief.get(path).status_code)


def add_user(app: Flask, name: str = "ada", role: str = "member") -> None:
    result = app.test_cli_runner().invoke(
        args=["users", "add", name, "--role", role, "--password-stdin"], input=PASSWORD + "\n"
    )
    assert result.exit_code == 0, result.output


def logged_in_as(app: Flask, name: str) -> FlaskClient:
    client = app.test_client()
    assert client.post("/login", data={"username": name, "password": PASSWORD}).status_code == 302
    return client


def test_a_copied_cookie_no_longer_opens_anything_after_logout(app: Flask) -> None:
    client = app.test_client()
    login(client)
    stolen = cookie_of(client)
    assert replay(app, stolen) == 200
    assert client.post("/logout").status_code == 302
    assert replay(app, stolen) == 302, "the page must send the cookie's holder to log in"
    assert replay(app, stolen, "/recordings/1/audio") == 302


def test_logout_ends_the_users_other_sessions_too(app: Flask) -> None:
    laptop, phone = app.test_client(), app.test_client()
    login(laptop)
    login(phone)
    laptop.post("/logout")
    assert phone.get("/").status_code == 302


def test_a_new_password_ends_every_session(app: Flask) -> None:
    add_user(app)
    client = logged_in_as(app, "ada")
    stolen = cookie_of(client)
    result = app.test_cli_runner().invoke(
        args=["users", "passwd", "ada", "--password-stdin"], input="another long password\n"
    )
    assert result.exit_code == 0
    assert replay(app, stolen) == 302


def test_a_new_role_ends_every_session(app: Flask) -> None:
    add_user(app)
    client = logged_in_as(app, "ada")
    stolen = cookie_of(client)
    assert app.test_cli_runner().invoke(args=["users", "role", "ada", "viewer"]).exit_code == 0
    assert replay(app, stolen) == 302
    viewer = logged_in_as(app, "ada")
    assert viewer.post("/dial", json={"to": "+14155550123"}).status_code == 403


def test_removal_ends_every_session(app: Flask) -> None:
    add_user(app)
    stolen = cookie_of(logged_in_as(app, "ada"))
    assert app.test_cli_runner().invoke(args=["users", "remove", "ada"]).exit_code == 0
    assert replay(app, stolen) == 302


def test_an_idle_session_ends(make_app: Callable[..., Flask]) -> None:
    app = make_app(SESSION_IDLE_MINUTES="30")
    client = app.test_client()
    login(client)
    with client.session_transaction() as session:
        session["seen"] -= 29 * 60  # 29 minutes without a page view
    assert client.get("/").status_code == 200, "still within the idle limit"
    with client.session_transaction() as session:
        session["seen"] -= 31 * 60
    assert client.get("/").status_code == 302


def test_a_busy_session_still_ends_at_the_absolute_limit(make_app: Callable[..., Flask]) -> None:
    app = make_app(SESSION_MAX_DAYS="2")
    client = app.test_client()
    login(client)
    with client.session_transaction() as session:
        session["since"] -= 2 * 86400 + 1  # logged in two days ago, busy ever since
    assert client.get("/").status_code == 302


def test_the_idle_clock_moves_in_the_cookie_not_the_database(app: Flask) -> None:
    client = app.test_client()
    login(client)
    with client.session_transaction() as session:
        session["seen"] -= 120
        before = session["seen"]
    assert client.get("/").status_code == 200
    with client.session_transaction() as session:
        assert session["seen"] >= before + 120


def test_login_renews_the_session_and_its_csrf_secret(app: Flask) -> None:
    client = app.test_client()
    client.get("/login")
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"  # session fixation: a value set before login
        csrf_before = session.get("csrf_token")
    assert csrf_before, "the login form put a CSRF secret in the session"
    assert client.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD}).status_code == 302
    with client.session_transaction() as session:
        assert "planted" not in session
        assert session.get("csrf_token") != csrf_before
