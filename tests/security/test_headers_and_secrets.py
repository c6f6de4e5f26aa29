"""Browser-side hardening, and no secret in any log line or error page."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask import Flask

from app.access import public
from app.config import WEBHOOK_HEADER_NAME
from tests.fakes.assemblyai_api import FakeAssemblyAI
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import (
    ADMIN_PASSWORD,
    ASSEMBLYAI_KEY,
    AUTH_TOKEN,
    SECRET_KEY,
    call_sid,
    call_status_form,
    login,
    post_twilio,
    recording_form,
    recording_sid,
    run_jobs,
)

TEMPLATES = Path(__file__).resolve().parents[2] / "app" / "templates"


def templates() -> list[Path]:
    """Every page template, found from this file so the working folder does not matter."""
    found = sorted(TEMPLATES.glob("*.html"))
    assert len(found) >= 5, f"only {len(found)} templates found in {TEMPLATES}"
    return found


@dataclass
class Form:
    method: str
    inputs: list[tuple[str, str]] = field(default_factory=list)  # (type, name)


class TemplateParser(HTMLParser):
    """The forms of a template, and whatever would need 'unsafe-inline' to run."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self.inline: list[str] = []
        self.scripts: list[str] = []  # the src of each script file
        self._open: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: (value or "") for name, value in attrs}
        if tag == "form":
            self._open = Form(values.get("method", "get").strip().lower())
            self.forms.append(self._open)
        elif tag == "input" and self._open is not None:
            self._open.inputs.append((values.get("type", "text").lower(), values.get("name", "")))
        if tag == "style" or (tag == "script" and not values.get("src")):
            self.inline.append(f"<{tag}>")
        if tag == "script" and values.get("src"):
            self.scripts.append(values["src"])
        for name, value in values.items():
            if name == "style" or name.startswith("on"):
                self.inline.append(f"<{tag} {name}=...>")
            elif value.strip().lower().startswith("javascript:"):
                self.inline.append(f"<{tag} {name}={value!r}>")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = None


def parse_template(path: Path) -> TemplateParser:
    parser = TemplateParser()
    parser.feed(path.read_text())
    parser.close()
    return parser


def test_pages_carry_a_strict_content_security_policy(client: object) -> None:
    response = client.get("/login")  # type: ignore[attr-defined]
    policy = response.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'", "only our own script files run"
    assert directives["connect-src"] == "'self'"
    assert directives["style-src"] == directives["media-src"] == "'self'"
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert directives["frame-ancestors"] == "'none'"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"


def test_every_form_carries_a_csrf_token() -> None:
    post_forms = 0
    for template in templates():
        for form in parse_template(template).forms:
            if form.method == "post":
                post_forms += 1
                assert ("hidden", "csrf_token") in form.inputs, f"{template.name}: {form}"
    assert post_forms >= 3, f"only {post_forms} POST forms found in {TEMPLATES}"


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/login", {"username": "admin", "password": ADMIN_PASSWORD}),
        ("/dial", {"to": "+14155550123"}),
        ("/logout", {}),
        ("/recordings/1/retry", {}),
    ],
)
def test_a_post_without_the_csrf_token_is_refused(
    app: Flask, twilio_api: FakeTwilio, path: str, data: dict[str, str]
) -> None:
    client = app.test_client()
    login(client)
    response = client.post(path, data=data, csrf=False)  # type: ignore[call-arg]
    assert response.status_code == 400
    assert "Reload the page" in response.get_data(as_text=True)
    assert twilio_api.calls_created == []
    forged = client.post(path, data={**data, "csrf_token": "forged"}, csrf=False)  # type: ignore[call-arg]
    assert forged.status_code == 400


def test_json_without_the_csrf_header_is_refused(app: Flask, twilio_api: FakeTwilio) -> None:
    client = app.test_client()
    login(client)
    response = client.post("/dial", json={"to": "+14155550123"}, csrf=False)  # type: ignore[call-arg]
    assert response.status_code == 400
    assert twilio_api.calls_created == []
    assert client.post("/dial", json={"to": "+14155550123"}).status_code == 201


def test_signed_webhooks_need_no_csrf_token(client: object) -> None:
    response = post_twilio(client, "/twilio/call-status", call_status_form(call_sid(), "ringing"))  # type: ignore[arg-type]
    assert response.status_code == 204


def test_templates_hold_no_inline_script_or_style() -> None:
    """'script-src 'self'' runs script files only: inline code would be refused, so there is none."""
    scripts = []
    for template in templates():
        parsed = parse_template(template)
        assert parsed.inline == [], template.name
        scripts += parsed.scripts
    assert scripts, "the scan sees the call page's script file"


@pytest.mark.parametrize(
    "markup",
    [
        "<script>alert(1)</script>",
        '<script type="module">import "x"</script>',
        '<button onclick="go()">Go</button>',
        "<audio ONPLAY=go()></audio>",
        '<a href="javascript:go()">Go</a>',
        '<p style="color: red">Red</p>',
    ],
)
def test_the_template_scan_finds_inline_code(markup: str) -> None:
    parser = TemplateParser()
    parser.feed(f'<script src="/static/call.js" defer></script>{markup}')
    assert parser.inline != []


def test_over_https_cookies_are_secure_and_hsts_is_sent(app: Flask) -> None:
    client = app.test_client()
    response = client.post(
        "/login",
        data={"username": "admin", "password": ADMIN_PASSWORD},
        # Over https the CSRF check also wants a same-site Referer, as browsers send.
        headers={"X-Forwarded-Proto": "https", "Referer": "https://localhost/login"},
    )
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_over_plain_http_locally_the_cookie_still_works(app: Flask) -> None:
    response = login(app.test_client())
    cookie = response.headers["Set-Cookie"]
    assert "Secure" not in cookie, "a Secure cookie would never come back over http://127.0.0.1"
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Strict-Transport-Security" not in response.headers


def test_no_secret_reaches_the_logs_even_at_debug(
    make_app: Callable[..., Flask],
    twilio_api: FakeTwilio,
    assemblyai_api: FakeAssemblyAI,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The whole pipeline, failures included, logged at DEBUG: every secret stays out."""
    app = make_app(LOG_LEVEL="DEBUG")
    settings = app.extensions["settings"]

    @app.get("/boom")
    @public  # a route nobody marked would be refused before it could fail
    def boom() -> str:
        # A library that puts a credential into an exception message.
        raise RuntimeError(f"401 for {settings.twilio_account_sid}:{AUTH_TOKEN} key={ASSEMBLYAI_KEY}")

    client = app.test_client()
    logging.getLogger("urllib3").setLevel(logging.DEBUG)
    client.get("/boom")

    session_cookie = login(client).headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    client.post("/dial", json={"to": "+14155550123"})
    twilio_api.fail_next_call_create()
    client.post("/dial", json={"to": "+14155550123"})
    client.post("/login", data={"username": "admin", "password": "wrong " + ADMIN_PASSWORD})
    twilio_api.add_recording(recording_sid(), b"RIFF audio bytes", call_sid())
    assemblyai_api.fail_next("submit", status=500)
    post_twilio(client, "/twilio/recording-status", recording_form(call_sid(), recording_sid()))
    post_twilio(client, "/twilio/call-status", {"CallSid": call_sid()}, token="wrong-token")
    run_jobs(app)
    client.post(
        "/assemblyai/webhook?recording=1", json={"transcript_id": "x"}, headers={WEBHOOK_HEADER_NAME: "nope"}
    )
    client.post(
        "/assemblyai/webhook?recording=1",
        json={"transcript_id": "x"},
        headers={WEBHOOK_HEADER_NAME: settings.webhook_secret},
    )

    logged = capsys.readouterr().err
    assert "DEBUG" in logged and "Twilio" in logged, "the scenario logged too little to prove anything"
    assert "RuntimeError: 401 for" in logged and "[redacted]" in logged, "the failure was not logged"
    assert session_cookie not in logged, "the session cookie was logged"
    for secret in settings.secrets():
        assert secret not in logged, f"a secret ({secret[:3]}…) was logged"
    for secret in (AUTH_TOKEN, ASSEMBLYAI_KEY, ADMIN_PASSWORD, SECRET_KEY):
        assert secret not in logged


def test_an_unexpected_error_page_shows_no_secret_or_traceback(make_app: Callable[..., Flask]) -> None:
    app = make_app()

    @app.get("/boom")
    @public  # a route nobody marked would be refused before it could fail
    def boom() -> str:
        raise RuntimeError(f"token {AUTH_TOKEN} in an exception message")

    response = app.test_client().get("/boom")
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert AUTH_TOKEN not in body and "Traceback" not in body and "RuntimeError" not in body
