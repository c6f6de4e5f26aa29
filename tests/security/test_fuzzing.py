"""Hostile input on every field of every endpoint: never a 500, never a half-stored row.

Unicode and NUL, huge strings, missing, duplicated and wrongly typed fields,
and the caller ids Twilio really sends (Anonymous, client:…, sip:…).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.config import WEBHOOK_HEADER_NAME
from app.models import Call, DialAttempt, Recording, Transcript, db
from tests.helpers import ACCOUNT_SID, ADMIN_PASSWORD, BASE_URL, call_sid, recording_sid, twilio_signature

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

nasty_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=20).map(lambda s: s + "\x00" + s),
    st.integers(1, 200_000).map(lambda n: "9" * n),
    st.sampled_from(
        [
            "",
            "Anonymous",
            "Restricted",
            "client:alice",
            "sip:alice@example.com;transport=tls",
            "<script>alert(1)</script>",
            "' OR 1=1 --",
            "\u202e+1415",
            "%00",
        ]
    ),
)


def fields(names: list[str], valid: dict[str, str]) -> st.SearchStrategy[list[tuple[str, str]]]:
    """Each field valid, hostile, missing or sent twice."""

    def one(name: str) -> st.SearchStrategy[list[tuple[str, str]]]:
        value = st.one_of(st.just(valid[name]), nasty_text)
        return st.one_of(
            st.just([]),
            value.map(lambda v: [(name, v)]),
            st.tuples(value, value).map(lambda vs: [(name, vs[0]), (name, vs[1])]),
        )

    return st.tuples(*[one(n) for n in names]).map(lambda parts: [pair for part in parts for pair in part])


def signed_post(app: Flask, path: str, pairs: list[tuple[str, str]]) -> Any:
    params: dict[str, list[str]] = {}
    for name, value in pairs:
        params.setdefault(name, []).append(value)

    class Multi(dict[str, str]):
        def getall(self, name: str) -> list[str]:
            return params[name]

    signature = twilio_signature(f"{BASE_URL}{path}", Multi({k: v[0] for k, v in params.items()}))
    return app.test_client().post(
        path,
        data=urlencode(pairs),
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": signature},
    )


def count(app: Flask, model: type) -> int:
    with app.app_context():
        n = db.session.scalar(select(func.count()).select_from(model)) or 0
        db.session.rollback()
        return n


CALL_FIELDS = {
    "CallSid": call_sid(7),
    "AccountSid": ACCOUNT_SID,
    "CallStatus": "completed",
    "From": "+14155550123",
    "To": "+14155550100",
    "Direction": "inbound",
    "CallDuration": "12",
    "Timestamp": "Sun, 22 Nov 2026 10:00:00 +0000",
}
RECORDING_FIELDS = {
    "CallSid": call_sid(8),
    "AccountSid": ACCOUNT_SID,
    "RecordingSid": recording_sid(8),
    "RecordingStatus": "completed",
    "RecordingChannels": "2",
    "RecordingDuration": "4",
    "RecordingSource": "DialVerb",
    "ErrorCode": "0",
    "RecordingStartTime": "Sun, 22 Nov 2026 10:00:00 +0000",
}


@FUZZ
@given(pairs=fields(list(CALL_FIELDS), CALL_FIELDS))
def test_call_status_callback(app: Flask, pairs: list[tuple[str, str]]) -> None:
    before = count(app, Call)
    response = signed_post(app, "/twilio/call-status", pairs)
    # 403: a validly signed callback naming another account.
    assert response.status_code in (204, 400, 403), response.get_data(as_text=True)
    if response.status_code != 204:
        assert count(app, Call) == before


@FUZZ
@given(pairs=fields(list(RECORDING_FIELDS), RECORDING_FIELDS))
def test_recording_status_callback(app: Flask, pairs: list[tuple[str, str]]) -> None:
    before = (count(app, Call), count(app, Recording))
    response = signed_post(app, "/twilio/recording-status", pairs)
    # 403: a validly signed callback naming another account.
    assert response.status_code in (204, 400, 403), response.get_data(as_text=True)
    if response.status_code != 204:
        assert (count(app, Call), count(app, Recording)) == before


@FUZZ
@given(pairs=fields(list(CALL_FIELDS), CALL_FIELDS))
def test_voice_webhooks(app: Flask, pairs: list[tuple[str, str]]) -> None:
    for path in ("/twilio/voice", "/twilio/outbound", "/twilio/recorded"):
        # 400 for a NUL: no field Twilio sends can hold one.
        assert signed_post(app, path, pairs).status_code in (200, 400, 403)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | nasty_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)


@FUZZ
@given(
    recording=st.one_of(st.just("1"), nasty_text),
    body=st.one_of(
        json_values,
        st.fixed_dictionaries({"transcript_id": json_values, "status": json_values}),
        st.fixed_dictionaries({"transcript_id": nasty_text}),
    ),
)
def test_assemblyai_webhook(app: Flask, recording: str, body: Any) -> None:
    secret = app.extensions["settings"].webhook_secret
    response = app.test_client().post(
        "/assemblyai/webhook?" + urlencode({"recording": recording}),
        json=body,
        headers={WEBHOOK_HEADER_NAME: secret},
    )
    assert response.status_code in (200, 400), response.get_data(as_text=True)
    assert count(app, Transcript) == 0


@FUZZ
@given(to=json_values, key=st.one_of(st.none(), nasty_text))
def test_dial_json(app: Flask, to: Any, key: str | None) -> None:
    client = app.test_client()
    assert client.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD}).status_code == 302
    # A header can carry no control character; anything else goes.
    key = "".join(c for c in key or "" if c.isprintable())[:200]
    headers = {"Idempotency-Key": key} if key else {}
    response = client.post("/dial", json={"to": to}, headers=headers)
    assert response.status_code in (201, 400, 403, 409, 422, 429), response.get_data(as_text=True)
    with app.app_context():
        outcomes = set(db.session.scalars(select(DialAttempt.outcome)))
        db.session.rollback()
    assert outcomes <= {"placed", "refused", "failed"}, "no attempt may be left pending"


@FUZZ
@given(username=nasty_text, password=nasty_text)
def test_login_form(app: Flask, username: str, password: str) -> None:
    response = app.test_client().post("/login", data={"username": username, "password": password})
    assert response.status_code in (302, 400, 401, 429), response.get_data(as_text=True)


# Ways to name another site that a careless check takes for a path.
off_site = st.sampled_from(
    [
        "//evil.example",
        "///evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        " //evil.example",
        "\x01//evil.example",
        "https://evil.example",
        "https:evil.example",
        "HTTPS://evil.example/",
        "javascript:alert(1)",
        "data:text/html,hi",
        "//evil.example@callscribe.example",
        "/%2F/evil.example",
        "%2F%2Fevil.example",
    ]
)
next_targets = st.one_of(
    nasty_text,
    off_site,
    st.tuples(off_site, nasty_text).map("".join),
    st.tuples(st.sampled_from(["/", "/calls/1", "/?q="]), nasty_text).map("".join),
).map(lambda s: s.replace("\x00", ""))
# A NUL is refused (400) before any login, so it is left out here.


def stays_on_site(location: str) -> bool:
    """True when a browser following ``location`` stays on this site."""
    # Browsers drop tabs and newlines anywhere, and leading spaces and controls.
    seen = re.sub(r"[\t\n\r]", "", location).lstrip("".join(map(chr, range(33))))
    parts = urlsplit(seen)
    return (
        seen.startswith("/")
        and not seen.startswith(("//", "/\\"))
        and "\\" not in seen
        and not parts.scheme
        and not parts.netloc
    )


@FUZZ
@given(next_=next_targets)
def test_login_redirects_only_on_site(app: Flask, next_: str) -> None:
    response = app.test_client().post(
        "/login?" + urlencode({"next": next_}),
        data={"username": "admin", "password": ADMIN_PASSWORD},
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    location = response.headers["Location"]
    assert stays_on_site(location), f"next={next_!r} sent the browser to {location!r}"


@pytest.mark.parametrize("next_", ["/calls/1\n", "/\rx", "/\t/evil.example"])
def test_a_next_with_a_control_character_goes_home(app: Flask, next_: str) -> None:
    response = app.test_client().post(
        "/login?" + urlencode({"next": next_}),
        data={"username": "admin", "password": ADMIN_PASSWORD},
    )
    assert response.status_code == 302 and response.headers["Location"] == "/"


def test_the_on_site_check_itself() -> None:
    assert stays_on_site("/calls/12?page=2")
    assert not stays_on_site("/\t/evil.example") and not stays_on_site("https://evil.example/")


@FUZZ
@given(query=nasty_text, page=nasty_text, call=nasty_text)
def test_dashboard_queries(app: Flask, query: str, page: str, call: str) -> None:
    client = app.test_client()
    client.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD})
    assert client.get("/?" + urlencode({"q": query, "page": page})).status_code in (200, 400)
    assert client.get("/calls/" + urlencode({"": call})[1:]).status_code in (400, 404, 308)
