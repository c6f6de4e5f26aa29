"""Several users, passwords only as hashes, sessions that end, logins that are throttled."""

from __future__ import annotations

import re
import runpy
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from flask import Flask
from sqlalchemy import select

from app import auth
from app.models import User, db
from tests.helpers import ADMIN_PASSWORD, password_checks

PASSWORD = "a long enough password"


def flask(app: Flask, *args: str, stdin: str | None = None) -> str:
    result = app.test_cli_runner().invoke(args=list(args), input=stdin)
    assert result.exit_code == 0, result.output
    return result.output


def log_in(app: Flask, username: str, password: str) -> tuple[int, object]:
    client = app.test_client()
    response = client.post("/login", data={"username": username, "password": password})
    return response.status_code, client


def test_added_user_logs_in_and_only_a_hash_is_stored(app: Flask) -> None:
    assert "added ada" in flask(app, "users", "add", "ada", "--password-stdin", stdin=PASSWORD + "\n")
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "ada"))
        assert user is not None
        assert PASSWORD not in user.password_hash and user.password_hash.startswith(("scrypt:", "pbkdf2:"))
    status, client = log_in(app, "ada", PASSWORD)
    assert status == 302
    assert client.get("/").status_code == 200  # type: ignore[attr-defined]
    assert log_in(app, "ada", "wrong password!")[0] == 401
    assert "ada" in flask(app, "users", "list")


def test_short_password_and_duplicate_user_are_refused(app: Flask) -> None:
    short = app.test_cli_runner().invoke(args=["users", "add", "bob", "--password-stdin"], input="short\n")
    assert short.exit_code != 0 and "at least 10" in short.output
    flask(app, "users", "add", "bob", "--password-stdin", stdin=PASSWORD + "\n")
    again = app.test_cli_runner().invoke(
        args=["users", "add", "bob", "--password-stdin"], input=PASSWORD + "\n"
    )
    assert again.exit_code != 0 and "exists already" in again.output


def test_changing_a_password_ends_open_sessions(app: Flask) -> None:
    flask(app, "users", "add", "ada", "--password-stdin", stdin=PASSWORD + "\n")
    _, client = log_in(app, "ada", PASSWORD)
    assert client.get("/").status_code == 200  # type: ignore[attr-defined]
    flask(app, "users", "passwd", "ada", "--password-stdin", stdin="another long password\n")
    assert client.get("/").status_code == 302  # type: ignore[attr-defined]
    assert log_in(app, "ada", PASSWORD)[0] == 401
    assert log_in(app, "ada", "another long password")[0] == 302


def test_removing_a_user_ends_their_sessions(app: Flask) -> None:
    flask(app, "users", "add", "ada", "--password-stdin", stdin=PASSWORD + "\n")
    _, client = log_in(app, "ada", PASSWORD)
    assert "removed ada" in flask(app, "users", "remove", "ada")
    assert client.get("/").status_code == 302  # type: ignore[attr-defined]


def test_first_user_from_the_environment_until_one_is_added(app: Flask) -> None:
    assert log_in(app, "admin", ADMIN_PASSWORD)[0] == 302
    flask(app, "users", "add", "admin", "--password-stdin", stdin=PASSWORD + "\n")
    assert log_in(app, "admin", ADMIN_PASSWORD)[0] == 401, "the database's admin wins"
    assert log_in(app, "admin", PASSWORD)[0] == 302


def test_admin_password_hash_from_the_environment(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    hashed = flask(app, "users", "hash", "--password-stdin", stdin=PASSWORD + "\n").strip()
    assert PASSWORD not in hashed
    app = make_app(ADMIN_PASSWORD=None, ADMIN_PASSWORD_HASH=hashed)
    assert log_in(app, "admin", PASSWORD)[0] == 302
    assert log_in(app, "admin", ADMIN_PASSWORD)[0] == 401


def failed_login_answer(app: Flask, username: str, password: str) -> tuple[int, str]:
    """Status and page of a failed login, with what may differ between two
    honest answers (the CSRF token, the name the user typed) put aside."""
    response = app.test_client().post("/login", data={"username": username, "password": password})
    body = response.get_data(as_text=True)
    body = re.sub(r'name="csrf_token" value="[^"]*"', 'name="csrf_token" value="TOKEN"', body)
    return response.status_code, body.replace(username, "USERNAME")


def test_unknown_users_fail_like_wrong_passwords(app: Flask) -> None:
    flask(app, "users", "add", "adalovelace", "--password-stdin", stdin=PASSWORD + "\n")
    unknown = failed_login_answer(app, "nobody", PASSWORD)
    wrong_password = failed_login_answer(app, "adalovelace", "wrong password!")
    assert wrong_password[0] == 401
    assert re.findall(r'<p class="flash[^"]*"[^>]*>([^<]*)</p>', wrong_password[1]) == [
        "Wrong username or password."
    ]
    assert unknown == wrong_password


def test_every_wrong_password_costs_one_check_of_the_same_hash_method(
    make_app: Callable[..., Flask],
) -> None:
    """A wrong password for the admin of ADMIN_PASSWORD, of ADMIN_PASSWORD_HASH, for a
    database user or for a name that does not exist: each is one werkzeug check
    with the same method, so no answer is faster than another."""
    app = make_app()
    flask(app, "users", "add", "ada", "--password-stdin", stdin=PASSWORD + "\n")
    hashed = flask(app, "users", "hash", "--password-stdin", stdin=PASSWORD + "\n").strip()
    from_hash = make_app(ADMIN_PASSWORD=None, ADMIN_PASSWORD_HASH=hashed)
    work = {}
    for kind, target, username in [
        ("database user", app, "ada"),
        ("ADMIN_PASSWORD", app, "admin"),
        ("ADMIN_PASSWORD_HASH", from_hash, "admin"),
        ("unknown name", app, "nobody"),
    ]:
        client = target.test_client()
        client.get("/login")
        with password_checks() as checks:
            response = client.post("/login", data={"username": username, "password": "wrong password!"})
        assert response.status_code == 401, kind
        work[kind] = checks
    assert work["database user"] == [hashed.split("$", 1)[0]], "one check of the default method"
    assert work == dict.fromkeys(work, work["database user"])


def test_the_admin_of_admin_password_logs_in_through_the_same_check(app: Flask) -> None:
    with password_checks() as checks:
        assert log_in(app, "admin", ADMIN_PASSWORD)[0] == 302
    assert len(checks) == 1


def test_a_hash_for_admin_password_hash_needs_the_admin_length(app: Flask) -> None:
    """ADMIN_PASSWORD needs 12 characters; the password behind ADMIN_PASSWORD_HASH too."""
    short = app.test_cli_runner().invoke(args=["users", "hash", "--password-stdin"], input="eleven char\n")
    assert short.exit_code == 1 and "at least 12" in short.output


def test_the_stand_in_hash_is_made_by_web_workers_as_they_start_not_on_import() -> None:
    """A scrypt hash costs 100 ms and 32 MiB: the worker and the CLI, which never check a
    password, do not pay it; a web worker pays it before its first login, not during it."""
    repo = Path(__file__).resolve().parents[2]
    code = "import app.auth as a; print(a.dummy_hash.cache_info().currsize)"
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo)
    assert imported.returncode == 0 and imported.stdout.strip() == "0", imported.stderr
    auth.dummy_hash.cache_clear()
    runpy.run_path(str(repo / "gunicorn.conf.py"))["post_worker_init"](None)
    assert auth.dummy_hash.cache_info().currsize == 1
