"""Twilio's webhooks: signed over the public URL, forward-only, duplicate-proof."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.models import Call, Recording, db
from tests.helpers import (
    BASE_URL,
    call_sid,
    call_status_form,
    post_twilio,
    recording_form,
    recording_sid,
    twilio_signature,
)


def calls_in(app: Flask) -> list[Call]:
    with app.app_context():
        rows = db.session.scalars(select(Call)).all()
        db.session.expunge_all()
        return list(rows)


def test_signed_call_status_is_stored(app: Flask, client: FlaskClient) -> None:
    response = post_twilio(client, "/twilio/call-status", call_status_form(call_sid(), "ringing"))
    assert response.status_code == 204
    (call,) = calls_in(app)
    assert (call.call_sid, call.status, call.direction) == (call_sid(), "ringing", "inbound")
    assert (call.from_number, call.to_number) == ("+14155550123", "+14155550100")


def test_wrong_signature_is_refused_and_stores_nothing(app: Flask, client: FlaskClient) -> None:
    form = call_status_form(call_sid(), "ringing")
    forged = twilio_signature(f"{BASE_URL}/twilio/call-status", form, token="not-the-token")
    response = post_twilio(client, "/twilio/call-status", form, signature=forged)
    assert response.status_code == 403
    assert calls_in(app) == []


def test_missing_signature_is_refused(app: Flask, client: FlaskClient) -> None:
    response = client.post("/twilio/call-status", data=call_status_form(call_sid(), "ringing"))
    assert response.status_code == 403
    assert calls_in(app) == []


def test_signature_over_the_internal_url_is_refused(app: Flask, client: FlaskClient) -> None:
    """Behind a TLS-terminating proxy the app sees http://localhost; Twilio signed BASE_URL."""
    form = call_status_form(call_sid(), "ringing")
    internal = twilio_signature("http://localhost/twilio/call-status", form)
    assert post_twilio(client, "/twilio/call-status", form, signature=internal).status_code == 403


def test_changed_parameter_breaks_the_signature(app: Flask, client: FlaskClient) -> None:
    form = call_status_form(call_sid(), "ringing")
    signature = twilio_signature(f"{BASE_URL}/twilio/call-status", form)
    tampered = dict(form, CallStatus="completed")
    assert post_twilio(client, "/twilio/call-status", tampered, signature=signature).status_code == 403


def test_query_string_is_signed_byte_for_byte(app: Flask, client: FlaskClient) -> None:
    form = call_status_form(call_sid(), "ringing")
    assert post_twilio(client, "/twilio/call-status", form, query="note=a%20b&x=1").status_code == 204
    # The same parameters, encoded differently, are a different URL to Twilio.
    other = twilio_signature(f"{BASE_URL}/twilio/call-status?note=a+b&x=1", form)
    response = post_twilio(client, "/twilio/call-status", form, query="note=a%20b&x=1", signature=other)
    assert response.status_code == 403


def test_forwarded_headers_cannot_make_a_forgery_pass(app: Flask, client: FlaskClient) -> None:
    form = call_status_form(call_sid(), "ringing")
    signature = twilio_signature("https://evil.example/twilio/call-status", form)
    response = client.post(
        "/twilio/call-status",
        data=form,
        headers={
            "X-Twilio-Signature": signature,
            "X-Forwarded-Host": "evil.example",
            "X-Forwarded-Proto": "https",
            "Host": "evil.example",
        },
    )
    assert response.status_code == 403


def test_another_accounts_callback_is_refused(app: Flask, client: FlaskClient) -> None:
    form = call_status_form(call_sid(), "ringing", AccountSid="AC" + "f" * 32)
    assert post_twilio(client, "/twilio/call-status", form).status_code == 403
    assert calls_in(app) == []


def test_without_an_auth_token_twilio_webhooks_answer_503(make_app: Callable[..., Flask]) -> None:
    app = make_app(TWILIO_AUTH_TOKEN=None)
    client = app.test_client()
    form = call_status_form(call_sid(), "ringing")
    response = post_twilio(client, "/twilio/call-status", form)
    assert response.status_code == 503
    assert "TWILIO_AUTH_TOKEN" in response.get_json()["error"]
    assert calls_in(app) == []


def test_get_is_not_a_webhook(client: FlaskClient) -> None:
    assert client.get("/twilio/call-status").status_code == 405


def test_call_life_cycle_fills_in_every_field(app: Flask, client: FlaskClient) -> None:
    sid = call_sid()
    for status in ("initiated", "ringing"):
        post_twilio(client, "/twilio/call-status", call_status_form(sid, status, Direction="outbound-api"))
    answered = call_status_form(
        sid, "in-progress", Direction="outbound-api", Timestamp="Sun, 22 Nov 2026 10:00:05 +0000"
    )
    post_twilio(client, "/twilio/call-status", answered)
    done = call_status_form(
        sid,
        "completed",
        Direction="outbound-api",
        CallDuration="42",
        Timestamp="Sun, 22 Nov 2026 10:00:47 +0000",
    )
    post_twilio(client, "/twilio/call-status", done)
    (call,) = calls_in(app)
    assert (call.status, call.duration, call.direction) == ("completed", 42, "outbound-api")
    assert call.started_at == datetime(2026, 11, 22, 10, 0, 5, tzinfo=UTC)


def test_status_never_moves_backwards(app: Flask, client: FlaskClient) -> None:
    sid = call_sid()
    post_twilio(client, "/twilio/call-status", call_status_form(sid, "completed", CallDuration="9"))
    post_twilio(client, "/twilio/call-status", call_status_form(sid, "ringing"))
    post_twilio(client, "/twilio/call-status", call_status_form(sid, "in-progress"))
    (call,) = calls_in(app)
    assert (call.status, call.duration) == ("completed", 9)


def test_duplicate_callbacks_make_one_row(app: Flask, client: FlaskClient) -> None:
    form = call_status_form(call_sid(), "completed", CallDuration="5")
    for _ in range(5):
        assert post_twilio(client, "/twilio/call-status", form).status_code == 204
    assert len(calls_in(app)) == 1


def test_non_numeric_caller_ids_are_kept(app: Flask, client: FlaskClient) -> None:
    form = call_status_form(call_sid(), "ringing", From="Anonymous", To="client:alice")
    post_twilio(client, "/twilio/call-status", form)
    (call,) = calls_in(app)
    assert (call.from_number, call.to_number) == ("Anonymous", "client:alice")


def test_malformed_call_sid_is_a_400_and_stores_nothing(app: Flask, client: FlaskClient) -> None:
    response = post_twilio(client, "/twilio/call-status", call_status_form("CA-nope", "ringing"))
    assert response.status_code == 400
    assert "CallSid" in response.get_json()["error"]
    assert calls_in(app) == []


def test_recording_before_any_call_status_creates_the_call(app: Flask, client: FlaskClient) -> None:
    form = recording_form(call_sid(), recording_sid(), status="absent", ErrorCode="16101")
    assert post_twilio(client, "/twilio/recording-status", form).status_code == 204
    post_twilio(client, "/twilio/call-status", call_status_form(call_sid(), "completed", CallDuration="3"))
    with app.app_context():
        recording = db.session.scalar(select(Recording))
        assert recording is not None
        assert (recording.status, recording.error_code, recording.stage) == ("absent", "16101", None)
        assert recording.call.status == "completed"
        assert db.session.scalar(select(func.count()).select_from(Call)) == 1


def twiml_of(response: object) -> ET.Element:
    assert response.status_code == 200  # type: ignore[attr-defined]
    assert response.mimetype == "text/xml"  # type: ignore[attr-defined]
    return ET.fromstring(response.get_data())  # type: ignore[attr-defined]


def test_inbound_call_records_a_message_by_default(client: FlaskClient) -> None:
    root = twiml_of(post_twilio(client, "/twilio/voice", call_status_form(call_sid(), "ringing")))
    record = root.find("Record")
    assert record is not None
    assert record.attrib["recordingStatusCallback"] == f"{BASE_URL}/twilio/recording-status"
    assert record.attrib["maxLength"] == "3600"
    assert record.attrib["action"] == f"{BASE_URL}/twilio/recorded"


def test_inbound_call_is_forwarded_with_dual_recording(make_app: Callable[..., Flask]) -> None:
    client = make_app(FORWARD_TO="+14155550199", MAX_RECORDING_SECONDS="90").test_client()
    root = twiml_of(post_twilio(client, "/twilio/voice", call_status_form(call_sid(), "ringing")))
    dial = root.find("Dial")
    assert dial is not None and root.find("Record") is None
    assert dial.attrib["record"] == "record-from-answer-dual"
    assert dial.attrib["recordingStatusCallback"] == f"{BASE_URL}/twilio/recording-status"
    assert dial.findtext("Number") == "+14155550199"


def test_outbound_twiml_and_goodbye_are_signed_routes(client: FlaskClient) -> None:
    form = call_status_form(call_sid(), "in-progress")
    assert twiml_of(post_twilio(client, "/twilio/outbound", form)).find("Record") is not None
    assert twiml_of(post_twilio(client, "/twilio/recorded", form)).find("Hangup") is not None
    assert client.post("/twilio/outbound", data=form).status_code == 403
