"""What every browser-facing answer carries: security headers and cookie flags.

Behind ngrok or a PaaS router TLS ends before us; the router says so in
``X-Forwarded-Proto``. Only that one header is trusted, and only for what
a forged value cannot abuse: marking cookies Secure and sending HSTS (which
browsers ignore over plain http). Webhook signatures never use it.
"""

from __future__ import annotations

from flask import Flask, Response, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix

# No script at all, inline or not; styles and media only from us; no framing.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "style-src 'self'",
        "img-src 'self'",
        "media-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)


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


def init_app(app: Flask) -> None:
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=0, x_proto=1, x_host=0, x_port=0, x_prefix=0)  # type: ignore[method-assign]
    app.session_interface = SessionCookies()
    app.after_request(add_security_headers)
