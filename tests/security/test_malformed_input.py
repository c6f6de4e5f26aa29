"""No 500 from input: numbers that only look like numbers, ids out of range, JSON too deep.

``str.isdigit()`` accepts ``²`` and ``٣``; ``int()`` refuses the first and
reads the second as 3; SQLite and PostgreSQL refuse ids beyond their
integers; Python's JSON parser recurses once per level of nesting. Each of
these once answered 500 (or read a digit nobody wrote); here each is sent
over HTTP as an attacker would, on both storage configurations.
"""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.config import WEBHOOK_HEADER_NAME
from app.models import Call, Recording, db
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import (
    call_sid,
    call_status_form,
    dial_attempts,
    login,
    post_twilio,
    recording_form,
    recording_sid,
)

# Characters str.isdigit() accepts that are no ASCII digit: superscript two,
# Arabic-Indic three, Devanagari seven, full-width five.
LOOK_LIKE_DIGITS = ["²", "٣", "७", "５"]
DEEP_JSON = "[" * 50_000 + "]" * 50_000
# Beyond SQLite's 64-bit integers, and beyond PostgreSQL's 32-bit ids.
HUGE_IDS = ["99999999999999999999999", str(2**31)]


def stored_call(app: Flask, sid: str) -> Call:
    with app.app_context():
        row = db.session.scalars(select(Call).where(Call.call_sid == sid)).one()
        db.session.expunge_all()
        return row


def stored_recording(app: Flask, sid: str) -> Recording:
    with app.app_context():
        row = db.session.scalars(select(Recording).where(Recording.recording_sid == sid)).one()
        db.session.expunge_all()
        return row


def count(app: Flask, model: type) -> int:
    with app.app_context():
        n = db.session.scalar(select(func.count()).select_from(model)) or 0
        db.session.rollback()
        return n


def webhook_headers(app: Flask) -> dict[str, str]:
    return {WEBHOOK_HEADER_NAME: app.extensions["settings"].webhook_secret}


# -- Twilio's numeric fields: optional, so a malformed one is ignored ---------


@pytest.mark.parametrize("digit", LOOK_LIKE_DIGITS)
def test_a_call_duration_is_read_only_from_ascii_digits(app: Flask, client: FlaskClient, digit: str) -> None:
    for n, duration in ((1, digit), (2, " 0042 ")):
        form = call_status_form(call_sid(n), "completed", CallDuration=duration)
        assert post_twilio(client, "/twilio/call-status", form).status_code == 204
    first = stored_call(app, call_sid(1))
    assert (first.status, first.duration) == ("completed", None)
    assert stored_call(app, call_sid(2)).duration == 42


@pytest.mark.parametrize("digit", LOOK_LIKE_DIGITS)
def test_a_recording_duration_is_read_only_from_ascii_digits(
    app: Flask, client: FlaskClient, digit: str
) -> None:
    for n, duration in ((1, digit), (2, " 0042 ")):
        form = recording_form(call_sid(n), recording_sid(n), RecordingDuration=duration)
        assert post_twilio(client, "/twilio/recording-status", form).status_code == 204
    first = stored_recording(app, recording_sid(1))
    assert (first.status, first.duration) == ("completed", None)
    assert stored_recording(app, recording_sid(2)).duration == 42


@pytest.mark.parametrize("digit", ["²", "٢", "２"])
def test_only_an_ascii_2_makes_a_two_channel_recording(app: Flask, client: FlaskClient, digit: str) -> None:
    for n, channels in ((1, digit), (2, "2")):
        form = recording_form(call_sid(n), recording_sid(n), RecordingChannels=channels)
        assert post_twilio(client, "/twilio/recording-status", form).status_code == 204
    first = stored_recording(app, recording_sid(1))
    assert (first.status, first.channels, first.duration) == ("completed", 1, 7)
    assert stored_recording(app, recording_sid(2)).channels == 2


# -- AssemblyAI's webhook: our recording id must be valid ---------------------


@pytest.mark.parametrize("recording", [*LOOK_LIKE_DIGITS, "١", *HUGE_IDS, "9" * 18, "-1", "+1", " 1"])
def test_a_webhook_recording_id_that_is_no_id_is_a_400(
    app: Flask, client: FlaskClient, twilio_api: FakeTwilio, recording: str
) -> None:
    twilio_api.add_recording(recording_sid(), b"RIFF", call_sid())
    post_twilio(client, "/twilio/recording-status", recording_form(call_sid(), recording_sid()))
    assert stored_recording(app, recording_sid()).id == 1
    response = client.post(
        "/assemblyai/webhook",
        query_string={"recording": recording},
        json={"transcript_id": "5551f0a8-0000-4000-8000-000000000000", "status": "completed"},
        headers=webhook_headers(app),
    )
    assert response.status_code == 400, response.get_data(as_text=True)
    assert "recording id" in response.get_json()["error"]


# -- JSON nested too deep -----------------------------------------------------


def test_deep_json_on_the_webhook_is_a_400(app: Flask, client: FlaskClient) -> None:
    response = client.post(
        "/assemblyai/webhook?recording=1",
        data='{"transcript_id": ' + DEEP_JSON + "}",
        content_type="application/json",
        headers=webhook_headers(app),
    )
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["error"]


def test_deep_json_on_dial_is_a_400_and_dials_nothing(
    app: Flask, client: FlaskClient, twilio_api: FakeTwilio
) -> None:
    login(client)
    response = client.post(
        "/dial",
        data='{"to": ' + DEEP_JSON + "}",
        content_type="application/json",
        headers={"X-CSRFToken": client.csrf_token()},  # type: ignore[attr-defined]
    )
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["error"]
    assert twilio_api.calls_created == []
    # The refusal is on the audit trail, as every /dial attempt is; nothing else is stored.
    assert [a.outcome for a in dial_attempts(app)] == ["refused"]


def nested(levels: int) -> str:
    """A /dial body ``levels`` deep in all, with brackets inside its strings that do not count."""
    inner = "[" * (levels - 2) + '"]]]]"' + "]" * (levels - 2)
    return '{"to": "+14155550199", "note": "[[[[{{{{", "extra": [' + inner + "]}"


def test_dial_json_may_nest_64_deep_and_no_deeper(client: FlaskClient, twilio_api: FakeTwilio) -> None:
    login(client)
    headers = {"X-CSRFToken": client.csrf_token()}  # type: ignore[attr-defined]
    too_deep = client.post("/dial", data=nested(65), content_type="application/json", headers=headers)
    assert too_deep.status_code == 400
    assert twilio_api.calls_created == []
    deep_enough = client.post("/dial", data=nested(64), content_type="application/json", headers=headers)
    assert deep_enough.status_code == 201, deep_enough.get_data(as_text=True)
    assert len(twilio_api.calls_created) == 1


# -- recording ids in paths: out of range or not ASCII is no such page --------


@pytest.mark.parametrize("recording", [*HUGE_IDS, "١", "０１"])
def test_a_recording_path_with_no_valid_id_is_a_404(
    app: Flask, client: FlaskClient, twilio_api: FakeTwilio, recording: str
) -> None:
    twilio_api.add_recording(recording_sid(), b"RIFF" + bytes(100), call_sid())
    post_twilio(client, "/twilio/recording-status", recording_form(call_sid(), recording_sid()))
    assert stored_recording(app, recording_sid()).id == 1
    login(client)
    assert client.get(f"/recordings/{recording}/audio").status_code == 404
    assert client.post(f"/recordings/{recording}/retry").status_code == 404
    assert twilio_api.media_downloads(recording_sid()) == 0


# -- the dashboard's page number --------------------------------------------


@pytest.mark.parametrize("page", ["٣", "³", "３", "-3", "+3", "0", "100001", "9" * 30, "", "2"])
def test_any_old_page_number_goes_to_the_first_page(client: FlaskClient, page: str) -> None:
    """Pages follow a cursor now; an old ?page= link, whatever it holds, is the first page."""
    form = call_status_form(call_sid(), "completed", From="+14155550123")
    assert post_twilio(client, "/twilio/call-status", form).status_code == 204
    login(client)
    moved = client.get("/", query_string={"page": page, "q": "5550123"})
    assert moved.status_code == 302 and moved.headers["Location"] == "/?q=5550123"
    assert "+14155550123" in client.get(moved.headers["Location"]).get_data(as_text=True), "the first page"
