"""/dial spends money: only allowed countries, no premium ranges, limits, an audit trail, no double dial."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from app.models import IdempotencyKey, db
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import dial_attempts, login

US_NUMBER = "+14155550123"
UK_MOBILE = "+447400123456"


def dial(app: Flask, to: str, **headers: str) -> object:
    client = app.test_client()
    login(client)
    return client.post("/dial", json={"to": to}, headers=headers)


def test_only_the_twilio_numbers_country_by_default(app: Flask, twilio_api: FakeTwilio) -> None:
    response = dial(app, UK_MOBILE)
    assert response.status_code == 403  # type: ignore[attr-defined]
    assert "GB" in response.get_json()["error"] and "DIAL_ALLOWED_COUNTRIES" in response.get_json()["error"]  # type: ignore[attr-defined]
    assert twilio_api.calls_created == []
    (attempt,) = dial_attempts(app)
    assert (attempt.username, attempt.to_number, attempt.outcome) == ("admin", UK_MOBILE, "refused")


def test_allowed_countries_are_configurable(make_app: Callable[..., Flask], twilio_api: FakeTwilio) -> None:
    app = make_app(DIAL_ALLOWED_COUNTRIES="US,GB")
    assert dial(app, UK_MOBILE).status_code == 201  # type: ignore[attr-defined]
    assert [c["To"] for c in twilio_api.calls_created] == [[UK_MOBILE]]


@pytest.mark.parametrize("number", ["+19005550100", "+448712345678"])
def test_premium_rate_numbers_are_never_dialled(
    make_app: Callable[..., Flask], twilio_api: FakeTwilio, number: str
) -> None:
    app = make_app(DIAL_ALLOWED_COUNTRIES="US,GB")
    response = dial(app, number)
    assert response.status_code == 403  # type: ignore[attr-defined]
    assert "premium-rate" in response.get_json()["error"]  # type: ignore[attr-defined]
    assert twilio_api.calls_created == []


@pytest.mark.parametrize(
    ("setting", "says"),
    [
        ("DIAL_PER_USER_PER_HOUR", "in the last hour"),
        ("DIAL_PER_HOUR", "DIAL_PER_HOUR"),
        ("DIAL_DAILY_LIMIT", "daily"),
    ],
)
def test_limits_stop_the_next_call(
    make_app: Callable[..., Flask], twilio_api: FakeTwilio, setting: str, says: str
) -> None:
    app = make_app(**{setting: "2"})
    assert [dial(app, US_NUMBER).status_code for _ in range(2)] == [201, 201]  # type: ignore[attr-defined]
    refused = dial(app, US_NUMBER)
    assert refused.status_code == 429  # type: ignore[attr-defined]
    assert says in refused.get_json()["error"]  # type: ignore[attr-defined]
    assert len(twilio_api.calls_created) == 2
    assert [a.outcome for a in dial_attempts(app)] == ["placed", "placed", "refused"]


def test_the_audit_row_is_written_before_twilio_is_called(app: Flask, twilio_api: FakeTwilio) -> None:
    twilio_api.delay_next("calls_create", 1.0)  # Twilio takes a second to answer
    worker = threading.Thread(target=dial, args=(app, US_NUMBER))
    worker.start()
    try:
        deadline = time.monotonic() + 5
        while not (seen := dial_attempts(app)) and time.monotonic() < deadline:
            time.sleep(0.02)
        # The first sight of the row is while Twilio still works on the call.
        (attempt,) = seen
        assert (attempt.outcome, attempt.to_number, attempt.username) == ("pending", US_NUMBER, "admin")
    finally:
        worker.join(timeout=10)
    (attempt,) = dial_attempts(app)
    assert attempt.outcome == "placed" and attempt.call_sid


def test_a_twilio_refusal_is_audited_with_its_short_reason(app: Flask, twilio_api: FakeTwilio) -> None:
    twilio_api.fail_next_call_create()
    response = dial(app, US_NUMBER)
    assert response.status_code == 502  # type: ignore[attr-defined]
    (attempt,) = dial_attempts(app)
    assert attempt.outcome == "failed" and "Invalid 'To' Phone Number" in (attempt.reason or "")


def test_a_double_submitted_form_dials_once(app: Flask, twilio_api: FakeTwilio) -> None:
    client = app.test_client()
    login(client)
    form = {"to": US_NUMBER, "request_key": "4f1c2b7e9a0d4c3b8e6f5a4d3c2b1a09"}
    first = client.post("/dial", data=form)
    second = client.post("/dial", data=form)
    assert first.status_code == second.status_code == 302
    assert first.headers["Location"] == second.headers["Location"]
    assert len(twilio_api.calls_created) == 1


def logged_in(app: Flask) -> FlaskClient:
    client = app.test_client()
    assert login(client).status_code == 302
    return client


def submitted_at_once(app: Flask, forms: list[dict[str, str]]) -> list[TestResponse]:
    """Post each form from its own logged-in client, all released by one barrier."""
    clients = [logged_in(app) for _ in forms]
    barrier = threading.Barrier(len(forms))
    answers: list[TestResponse | None] = [None] * len(forms)

    def submit(index: int) -> None:
        barrier.wait(timeout=10)
        answers[index] = clients[index].post("/dial", data=forms[index])

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(len(forms))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert all(answer is not None for answer in answers), "a submit never finished"
    return [answer for answer in answers if answer is not None]


def test_the_same_form_submitted_twice_at_once_dials_once(app: Flask, twilio_api: FakeTwilio) -> None:
    twilio_api.delay_next("calls_create", 0.5)  # the first is still at Twilio when the second lands
    form = {"to": US_NUMBER, "request_key": "0b5e3c1d7f2a4e6b9c8d1a2f3e4b5c6d"}
    answers = submitted_at_once(app, [form, form])
    assert len(twilio_api.calls_created) == 1
    (attempt,) = dial_attempts(app)
    assert attempt.outcome == "placed"
    with app.app_context():
        (key,) = db.session.scalars(select(IdempotencyKey)).all()
        assert (key.key, key.status, key.answer["call_sid"]) == (form["request_key"], 201, attempt.call_sid)
    (sid,) = twilio_api.calls
    placed = [a for a in answers if a.status_code == 302]
    assert placed and all(a.headers["Location"] == f"/calls/{sid}" for a in placed)
    others = [a for a in answers if a.status_code != 302]
    assert all(a.status_code == 409 and "already sent" in a.get_data(as_text=True) for a in others)


def test_two_forms_at_once_within_the_limit_both_dial(
    make_app: Callable[..., Flask], twilio_api: FakeTwilio
) -> None:
    app = make_app(DIAL_PER_USER_PER_HOUR="2")
    twilio_api.delay_next("calls_create", 0.5, times=2)
    forms = [{"to": US_NUMBER, "request_key": key} for key in ("a" * 32, "b" * 32)]
    answers = submitted_at_once(app, forms)
    assert [a.status_code for a in answers] == [302, 302]
    assert len(twilio_api.calls_created) == 2
    assert [a.outcome for a in dial_attempts(app)] == ["placed", "placed"]


def test_two_forms_at_once_at_the_limit_dial_only_the_allowed_one(
    make_app: Callable[..., Flask], twilio_api: FakeTwilio
) -> None:
    app = make_app(DIAL_PER_USER_PER_HOUR="1")
    twilio_api.delay_next("calls_create", 0.5, times=2)
    forms = [{"to": US_NUMBER, "request_key": key} for key in ("a" * 32, "b" * 32)]
    answers = submitted_at_once(app, forms)
    assert sorted(a.status_code for a in answers) == [302, 429]
    assert len(twilio_api.calls_created) == 1
    assert sorted(a.outcome for a in dial_attempts(app)) == ["placed", "refused"]


def test_a_repeated_idempotency_key_dials_once(app: Flask, twilio_api: FakeTwilio) -> None:
    first = dial(app, US_NUMBER, **{"Idempotency-Key": "retry-1"})
    again = dial(app, US_NUMBER, **{"Idempotency-Key": "retry-1"})
    assert first.get_json()["call_sid"] == again.get_json()["call_sid"]  # type: ignore[attr-defined]
    assert len(twilio_api.calls_created) == 1


def test_the_form_carries_a_fresh_request_key(app: Flask) -> None:
    client = app.test_client()
    login(client)
    pages = [client.get("/").get_data(as_text=True) for _ in range(2)]
    keys = [p.split('name="request_key" value="')[1].split('"')[0] for p in pages]
    assert keys[0] != keys[1] and all(len(k) == 32 for k in keys)
