"""Dashboard login: one user, ``admin``, whose password is ADMIN_PASSWORD."""

from __future__ import annotations

import hmac
import logging
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

from .config import current_settings

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__)
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Log in to see your calls."

ADMIN = "admin"


class User(UserMixin):
    def __init__(self, name: str) -> None:
        self.id = name


@login_manager.unauthorized_handler
def unauthorized() -> Response:
    """Scripts get a 401 they can read; people get the login page."""
    if request.is_json or request.accept_mimetypes.best == "application/json":
        return jsonify(error="Log in first."), 401  # type: ignore[return-value]
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))  # type: ignore[return-value]


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    return User(ADMIN) if user_id == ADMIN and current_settings().admin_password else None


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    app.register_blueprint(bp)


def _password_ok(username: str, password: str) -> bool:
    expected = current_settings().admin_password
    if not expected:
        return False
    # Compare both in constant time, whatever was typed.
    name_ok = hmac.compare_digest(username.encode(), ADMIN.encode())
    password_ok = hmac.compare_digest(password.encode(), expected.encode())
    return name_ok and password_ok


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never redirect a user off-site after login."""
    if target:
        parts = urlsplit(target)
        local = target.startswith("/") and not target.startswith(("//", "/\\")) and "\\" not in target
        if local and not parts.scheme and not parts.netloc:
            return target
    return url_for("pages.home")


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | Response:
    settings = current_settings()
    if request.method == "POST":
        username = request.form.get("username", "")
        password = request.form.get("password", "")
        if _password_ok(username, password):
            login_user(User(ADMIN))
            return redirect(_safe_next(request.args.get("next")))  # type: ignore[return-value]
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
