"""What every browser-facing answer carries, and what every request must not carry.

Answers get security headers and cookie flags. Requests are refused up
front when they hold what no caller legitimately sends: a NUL character,
JSON nested deeper than any real body, a browser form without its CSRF token.

Behind ngrok or a PaaS router TLS ends before us; the router says so in
``X-Forwarded-Proto``, and appends the client's address to
``X-Forwarded-For``. TRUSTED_PROXIES says how many such proxies there are:
ProxyFix believes that many entries from the end of each header, none of
which the client can write, and ignores both headers when it is 0. Then
``request.remote_addr`` is the client's address (the login throttle counts
by it) and ``request.is_secure`` marks cookies Secure and sends HSTS.
``X-Forwarded-Host`` and the rest are never believed; webhook signatures use
none of them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from itertools import accumulate
from typing import Any, TypeVar

from flask import Flask, Response, current_app, request
from flask.json.provider import DefaultJSONProvider
from flask.sessions import SecureCookieSessionInterface
from flask_login import current_user
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix

from . import access

csrf = CSRFProtect()
# Routes that authenticate each request themselves (signatures, a shared
# secret) and are called by servers, not browsers: the only CSRF exemptions.
SIGNED_WEBHOOKS = "webhooks"

# Scripts, styles and media only from our own files (no inline script or
# handler ever runs); scripts talk only to us; no framing.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "media-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)


# Real bodies (AssemblyAI's notice, /dial's {"to": ...}) nest one or two levels.
MAX_JSON_DEPTH = 64
# A string, or an unclosed one running to the end: one pass, no backtracking.
_JSON_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"?', re.DOTALL)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def json_nesting(text: str) -> int:
    """How deep arrays and objects nest in ``text``, counted without parsing or recursing."""
    brackets = _NOT_BRACKETS.sub("", _JSON_STRINGS.sub("", text))
    return max(accumulate(map(_BRACKET_STEP.__getitem__, brackets)), default=0)


class ShallowJSON(DefaultJSONProvider):
    """Flask's JSON, except that a body nested deeper than MAX_JSON_DEPTH is refused unparsed.

    Python's parser recurses once per level, so ``[[[[…`` 50,000 deep raised
    RecursionError, a 500. A ValueError instead is what ``request.get_json``
    expects of a bad body: None with ``silent=True``, otherwise a 400.
    """

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        # Decoded here as json.loads would, so that the depth is counted on text.
        text = s.decode(json.detect_encoding(s), "surrogatepass") if isinstance(s, bytes) else s
        if json_nesting(text) > MAX_JSON_DEPTH:
            raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels is not accepted.")
        return super().loads(text, **kwargs)


class SessionCookies(SecureCookieSessionInterface):
    """The session cookie is Secure whenever the browser reached us over https."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure


def add_security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    if request.is_secure:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    if response.mimetype == "text/html":
        # Pages show private calls: no shared cache may keep them.
        headers.setdefault("Cache-Control", "no-store")
    return response


View = TypeVar("View", bound=Callable[..., Any])
MB = 1024 * 1024
# A multipart body's own bytes (boundaries, headers of each part) on top of its files.
MULTIPART_SLACK = 64 * 1024


def large_body(limit_mb: Callable[[], int], variable: str) -> Callable[[View], View]:
    """Let a route take a body of up to ``limit_mb()`` MB (the app's limit is 1 MB), set by ``variable``."""

    def mark(view: View) -> View:
        view.large_body = (limit_mb, variable)  # type: ignore[attr-defined]
        return view

    return mark


def apply_body_limit() -> None:
    """Before anything reads the body: a route marked with :func:`large_body` gets its own limit.

    A body declared bigger is refused at once, with a message that names
    the limit, before a byte of it is read.
    """
    view = current_app.view_functions.get(request.endpoint or "")
    marked = getattr(view, "large_body", None)
    rule = access.rule_for(current_app, request.endpoint or "")
    if marked is None or rule is None or not current_user.is_authenticated:
        return  # only someone the route lets in may send it that much
    if rule.needs is not None and not current_user.may(rule.needs):
        return
    limit_mb, variable = marked
    limit = limit_mb() * MB
    request.max_content_length = limit + MULTIPART_SLACK
    if request.content_length is not None and request.content_length > limit + MULTIPART_SLACK:
        raise RequestEntityTooLarge(f"The upload is over {limit_mb()} MB, the largest {variable} allows.")


def refuse_nul_characters() -> None:
    """No legitimate field holds a NUL, and PostgreSQL cannot store one: refuse it up front."""
    values = [request.path, *request.args.values()]
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        values += [*request.form.keys(), *request.form.values()]
    if any("\x00" in value for value in values):
        raise BadRequest("Text with a NUL character is not accepted.")


def check_csrf() -> None:
    """Every state-changing request from a browser carries the session's CSRF token,
    as a form field or, for JSON, in the X-CSRFToken header."""
    if request.method in ("GET", "HEAD", "OPTIONS") or request.blueprint == SIGNED_WEBHOOKS:
        return
    if "Authorization" in request.headers:
        # A script's token is no ambient credential a browser would send on
        # its own, so it needs no CSRF token; the session is ignored for such
        # a request, and a wrong token is answered 401 (app.access).
        return
    try:
        csrf.protect()
    except CSRFError:
        raise BadRequest(
            "The form expired or came from another site. Reload the page and try again."
        ) from None


def init_app(app: Flask, *, trusted_proxies: int) -> None:
    app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
        app.wsgi_app, x_for=trusted_proxies, x_proto=trusted_proxies, x_host=0, x_port=0, x_prefix=0
    )
    app.session_interface = SessionCookies()
    app.json = ShallowJSON(app)
    app.after_request(add_security_headers)
    # Tokens live as long as the session: a page left open for hours still works.
    app.config.update(WTF_CSRF_CHECK_DEFAULT=False, WTF_CSRF_TIME_LIMIT=None)
    csrf.init_app(app)
    app.before_request(apply_body_limit)
    app.before_request(refuse_nul_characters)


def init_csrf(app: Flask) -> None:
    """After app.access has said who may do what: a refused request gets its 401 or 403 first."""
    app.before_request(check_csrf)
