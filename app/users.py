"""The admins' page, /users: users and their roles, API tokens, and the /dial audit log.

Everything here needs ``users:manage``, which only admins have. Each form
does what a ``flask users`` command does, through the same functions.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for

from . import auth, dialing, tokens
from .access import TOKEN_SCOPES, Permission, Role, requires

bp = Blueprint("users", __name__)


@bp.get("/users")
@requires(Permission.MANAGE_USERS)
def page() -> str:
    return render_template(
        "users.html",
        users=auth.users(),
        roles=list(Role),
        scopes=TOKEN_SCOPES,
        audit=dialing.audit_log(),
        describe=tokens.describe,
    )


def _back() -> Response:
    return redirect(url_for("users.page"))  # type: ignore[return-value]


def _done(message: str) -> Response:
    flash(message, "info")
    return _back()


def _refused(error: Exception) -> tuple[str, int]:
    flash(str(error), "error")
    return page(), 400


@bp.post("/users")
@requires(Permission.MANAGE_USERS)
def add() -> Any:
    username = (request.form.get("username") or "").strip()
    try:
        role = Role(request.form.get("role") or Role.MEMBER)
        if not username or len(username) > 64 or not username.isprintable():
            raise auth.UserError("Give a user name of 1 to 64 printable characters.")
        auth.add_user(username, request.form.get("password") or "", role)
    except (auth.UserError, ValueError) as error:
        return _refused(error)
    return _done(f"Added {username} ({role}).")


@bp.post("/users/<username>/role")
@requires(Permission.MANAGE_USERS)
def change_role(username: str) -> Any:
    try:
        role = Role(request.form.get("role") or "")
        auth.set_role(username, role)
    except (auth.UserError, ValueError) as error:
        return _refused(error)
    return _done(f"{username} is now a {role}; their sessions ended.")


@bp.post("/users/<username>/remove")
@requires(Permission.MANAGE_USERS)
def remove(username: str) -> Any:
    try:
        auth.remove_user(username)
    except auth.UserError as error:
        return _refused(error)
    return _done(f"Removed {username}.")


@bp.post("/users/<username>/tokens")
@requires(Permission.MANAGE_USERS)
def new_token(username: str) -> Any:
    scopes = ",".join(request.form.getlist("scope"))
    try:
        issued = tokens.issue(username, scopes=scopes or None, expires=request.form.get("expires") or None)
    except tokens.TokenError as error:
        return _refused(error)
    flash(f"New token {issued.id} for {username} (shown only now): {issued.token}", "info")
    return _back()


@bp.post("/tokens/<row_id:token_id>/revoke")
@requires(Permission.MANAGE_USERS)
def revoke(token_id: int) -> Any:
    try:
        owner = tokens.revoke(token_id)
    except tokens.TokenError as error:
        return _refused(error)
    return _done(f"Revoked token {token_id} of {owner}.")
