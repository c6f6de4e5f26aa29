"""Every route, for every role and token scope, generated from the marks on the views.

* Allowed gets 2xx (or the redirect a form answers with).
* Refused gets 403, and changes nothing in the database but its audit row.
* Without credentials a page redirects to /login; JSON and bearer requests get 401.
* A route nobody marked is refused to everyone.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.security import generate_password_hash

from app.access import ROLE_PERMISSIONS, TOKEN_SCOPES, Permission, Role, rule_for
from app.models import ApiToken, Call, DialAttempt, IdempotencyKey, Recording, SessionGeneration, User, db
from app.states import RecordingStatus, Stage
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import call_sid, login, recording_sid, wav_bytes

PASSWORD = "a long enough password"
US_NUMBER = "+14155550123"


@dataclass(frozen=True)
class Case:
    """One request to one route, with what it needs to succeed."""

    endpoint: str
    needs: Permission | None  # what the issue says it needs; the marks must agree
    method: str
    path: str
    form: dict[str, str] | None = None
    json: dict[str, str] | None = None
    files: dict[str, tuple[bytes, str]] | None = None  # form field -> (content, file name)


CASES = [
    Case("pages.home", Permission.READ, "GET", "/"),
    Case("pages.call_detail", Permission.READ, "GET", f"/calls/{call_sid(1)}"),
    Case("pages.recording_audio", Permission.READ, "GET", "/recordings/1/audio"),
    Case("pages.retry_recording", Permission.EDIT, "POST", "/recordings/1/retry", form={}),
    Case("pages.dial", Permission.DIAL, "POST", "/dial", json={"to": US_NUMBER}),
    Case("users.page", Permission.MANAGE_USERS, "GET", "/users"),
    Case(
        "users.add",
        Permission.MANAGE_USERS,
        "POST",
        "/users",
        form={"username": "newcomer", "password": PASSWORD, "role": "viewer"},
    ),
    Case("users.change_role", Permission.MANAGE_USERS, "POST", "/users/target/role", form={"role": "viewer"}),
    Case("users.remove", Permission.MANAGE_USERS, "POST", "/users/target/remove", form={}),
    Case(
        "users.new_token",
        Permission.MANAGE_USERS,
        "POST",
        "/users/target/tokens",
        form={"scope": "calls:read"},
    ),
    Case("users.revoke", Permission.MANAGE_USERS, "POST", "/tokens/1/revoke", form={}),
    Case("exports.transcript", Permission.READ, "GET", f"/calls/{call_sid(1)}/transcript.srt"),
    Case("exports.calls_csv", Permission.READ, "GET", "/calls.csv"),
    Case("api.list_calls", Permission.READ, "GET", "/api/calls"),
    Case("api.call_detail", Permission.READ, "GET", f"/api/calls/{call_sid(1)}"),
    Case(
        "pages.rename_speaker", Permission.EDIT, "POST", f"/calls/{call_sid(1)}/speakers", form={"label": "A"}
    ),
    Case("api.rename_speakers", Permission.EDIT, "PUT", f"/api/calls/{call_sid(1)}/speakers", json={}),
    Case("pages.upload_form", Permission.EDIT, "GET", "/upload"),
    Case("pages.delete_call", Permission.DELETE, "POST", f"/calls/{call_sid(1)}/delete", form={}),
    Case("api.delete_call", Permission.DELETE, "DELETE", f"/api/calls/{call_sid(1)}"),
    Case("pages.upload_files", Permission.EDIT, "POST", "/upload", files={"files": (wav_bytes(), "a.wav")}),
    Case("auth.logout", None, "POST", "/logout", form={}),
]
ROLES = list(Role)
# Tokens of an admin, so that only the scopes limit them.
SCOPE_SETS = [(), *((s,) for s in TOKEN_SCOPES)]


def test_every_route_is_marked_and_every_marked_route_is_in_the_matrix(app: Flask) -> None:
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    unmarked = {e for e in endpoints if rule_for(app, e) is None}
    assert unmarked == set(), "a route nobody marked is refused to everyone: mark it"
    guarded = {e for e in endpoints if not rule_for(app, e).public}  # type: ignore[union-attr]
    assert guarded == {case.endpoint for case in CASES}
    # Open to anyone: logging in, the health check, the API's description, and the signed webhooks.
    open_to_all = {e for e in endpoints - guarded if not e.startswith("webhooks.")}
    assert open_to_all == {"auth.login", "pages.healthz", "api.openapi_document", "static"}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.endpoint)
def test_each_route_needs_what_the_role_table_says(app: Flask, case: Case) -> None:
    rule = rule_for(app, case.endpoint)
    assert rule is not None and rule.needs == case.needs


def test_the_roles_are_as_documented() -> None:
    assert ROLE_PERMISSIONS[Role.VIEWER] == {Permission.READ}
    assert ROLE_PERMISSIONS[Role.MEMBER] == {Permission.READ, Permission.DIAL, Permission.EDIT}
    assert ROLE_PERMISSIONS[Role.ADMIN] == set(Permission)


@pytest.fixture
def world(twilio_api: FakeTwilio, make_app: Callable[..., Flask]) -> Flask:
    """An app with a user of each role, a target user with a token, and a failed recording."""
    app = make_app()
    twilio_api.add_recording(recording_sid(1), b"RIFF audio", call_sid(1))
    with app.app_context():
        for role in ROLES:
            db.session.add(User(username=f"a-{role}", password_hash=_hash(), role=role))
        target = User(username="target", password_hash=_hash(), role=Role.MEMBER)
        db.session.add(target)
        # No explicit ids: PostgreSQL's sequences must stay ahead of the rows. The
        # tables are new, so these rows get id 1, which the cases' paths name.
        call = Call(call_sid=call_sid(1), status="completed")
        db.session.add(call)
        db.session.flush()
        db.session.add(ApiToken(user_id=target.id, token_hash="0" * 64, scopes="calls:read"))
        db.session.add(
            Recording(
                recording_sid=recording_sid(1),
                call_id=call.id,
                account_sid="AC",
                status=RecordingStatus.COMPLETED,
                stage=Stage.FAILED,
                upload_url=None,
                last_error="boom",
            )
        )
        db.session.commit()
        assert db.session.scalar(select(Recording.id)) == db.session.scalar(select(ApiToken.id)) == 1
    return app


@functools.cache
def _hash() -> str:
    return generate_password_hash(PASSWORD)


def snapshot(app: Flask) -> dict[str, Any]:
    """What a refusal must leave as it was (audit rows are counted on their own)."""
    with app.app_context():
        state = {
            "users": sorted(db.session.execute(select(User.username, User.role, User.password_hash)).all()),
            "tokens": sorted(db.session.execute(select(ApiToken.id, ApiToken.revoked_at)).all()),
            "generations": sorted(
                db.session.execute(select(SessionGeneration.username, SessionGeneration.generation)).all()
            ),
            "recordings": sorted(db.session.execute(select(Recording.id, Recording.stage)).all()),
            "calls": db.session.scalar(select(func.count()).select_from(Call)),
            "deleting": db.session.scalar(select(func.count()).where(Call.deleting_at.is_not(None))),
            "keys": db.session.scalar(select(func.count()).select_from(IdempotencyKey)),
        }
        db.session.rollback()
        return state


def audit_rows(app: Flask) -> int:
    with app.app_context():
        n = db.session.scalar(select(func.count()).select_from(DialAttempt)) or 0
        db.session.rollback()
        return n


def send(client: FlaskClient, case: Case, headers: dict[str, str] | None = None, csrf: bool = True) -> Any:
    kwargs: dict[str, Any] = {"headers": headers or {}}
    if case.method == "GET":
        return client.get(case.path, **kwargs)
    if case.method == "DELETE":
        if csrf and "Authorization" not in kwargs["headers"]:
            kwargs["headers"]["X-CSRFToken"] = client.csrf_token()  # type: ignore[attr-defined]
        return client.delete(case.path, **kwargs)
    if case.method == "PUT":
        headers = kwargs["headers"]
        if csrf and "Authorization" not in headers:
            headers["X-CSRFToken"] = client.csrf_token()  # type: ignore[attr-defined]
        return client.put(case.path, json=case.json or {}, headers=headers)
    if case.json is not None:
        kwargs["json"] = case.json
    else:
        kwargs["data"] = dict(case.form or {})
        for field, (content, name) in (case.files or {}).items():
            kwargs["data"][field] = (io.BytesIO(content), name)
    return client.post(case.path, csrf=csrf, **kwargs)  # type: ignore[call-arg]


def logged_in(app: Flask, username: str) -> FlaskClient:
    client = app.test_client()
    assert client.post("/login", data={"username": username, "password": PASSWORD}).status_code == 302
    return client


def assert_refused(app: Flask, case: Case, answer: Any, before: dict[str, Any], audit_before: int) -> None:
    assert answer.status_code == 403, answer.get_data(as_text=True)[:300]
    assert snapshot(app) == before, "a refusal changed the database"
    expected_audit = audit_before + (1 if case.endpoint == "pages.dial" else 0)
    assert audit_rows(app) == expected_audit, "a refused /dial leaves exactly its audit row"


def assert_allowed(case: Case, answer: Any) -> None:
    assert answer.status_code < 400, answer.get_data(as_text=True)[:300]
    if case.endpoint != "auth.logout":  # which sends you to the login page, as it should
        assert "/login" not in answer.headers.get("Location", ""), "sent to log in: refused after all"


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.endpoint)
def test_each_role_gets_what_its_permissions_allow(world: Flask, case: Case, role: Role) -> None:
    client = logged_in(world, f"a-{role}")
    before, audit_before = snapshot(world), audit_rows(world)
    answer = send(client, case)
    needed = case.needs
    if needed is None or needed in ROLE_PERMISSIONS[role]:
        assert_allowed(case, answer)
    else:
        assert_refused(world, case, answer, before, audit_before)


def token_for(app: Flask, username: str, scopes: tuple[str, ...]) -> str:
    args = ["users", "token", username] + (["--scope", ",".join(scopes)] if scopes else [])
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code == 0, result.output
    token = result.output.splitlines()[0]
    if not scopes:  # no --scope means every scope: take them all away again for this case
        with app.app_context():
            row = db.session.scalars(select(ApiToken).order_by(ApiToken.id.desc())).first()
            assert row is not None
            row.scopes = ""
            db.session.commit()
    return token


@pytest.mark.parametrize("scopes", SCOPE_SETS, ids=lambda s: ",".join(s) or "no-scope")
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.endpoint)
def test_each_token_gets_only_what_its_scopes_allow(
    world: Flask, case: Case, scopes: tuple[str, ...]
) -> None:
    token = token_for(world, f"a-{Role.ADMIN}", scopes)
    before, audit_before = snapshot(world), audit_rows(world)
    answer = send(world.test_client(), case, headers={"Authorization": f"Bearer {token}"}, csrf=False)
    needed = case.needs
    if needed is not None and needed in scopes:
        assert_allowed(case, answer)
    else:
        assert_refused(world, case, answer, before, audit_before)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.endpoint)
def test_without_credentials_a_page_goes_to_login_and_a_script_gets_401(world: Flask, case: Case) -> None:
    before, audit_before = snapshot(world), audit_rows(world)
    page = send(
        world.test_client(), Case(case.endpoint, case.needs, case.method, case.path, form=case.form or {})
    )
    if case.endpoint.startswith("api."):  # the API is for scripts: never a login page
        assert page.status_code == 401 and "error" in page.get_json()
    else:
        assert page.status_code == 302 and page.headers["Location"].startswith("/login")
    as_json = send(
        world.test_client(),
        Case(case.endpoint, case.needs, case.method, case.path, json=case.json or {}),
        headers={"Accept": "application/json"},
    )
    assert as_json.status_code == 401 and "error" in as_json.get_json()
    bearer = send(world.test_client(), case, headers={"Authorization": "Bearer cs_not-a-token"}, csrf=False)
    assert bearer.status_code == 401 and "error" in bearer.get_json()
    assert snapshot(world) == before and audit_rows(world) == audit_before


def test_a_viewers_token_cannot_dial_whatever_scopes_it_names(world: Flask, twilio_api: FakeTwilio) -> None:
    refused = world.test_cli_runner().invoke(args=["users", "token", "a-viewer", "--scope", "calls:dial"])
    assert refused.exit_code == 1 and "viewer" in refused.output
    token = world.test_cli_runner().invoke(args=["users", "token", "a-viewer"]).output.splitlines()[0]
    answer = world.test_client().post(
        "/dial", json={"to": US_NUMBER}, headers={"Authorization": f"Bearer {token}"}, csrf=False
    )
    assert answer.status_code == 403 and twilio_api.calls_created == []


def test_a_token_follows_its_users_role_when_it_changes(world: Flask, twilio_api: FakeTwilio) -> None:
    token = world.test_cli_runner().invoke(args=["users", "token", "a-member"]).output.splitlines()[0]
    assert world.test_cli_runner().invoke(args=["users", "role", "a-member", "viewer"]).exit_code == 0
    answer = world.test_client().post(
        "/dial", json={"to": US_NUMBER}, headers={"Authorization": f"Bearer {token}"}, csrf=False
    )
    assert answer.status_code == 403 and twilio_api.calls_created == []


def test_an_unmarked_route_is_refused_even_to_an_admin(make_app: Callable[..., Flask]) -> None:
    app = make_app()

    @app.get("/forgotten")
    def forgotten() -> str:
        return "private"

    client = app.test_client()
    login(client)
    assert client.get("/forgotten").status_code == 403
