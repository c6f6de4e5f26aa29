"""Dashboard users: hashed passwords in the database, sessions, throttled logins.

The first user can come from the environment: ``admin`` with ADMIN_PASSWORD
(or ADMIN_PASSWORD_HASH) logs in as long as no ``admin`` row exists in the
database. ``flask users add/remove/passwd`` manage the rest.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import LoginManager, UserMixin, login_required, login_user, logout_user
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from .config import current_settings
from .models import Attempt, User, db, utcnow

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__)
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Log in to see your calls."

ADMIN = "admin"
# Failed logins allowed per username, and in all, in one window.
LOGIN_WINDOW = timedelta(minutes=15)
FAILURES_PER_USER = 5
FAILURES_IN_ALL = 50
# Checking a password against this keeps unknown usernames as slow as known ones.
_DUMMY_HASH = generate_password_hash("never a real password")


@dataclass(frozen=True)
class Account:
    username: str
    password_hash: str


class SessionUser(UserMixin):
    """The logged-in user. The session id changes with the password, so that
    changing a password ends every session opened with the old one."""

    def __init__(self, account: Account) -> None:
        self.username = account.username
        fingerprint = hashlib.sha256(account.password_hash.encode()).hexdigest()[:16]
        self.id = f"{account.username}|{fingerprint}"


def find_account(username: str) -> Account | None:
    user = db.session.scalar(select(User).where(User.username == username))
    if user is not None:
        return Account(user.username, user.password_hash)
    settings = current_settings()
    if username == ADMIN and settings.admin_password_hash:
        return Account(ADMIN, settings.admin_password_hash)
    if username == ADMIN and settings.admin_password:
        # A stable stand-in for a hash of the configured password.
        digest = hmac.new(settings.secret_key.encode(), settings.admin_password.encode(), "sha256")
        return Account(ADMIN, "env$" + digest.hexdigest())
    return None


def password_matches(account: Account | None, password: str) -> bool:
    if account is None:
        check_password_hash(_DUMMY_HASH, password)
        return False
    if account.password_hash.startswith("env$"):
        expected = current_settings().admin_password or ""
        return hmac.compare_digest(password.encode(), expected.encode())
    return check_password_hash(account.password_hash, password)


TOKEN_PREFIX = "cs_"  # noqa: S105 (a prefix that makes leaked tokens easy to spot)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header[:7].lower() == "bearer " else None


def user_for_token(token: str) -> SessionUser | None:
    user = db.session.scalar(select(User).where(User.api_token_hash == _token_hash(token)))
    return SessionUser(Account(user.username, user.password_hash)) if user is not None else None


@login_manager.request_loader
def load_user_from_token(request_: object) -> SessionUser | None:
    token = bearer_token()
    return user_for_token(token) if token else None


def new_api_token(username: str) -> str:
    """A fresh token for scripts, replacing the old one."""
    token = TOKEN_PREFIX + secrets.token_hex(24)
    changed = db.session.execute(
        update(User).where(User.username == username).values(api_token_hash=_token_hash(token))
    ).rowcount
    db.session.commit()
    if not changed:
        raise _no_such_user(username)
    return token


@login_manager.unauthorized_handler
def unauthorized() -> Response:
    """Scripts get a 401 they can read; people get the login page."""
    if request.is_json or request.accept_mimetypes.best == "application/json":
        return jsonify(error="Log in first."), 401  # type: ignore[return-value]
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))  # type: ignore[return-value]


@login_manager.user_loader
def load_user(user_id: str) -> SessionUser | None:
    username = user_id.split("|", 1)[0]
    account = find_account(username)
    if account is None:
        return None
    user = SessionUser(account)
    return user if hmac.compare_digest(user.id, user_id) else None


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    app.register_blueprint(bp)


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never redirect a user off-site after login."""
    # A control character (CR, LF, tab) is no part of a path, and would break the Location header.
    if target and target.isprintable():
        parts = urlsplit(target)
        local = target.startswith("/") and not target.startswith(("//", "/\\")) and "\\" not in target
        if local and not parts.scheme and not parts.netloc:
            return target
    return url_for("pages.home")


def _recent_failures(key: str | None) -> int:
    since = utcnow() - LOGIN_WINDOW
    query = select(func.count()).select_from(Attempt).where(Attempt.at > since)
    if key is not None:
        query = query.where(Attempt.key == key)
    else:
        query = query.where(Attempt.key.startswith("login:"))
    return db.session.scalar(query) or 0


def _throttled(username: str) -> bool:
    return (
        _recent_failures(f"login:{username}") >= FAILURES_PER_USER
        or _recent_failures(None) >= FAILURES_IN_ALL
    )


def _count_failure(username: str) -> None:
    db.session.add(Attempt(key=f"login:{username}"))
    db.session.execute(delete(Attempt).where(Attempt.at < utcnow() - 2 * LOGIN_WINDOW))
    db.session.commit()


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | Response:
    settings = current_settings()
    if request.method == "POST":
        username = (request.form.get("username") or "").strip()[:64]
        password = request.form.get("password") or ""
        if _throttled(username):
            log.warning("login for %r throttled", username)
            flash("Too many failed attempts. Wait a few minutes, then try again.", "error")
            return render_template("login.html", missing=settings.missing()), 429  # type: ignore[return-value]
        account = find_account(username)
        if password_matches(account, password) and account is not None:
            login_user(SessionUser(account))
            return redirect(_safe_next(request.args.get("next")))  # type: ignore[return-value]
        _count_failure(username)
        log.warning("failed login for %r", username[:40])
        flash("Wrong username or password.", "error")
        return render_template("login.html", missing=settings.missing()), 401  # type: ignore[return-value]
    return render_template("login.html", missing=settings.missing())


@bp.post("/logout")
@login_required
def logout() -> Response:
    logout_user()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))  # type: ignore[return-value]


# -- managing users (flask users ...) ------------------------------------------------


class UserError(ValueError):
    """A user could not be added or changed; ``str()`` says why, for the person at the terminal."""


def hash_password(password: str) -> str:
    if len(password) < 10:
        raise UserError("Use at least 10 characters.")
    return generate_password_hash(password)


def add_user(username: str, password: str) -> None:
    db.session.add(User(username=username, password_hash=hash_password(password)))
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


def remove_user(username: str) -> None:
    removed = db.session.execute(delete(User).where(User.username == username)).rowcount
    db.session.commit()
    if not removed:
        raise _no_such_user(username)


def usernames() -> list[str]:
    return list(db.session.scalars(select(User.username).order_by(User.username)))
