"""Who may do what: roles, token scopes, and what each route needs.

Each view is marked with what it needs (:func:`requires`, :func:`public`),
and every request passes :func:`authorize` before its view runs, the one
place the marks are enforced:

* a route nobody marked is refused (deny by default);
* a request with ``Authorization: Bearer`` is the token's user, with the
  token's scopes, and the session is ignored completely;
* a person without a session is sent to the login page; a script or a
  JSON client gets 401;
* a user whose role (or token) lacks the route's permission gets 403, and
  nothing changes but the audit row some refusals write.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from flask import Flask, Response, abort, current_app, jsonify, redirect, request, url_for
from flask_login import UserMixin, current_user

from .config import current_settings


class Role(StrEnum):
    ADMIN = "admin"  # manages users and tokens, and can do everything
    MEMBER = "member"  # reads calls, dials, renames speakers, retries, uploads
    VIEWER = "viewer"  # only reads


class Permission(StrEnum):
    READ = "calls:read"  # calls, transcripts, audio, exports
    DIAL = "calls:dial"
    EDIT = "calls:edit"  # retry, rename speakers, upload
    DELETE = "calls:delete"
    MANAGE_USERS = "users:manage"  # users, roles, tokens, the audit log


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.READ}),
    Role.MEMBER: frozenset({Permission.READ, Permission.DIAL, Permission.EDIT}),
    Role.ADMIN: frozenset(Permission),
}
# The scopes a script's token may be given; the rest is for people.
TOKEN_SCOPES = (Permission.READ, Permission.DIAL, Permission.DELETE)


@dataclass(frozen=True)
class Account:
    username: str
    password_hash: str
    role: Role = Role.ADMIN


class SessionUser(UserMixin):
    """The logged-in user, and how they came: a session, or an API token with its scopes.

    The session id carries the user's session generation and a fingerprint
    of the password hash, so that either changing ends the session.
    """

    def __init__(
        self,
        account: Account,
        *,
        generation: int,
        token_id: int | None = None,
        scopes: frozenset[str] | None = None,
    ) -> None:
        self.username = account.username
        self.role = account.role
        self.token_id = token_id
        self.scopes = scopes
        fingerprint = hashlib.sha256(account.password_hash.encode()).hexdigest()[:16]
        self.id = f"{account.username}|{generation}|{fingerprint}"

    @property
    def auth_method(self) -> str:
        """For the audit log: a session, or which token."""
        return "session" if self.token_id is None else f"token:{self.token_id}"

    def may(self, permission: Permission) -> bool:
        allowed = permission in ROLE_PERMISSIONS[self.role]
        return allowed and (self.scopes is None or permission in self.scopes)


@dataclass(frozen=True)
class Rule:
    """What a route needs: a permission, only a logged-in user (None), or nothing (public)."""

    needs: Permission | None
    public: bool = False
    # Open to anyone while the service is not set up yet (the setup checklist).
    open_until_configured: bool = False
    # Called with the reason when the route is refused, to write an audit row.
    on_refusal: Callable[[str], None] | None = None


View = TypeVar("View", bound=Callable[..., Any])
# Blueprints whose routes check their callers themselves (signed webhooks).
PUBLIC_BLUEPRINTS = frozenset({"webhooks"})


def requires(
    needs: Permission | None,
    *,
    open_until_configured: bool = False,
    on_refusal: Callable[[str], None] | None = None,
) -> Callable[[View], View]:
    """Mark a view with what it needs (None: any logged-in user). :func:`authorize` enforces it."""

    def mark(view: View) -> View:
        view.access_rule = Rule(needs, open_until_configured=open_until_configured, on_refusal=on_refusal)  # type: ignore[attr-defined]
        return view

    return mark


def public(view: View) -> View:
    """Mark a view anyone may call (the login form, the health check)."""
    view.access_rule = Rule(None, public=True)  # type: ignore[attr-defined]
    return view


def rule_for(app: Flask, endpoint: str) -> Rule | None:
    """The rule of a route; None for one nobody marked, which is refused to everyone."""
    if endpoint == "static" or endpoint.split(".", 1)[0] in PUBLIC_BLUEPRINTS:
        return Rule(None, public=True)
    return getattr(app.view_functions.get(endpoint), "access_rule", None)


def may(permission: Permission) -> bool:
    """Whether the current user (and their token, if they came with one) may do this."""
    return bool(current_user.is_authenticated and current_user.may(permission))


def authorize() -> object | None:
    """Run before every view: refuse what its rule does not allow."""
    if request.endpoint is None:
        return None  # 404 and 405 answer as they are
    rule = rule_for(current_app, request.endpoint)
    if rule is None:
        abort(403, "This page is not open to anyone.")
    if rule.public:
        return None
    if not current_user.is_authenticated:
        if rule.open_until_configured and current_settings().missing():
            return None
        return unauthorized()
    if rule.needs is None and current_user.token_id is not None:
        abort(403, "An API token opens only routes of its scopes.")
    if rule.needs is not None and not current_user.may(rule.needs):
        reason = f"{current_user.username} ({current_user.role}) may not do this: it needs {rule.needs}."
        if current_user.scopes is not None and rule.needs in ROLE_PERMISSIONS[current_user.role]:
            reason = f"This API token lacks the scope {rule.needs}."
        if rule.on_refusal is not None:
            rule.on_refusal(reason)
        abort(403, reason)
    return None


def wants_json() -> bool:
    """A script (it sent a token), a JSON client, or the API: answered in JSON, errors included."""
    return (
        "Authorization" in request.headers
        or request.is_json
        or request.accept_mimetypes.best == "application/json"
        or request.blueprint == "api"
    )


def unauthorized() -> Response:
    """Scripts and JSON clients get a 401 they can read; people get the login page."""
    if "Authorization" in request.headers:
        return _json_error("Invalid or expired API token.", 401)
    if wants_json():
        return _json_error("Log in first.", 401)
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def _json_error(message: str, status: int) -> Response:
    response = jsonify(error=message)
    response.status_code = status
    return response


def init_app(app: Flask) -> None:
    app.before_request(authorize)
