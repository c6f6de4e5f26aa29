"""Dashboard users: hashed passwords and roles in the database, sessions that end, throttled logins.

The first user can come from the environment: ``admin`` with ADMIN_PASSWORD
(or ADMIN_PASSWORD_HASH) is an admin and logs in as long as no ``admin`` row
exists in the database. ``flask users add/remove/passwd/role`` manage the rest.

A session is bound to its user's session generation (kept in the database):
logging out, a new password, a new role or removal bumps it, which ends every
session of that user at once. The idle and absolute limits are kept in the
signed session itself, so a page view writes nothing to the database.
"""

from __future__ import annotations

import functools
import hmac
import logging
import time
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import AnonymousUserMixin, LoginManager, current_user, login_user, logout_user
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from . import access, login_throttle, tokens
from .access import Account, Role, SessionUser
from .config import current_settings
from .models import SessionGeneration, User, db, insert_ignore

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__)
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Log in to see your calls."

ADMIN = "admin"


@functools.cache
def dummy_hash() -> str:
    """Checking a password against this keeps unknown usernames as slow as known ones.

    Made on first use, not at import: a scrypt hash costs about 100 ms and
    32 MiB, which the worker and every CLI command never need. Web workers
    make it as they start (gunicorn.conf.py), so the first login costs the
    same as every other.
    """
    return generate_password_hash("never a real password")


# Where init_app keeps the hash of ADMIN_PASSWORD it made at start-up.
ENV_ADMIN_HASH = "env_admin_hash"


def find_account(username: str) -> Account | None:
    user = db.session.scalar(select(User).where(User.username == username))
    if user is not None:
        return Account(user.username, user.password_hash, Role(user.role))
    settings = current_settings()
    if username == ADMIN and settings.admin_password_hash:
        return Account(ADMIN, settings.admin_password_hash)
    if username == ADMIN and settings.admin_password:
        # A stable stand-in for a hash of the configured password.
        digest = hmac.new(settings.secret_key.encode(), settings.admin_password.encode(), "sha256")
        return Account(ADMIN, "env$" + digest.hexdigest())
    return None


def session_generation(username: str) -> int:
    found = db.session.get(SessionGeneration, username)
    return found.generation if found is not None else 0


def end_sessions(username: str) -> None:
    """End every session of ``username``, on every machine: bump their session generation."""
    updated = db.session.execute(
        update(SessionGeneration)
        .where(SessionGeneration.username == username)
        .values(generation=SessionGeneration.generation + 1)
    ).rowcount
    if not updated:
        insert_ignore(SessionGeneration, {"username": username, "generation": 1}, "username")
    db.session.commit()


def password_matches(account: Account | None, password: str) -> bool:
    """One werkzeug check whoever the name is, so every wrong password costs the same:
    a user's own hash, the hash of ADMIN_PASSWORD made at start-up, or a dummy."""
    if account is None:
        pwhash = dummy_hash()
    elif account.password_hash.startswith("env$"):
        pwhash = current_app.extensions[ENV_ADMIN_HASH]
    else:
        pwhash = account.password_hash
    return check_password_hash(pwhash, password) and account is not None


login_manager.unauthorized_handler(access.unauthorized)


@login_manager.user_loader
def load_user(user_id: str) -> SessionUser | None:
    username = user_id.split("|", 1)[0]
    account = find_account(username)
    if account is None:
        return None
    user = SessionUser(account, generation=session_generation(username))
    return user if hmac.compare_digest(user.id, user_id) else None


def identify() -> None:
    """Before every request: who is asking.

    With ``Authorization: Bearer`` the token alone says who, and the session
    is ignored completely (a wrong token is nobody, never the cookie's user).
    Otherwise the session says, while it is within its idle and absolute
    limits.
    """
    if "Authorization" in request.headers:
        g._login_user = tokens.authenticate(bearer_token()) or AnonymousUserMixin()
        return
    if "_user_id" not in session:
        return
    settings = current_settings()
    now = int(time.time())
    since, seen = session.get("since", 0), session.get("seen", 0)
    if now - seen > settings.session_idle_minutes * 60 or now - since > settings.session_max_days * 86400:
        logout_user()
        session.clear()
        return
    if now - seen >= 60:  # keep the cookie quiet: the idle clock moves once a minute
        session["seen"] = now


def bearer_token() -> str:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header[:7].lower() == "bearer " else ""


def start_session(account: Account) -> None:
    """Log in: a fresh session (and CSRF secret), bound to the user's session generation."""
    session.clear()
    session.permanent = True
    now = int(time.time())
    session["since"] = session["seen"] = now
    login_user(SessionUser(account, generation=session_generation(account.username)))


@functools.cache
def _hash_once(password: str) -> str:
    """A hash of ADMIN_PASSWORD, made once per process however many apps it builds (the CLI, tests)."""
    return generate_password_hash(password)


def init_app(app: Flask) -> None:
    admin_password = app.extensions["settings"].admin_password
    # Read only for the environment's admin, who exists only with ADMIN_PASSWORD.
    app.extensions[ENV_ADMIN_HASH] = _hash_once(admin_password) if admin_password else None
    login_manager.init_app(app)
    app.before_request(identify)
    app.register_blueprint(bp)


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never redirect a user off-site after login."""
    # A control character (CR, LF, tab) is no part of a path, and would break the Location header.
    if target and target.isprintable():
        try:
            parts = urlsplit(target)
        except ValueError:  # "//host[" and such: no URL at all
            return url_for("pages.home")
        local = target.startswith("/") and not target.startswith(("//", "/\\")) and "\\" not in target
        if local and not parts.scheme and not parts.netloc:
            return target
    return url_for("pages.home")


@bp.route("/login", methods=["GET", "POST"])
@access.public
def login() -> str | Response:
    settings = current_settings()
    if request.method == "POST":
        username = (request.form.get("username") or "").strip()[:64]
        password = request.form.get("password") or ""
        address = request.remote_addr
        if login_throttle.seconds_locked(username, address):
            wait = login_throttle.count_refusal(username, address)
            log.warning("login for %r from %s throttled for %d s", username[:40], address, wait)
            flash(f"Too many failed attempts. Try again in {wait} seconds.", "error")
            page = render_template("login.html", missing=settings.missing())
            return page, 429, {"Retry-After": str(wait)}  # type: ignore[return-value]
        account = find_account(username)
        if password_matches(account, password) and account is not None:
            login_throttle.forget_failures(username, address)
            start_session(account)
            return redirect(_safe_next(request.args.get("next")))  # type: ignore[return-value]
        login_throttle.count_failure(username, address)
        log.warning("failed login for %r from %s", username[:40], address)
        flash("Wrong username or password.", "error")
        return render_template("login.html", missing=settings.missing()), 401  # type: ignore[return-value]
    return render_template("login.html", missing=settings.missing())


@bp.post("/logout")
@access.requires(None)
def logout() -> Response:
    """End this session, and every other session of the same user."""
    end_sessions(current_user.username)
    logout_user()
    session.clear()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))  # type: ignore[return-value]


# -- managing users (flask users ...) ------------------------------------------------


class UserError(ValueError):
    """A user could not be added or changed; ``str()`` says why, for the person at the terminal."""


# A database user's password; the environment admin's (config.ADMIN_PASSWORD_MIN_LENGTH,
# also for the password behind ADMIN_PASSWORD_HASH) guards the account every attacker tries.
MIN_PASSWORD = 10


def hash_password(password: str, minimum: int = MIN_PASSWORD) -> str:
    if len(password) < minimum:
        raise UserError(f"Use at least {minimum} characters.")
    return generate_password_hash(password)


def add_user(username: str, password: str, role: Role = Role.MEMBER) -> None:
    db.session.add(User(username=username, password_hash=hash_password(password), role=role))
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise UserError(f"{username} exists already; use flask users passwd.") from None


def _no_such_user(username: str) -> UserError:
    return UserError(f"no user {username} (add one with flask users add)")


def set_password(username: str, password: str) -> None:
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        raise _no_such_user(username)
    user.password_hash = hash_password(password)
    db.session.commit()
    end_sessions(username)


def set_role(username: str, role: Role) -> None:
    """Change a user's role; their open sessions end, so the new role holds at once."""
    changed = db.session.execute(update(User).where(User.username == username).values(role=role)).rowcount
    db.session.commit()
    if not changed:
        raise _no_such_user(username)
    end_sessions(username)


def remove_user(username: str) -> None:
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        raise _no_such_user(username)
    db.session.delete(user)  # and its tokens
    db.session.commit()
    end_sessions(username)


def users() -> list[User]:
    return list(db.session.scalars(select(User).order_by(User.username)))
