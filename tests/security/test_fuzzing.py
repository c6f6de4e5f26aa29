"""Hostile input on every field of every endpoint: never a 500, never a half-stored row.

Unicode and NUL, huge strings, missing, duplicated and wrongly typed fields,
and the caller ids Twilio really sends (Anonymous, client:…, sip:…); digits
of other scripts that ``str.isdigit()`` takes for numbers (², ٣, ७, full-width),
integers beyond any column, and JSON nested thousands deep.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import pytest
from flask import Flask
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.config import WEBHOOK_HEADER_NAME
from app.models import Call, DialAttempt, Recording, Transcript, User, db
from app.states import CallStatus, DialOutcome, RecordingStatus
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import (
    ACCOUNT_SID,
    ADMIN_PASSWORD,
    BASE_URL,
    call_sid,
    call_status_form,
    login,
    post_twilio,
    recording_form,
    recording_sid,
    twilio_signature,
)

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# What str.isdigit() or int() takes for a number and a strict reader must not:
# other scripts' digits, superscripts, signs, spaces, underscores, and
# integers beyond 32 and 64 bits.
numberish = st.one_of(
    st.sampled_from(
        ["²", "٣", "७", "１２", "1²", "¹⁰", "𝟙", "٠", "-1", "+1", " 7 ", "1_000", "1e3", "0x10", "٣٣٣"]
    ),
    st.text(
        alphabet=st.characters(categories=["Nd", "No"], exclude_characters="0123456789"),
        min_size=1,
        max_size=8,
    ),
    st.tuples(st.integers(0, 99), st.sampled_from(["²", "٣", "７"])).map(lambda t: f"{t[0]}{t[1]}"),
    st.integers(-(10**30), 10**30).map(str),
    st.integers(2**31 - 2, 2**31 + 2).map(str),
    st.integers(2**63 - 2, 2**63 + 2).map(str),
)
# JSON arrays and objects nested far deeper than any real body.
deep_json = st.tuples(st.integers(65, 5_000), st.booleans()).map(
    lambda t: "[" * t[0] + "1" + "]" * t[0] if t[1] else '{"a": ' * t[0] + "1" + "}" * t[0]
)

nasty_text = st.one_of(
    st.text(max_size=40),
    numberish,
    deep_json,
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


TABLES = (Call, Recording, Transcript, DialAttempt, User)
# The widest number a Twilio count may be stored as (nine digits: any INTEGER).
MAX_TWILIO_NUMBER = 999_999_999


def row_counts(app: Flask) -> tuple[int, ...]:
    return tuple(count(app, model) for model in TABLES)


def assert_rows_are_whole(app: Flask) -> None:
    """Every stored row is one a valid request could have written, with nothing left half-done."""
    with app.app_context():
        for call in db.session.scalars(select(Call)):
            assert re.fullmatch(r"CA[0-9a-f]{32}", call.call_sid), call.call_sid
            assert call.status is None or call.status in set(CallStatus), call.status
            assert call.duration is None or 0 <= call.duration <= MAX_TWILIO_NUMBER, call.duration
        for recording in db.session.scalars(select(Recording)):
            assert re.fullmatch(r"RE[0-9a-f]{32}", recording.recording_sid), recording.recording_sid
            assert recording.call is not None and recording.status in set(RecordingStatus)
            assert recording.channels in (1, 2), recording.channels
            assert recording.duration is None or 0 <= recording.duration <= MAX_TWILIO_NUMBER
        outcomes = set(db.session.scalars(select(DialAttempt.outcome)))
        assert outcomes <= {DialOutcome.PLACED, DialOutcome.REFUSED, DialOutcome.FAILED}, "none left pending"
        db.session.rollback()


def answered(response: Any, allowed: tuple[int, ...]) -> int:
    text = response.get_data(as_text=True)  # read to the end: a streamed body is closed
    assert response.status_code in allowed, (response.status_code, text[:300])
    return int(response.status_code)


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


def with_field(valid: dict[str, str], name: str, value: str) -> list[tuple[str, str]]:
    return [*{**valid, name: value}.items()]


@FUZZ
@given(pairs=fields(list(CALL_FIELDS), CALL_FIELDS))
@example(pairs=with_field(CALL_FIELDS, "CallDuration", "²"))
def test_call_status_callback(app: Flask, pairs: list[tuple[str, str]]) -> None:
    before = row_counts(app)
    # 403: a validly signed callback naming another account.
    if answered(signed_post(app, "/twilio/call-status", pairs), (204, 400, 403)) != 204:
        assert row_counts(app) == before
    assert_rows_are_whole(app)


@FUZZ
@given(pairs=fields(list(RECORDING_FIELDS), RECORDING_FIELDS))
@example(pairs=with_field(RECORDING_FIELDS, "RecordingDuration", "²"))
@example(pairs=with_field(RECORDING_FIELDS, "RecordingChannels", "²"))
def test_recording_status_callback(app: Flask, pairs: list[tuple[str, str]]) -> None:
    before = row_counts(app)
    # 403: a validly signed callback naming another account.
    if answered(signed_post(app, "/twilio/recording-status", pairs), (204, 400, 403)) != 204:
        assert row_counts(app) == before
    assert_rows_are_whole(app)


@FUZZ
@given(pairs=fields(list(CALL_FIELDS), CALL_FIELDS))
def test_voice_webhooks(app: Flask, pairs: list[tuple[str, str]]) -> None:
    before = row_counts(app)
    for path in ("/twilio/voice", "/twilio/outbound", "/twilio/recorded"):
        # 400 for a NUL: no field Twilio sends can hold one.
        answered(signed_post(app, path, pairs), (200, 400, 403))
    assert row_counts(app) == before


def ascii_count(text: str) -> int | None:
    """What a Twilio count must be read as: ASCII digits (spaces around allowed), nine at most."""
    text = text.strip()
    if not re.fullmatch(r"[0-9]{1,18}", text) or int(text) > MAX_TWILIO_NUMBER:
        return None
    return int(text)


sids = itertools.count(1000)


@FUZZ
@given(value=st.one_of(numberish, nasty_text, st.integers(0, 10**12).map(str)))
@example(value="²")
@example(value="٣")
def test_twilio_counts_are_read_only_from_ascii_digits(app: Flask, value: str) -> None:
    """Every numeric field of every Twilio callback: ASCII digits are the number, anything else none."""
    value = value.replace("\x00", "")  # a NUL is refused whole, tested above
    n = next(sids)
    client = app.test_client()
    form = call_status_form(call_sid(n), "completed", CallDuration=value)
    answered(post_twilio(client, "/twilio/call-status", form), (204,))
    for field in ("RecordingDuration", "RecordingChannels"):
        n = next(sids)
        form = recording_form(call_sid(n), recording_sid(n), **{field: value})
        answered(post_twilio(client, "/twilio/recording-status", form), (204,))
    with app.app_context():
        calls = db.session.scalars(select(Call).order_by(Call.id.desc()).limit(3)).all()
        recordings = db.session.scalars(select(Recording).order_by(Recording.id.desc()).limit(2)).all()
        assert calls[-1].duration == ascii_count(value)
        channels, duration = recordings
        assert channels.channels == (2 if ascii_count(value) == 2 else 1)
        assert duration.duration == ascii_count(value)
        db.session.rollback()
    assert_rows_are_whole(app)


def webhook_body(transcript_id: str) -> str:
    return json.dumps({"transcript_id": transcript_id, "status": "completed"})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | nasty_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)
# Bodies as they arrive: any JSON, the right shape with wrong values, JSON
# nested too deep (alone or inside the right shape), and text that is no JSON.
webhook_bodies = st.one_of(
    json_values.map(json.dumps),
    st.fixed_dictionaries({"transcript_id": json_values, "status": json_values}).map(json.dumps),
    st.fixed_dictionaries({"transcript_id": nasty_text}).map(json.dumps),
    deep_json,
    deep_json.map(lambda deep: '{"transcript_id": ' + deep + ', "status": "completed"}'),
    st.integers(30, 5000).map(lambda n: '{"transcript_id": ' + "9" * n + "}"),
    st.text(max_size=60),
)


@FUZZ
@given(recording=st.one_of(st.just("1"), nasty_text), body=webhook_bodies)
@example(recording="²", body=webhook_body("5551f0a8-0000-4000-8000-000000000000"))
@example(recording="1", body="[" * 50_000 + "]" * 50_000)
def test_assemblyai_webhook(app: Flask, recording: str, body: str) -> None:
    secret = app.extensions["settings"].webhook_secret
    before = row_counts(app)
    response = app.test_client().post(
        "/assemblyai/webhook?" + urlencode({"recording": recording}),
        data=body,
        content_type="application/json",
        headers={WEBHOOK_HEADER_NAME: secret},
    )
    answered(response, (200, 400))
    assert row_counts(app) == before


dial_bodies = st.one_of(
    st.fixed_dictionaries({"to": json_values}).map(json.dumps),
    st.fixed_dictionaries({"to": st.one_of(numberish, nasty_text)}).map(json.dumps),
    deep_json,
    deep_json.map(lambda deep: '{"to": ' + deep + "}"),
    deep_json.map(lambda deep: '{"to": "+14155550199", "extra": ' + deep + "}"),
    st.text(max_size=60),
)


@FUZZ
@given(body=dial_bodies, key=st.one_of(st.none(), nasty_text))
@example(body='{"to": ' + "[" * 50_000 + "]" * 50_000 + "}", key=None)
def test_dial_json(app: Flask, body: str, key: str | None) -> None:
    client = app.test_client()
    assert login(client).status_code == 302
    # A header can carry no control character; anything else goes.
    key = "".join(c for c in key or "" if c.isprintable())[:200]
    headers = {"Idempotency-Key": key} if key else {}
    headers["X-CSRFToken"] = client.csrf_token()  # type: ignore[attr-defined]
    response = client.post("/dial", data=body, content_type="application/json", headers=headers)
    answered(response, (201, 400, 403, 409, 422, 429))
    assert_rows_are_whole(app)


@FUZZ
@given(to=st.one_of(st.just("+14155550199"), numberish, nasty_text), key=st.one_of(st.none(), nasty_text))
def test_dial_form(app: Flask, to: str, key: str | None) -> None:
    client = app.test_client()
    assert login(client).status_code == 302
    form = {"to": to} if key is None else {"to": to, "request_key": key}
    # 400 also for a NUL, refused before anything is written.
    answered(client.post("/dial", data=form), (302, 400, 403, 409, 422, 429))
    assert_rows_are_whole(app)


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


@pytest.mark.parametrize("next_", ["/calls/1\n", "/\rx", "/\t/evil.example", "//evil.example[1"])
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
@given(query=nasty_text, page=st.one_of(numberish, nasty_text), call=nasty_text)
def test_dashboard_queries(app: Flask, query: str, page: str, call: str) -> None:
    client = app.test_client()
    client.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD})
    assert client.get("/?" + urlencode({"q": query, "before": page, "limit": page})).status_code in (200, 400)
    assert client.get("/api/calls?" + urlencode({"q": query, "before": page})).status_code in (200, 400)
    # An old page link, whatever it holds, goes to the first page.
    assert client.get("/?" + urlencode({"q": query, "page": page})).status_code in (302, 400)
    assert client.get("/calls/" + urlencode({"": call})[1:]).status_code in (400, 404, 308)


@pytest.fixture
def recorded(app: Flask, twilio_api: FakeTwilio) -> Flask:
    """The app with recording 1 stored (completed, its audio at the fake Twilio)."""
    twilio_api.add_recording(recording_sid(), b"RIFF" + bytes(64), call_sid())
    post_twilio(app.test_client(), "/twilio/recording-status", recording_form(call_sid(), recording_sid()))
    return app


@FUZZ
@given(recording=st.one_of(st.just("1"), numberish, nasty_text))
@example(recording="99999999999999999999999")
@example(recording=str(2**31))
def test_recording_paths(recorded: Flask, recording: str) -> None:
    client = recorded.test_client()
    assert login(client).status_code == 302
    path = "/recordings/" + quote(recording, safe="")
    before = row_counts(recorded)
    # 308: Werkzeug's redirect for a path with an empty segment.
    answered(client.get(path + "/audio"), (200, 308, 400, 404))
    answered(client.post(path + "/retry"), (302, 308, 400, 404))
    assert row_counts(recorded) == before
    assert_rows_are_whole(recorded)


@FUZZ
@given(
    username=nasty_text,
    password=nasty_text,
    role=st.one_of(st.sampled_from(["admin", "member", "viewer"]), nasty_text),
    scope=st.one_of(st.sampled_from(["calls:read", "calls:dial", "calls:delete"]), nasty_text),
    expires=st.one_of(st.sampled_from(["30d", "12h", "90m", ""]), numberish, nasty_text),
    token_id=st.one_of(numberish, st.integers(-5, 10**30).map(str), nasty_text),
)
def test_users_page_forms(
    app: Flask, username: str, password: str, role: str, scope: str, expires: str, token_id: str
) -> None:
    """Every form of /users, and the names and ids in its paths."""
    client = app.test_client()
    assert login(client).status_code == 302
    name = quote(username, safe="") or "x"
    tried = [
        client.post("/users", data={"username": username, "password": password, "role": role}),
        client.post(f"/users/{name}/role", data={"role": role}),
        client.post(f"/users/{name}/tokens", data={"scope": scope, "expires": expires}),
        client.post(f"/tokens/{quote(token_id, safe='')}/revoke"),
        client.post(f"/users/{name}/remove"),
    ]
    for response in tried:
        # 400: refused with a reason (or a NUL); 404: a path no route has; 302: done.
        answered(response, (302, 400, 404, 405, 308))
    assert_rows_are_whole(app)
