"""Placing an outbound recorded call: POST /dial from the page's form or a script's JSON.

Twilio is faked at the HTTP boundary; every test checks what (if anything)
reached it, and what was stored.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.models import Call, DialAttempt, db
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import ACCOUNT_SID, AUTH_TOKEN, BASE_URL, TWILIO_NUMBER, login

CALLEE = "+14155550199"


def calls_in(app: Flask) -> list[Call]:
    with app.app_context():
        rows = db.session.scalars(select(Call)).all()
        db.session.expunge_all()
        return list(rows)


def dial_attempts(app: Flask) -> list[DialAttempt]:
    with app.app_context():
        rows = db.session.scalars(select(DialAttempt).order_by(DialAttempt.id)).all()
        db.session.expunge_all()
        return list(rows)


def page_text(response: Any) -> str:
    return html.unescape(response.get_data(as_text=True))


def test_get_dial_is_405_and_reaches_no_twilio(admin: FlaskClient, twilio_api: FakeTwilio) -> None:
    assert admin.get("/dial", query_string={"to": CALLEE}).status_code == 405
    assert twilio_api.requests == []


# -- without a login ---------------------------------------------------------


def test_json_dial_without_login_is_a_401_json_answer(
    app: Flask, client: FlaskClient, twilio_api: FakeTwilio
) -> None:
    """Scripts cannot follow a redirect to an HTML login form; they need a 401 they can read."""
    response = client.post("/dial", json={"to": CALLEE})
    assert twilio_api.requests == []
    assert calls_in(app) == []
    assert response.status_code == 401
    assert response.is_json
    assert response.get_json()["error"]


def test_form_dial_without_login_redirects_to_login(
    app: Flask, client: FlaskClient, twilio_api: FakeTwilio
) -> None:
    response = client.post("/dial", data={"to": CALLEE})
    assert response.status_code == 302
    assert urlsplit(response.location).path == "/login"
    assert twilio_api.requests == []
    assert calls_in(app) == []


# -- numbers that cannot be dialled -----------------------------------------------

INVALID = [
    pytest.param({"to": "4155550100"}, "E.164", id="no-plus"),
    pytest.param({"to": "+1 415 555"}, "not a valid number", id="too-short"),
    pytest.param({"to": "+999123"}, "not a phone number", id="no-such-country"),
    pytest.param({"to": "abc"}, "E.164", id="letters"),
    pytest.param({"to": ""}, "Enter the number", id="empty"),
    pytest.param({}, "Enter the number", id="missing"),
]


@pytest.mark.parametrize(("body", "reason"), INVALID)
def test_invalid_number_by_json_is_a_400_with_the_reason(
    app: Flask, admin: FlaskClient, twilio_api: FakeTwilio, body: dict[str, str], reason: str
) -> None:
    response = admin.post("/dial", json=body)
    assert response.status_code == 400
    assert reason in response.get_json()["error"]
    assert twilio_api.requests == []
    assert calls_in(app) == []


@pytest.mark.parametrize(("body", "reason"), INVALID)
def test_invalid_number_by_form_is_a_400_page_with_the_reason(
    app: Flask, admin: FlaskClient, twilio_api: FakeTwilio, body: dict[str, str], reason: str
) -> None:
    response = admin.post("/dial", data=body)
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert reason in page_text(response)
    assert twilio_api.requests == []
    assert calls_in(app) == []


def test_json_body_that_is_not_an_object_is_a_400(
    app: Flask, admin: FlaskClient, twilio_api: FakeTwilio
) -> None:
    response = admin.post("/dial", json=[CALLEE])
    assert response.status_code == 400
    assert response.get_json()["error"]
    assert twilio_api.requests == []
    assert calls_in(app) == []


# -- placing the call --------------------------------------------------------------


def test_valid_number_by_json_places_the_call(admin: FlaskClient, twilio_api: FakeTwilio) -> None:
    response = admin.post("/dial", json={"to": CALLEE})
    assert response.status_code == 201
    (sid,) = twilio_api.calls
    assert response.get_json() == {"call_sid": sid, "status": "queued", "to": CALLEE}


def test_twilio_receives_exactly_the_call_to_place(admin: FlaskClient, twilio_api: FakeTwilio) -> None:
    admin.post("/dial", json={"to": CALLEE})
    (request,) = twilio_api.requests_of("calls_create")
    assert request.authorized
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json"
    assert twilio_api.calls_created == [
        {
            "To": [CALLEE],
            "From": [TWILIO_NUMBER],
            "Url": [f"{BASE_URL}/twilio/outbound"],
            "Method": ["POST"],
            "StatusCallback": [f"{BASE_URL}/twilio/call-status"],
            "StatusCallbackMethod": ["POST"],
            "StatusCallbackEvent": ["initiated", "ringing", "answered", "completed"],
        }
    ]


def test_placed_call_is_stored_as_outbound(app: Flask, admin: FlaskClient, twilio_api: FakeTwilio) -> None:
    admin.post("/dial", json={"to": CALLEE})
    (sid,) = twilio_api.calls
    (call,) = calls_in(app)
    assert (call.call_sid, call.direction, call.to_number, call.from_number, call.status) == (
        sid,
        "outbound-api",
        CALLEE,
        TWILIO_NUMBER,
        "queued",
    )


def test_number_is_normalised_before_it_is_sent(admin: FlaskClient, twilio_api: FakeTwilio) -> None:
    response = admin.post("/dial", json={"to": " +1 415-555-0199 "})
    assert response.status_code == 201
    assert [created["To"] for created in twilio_api.calls_created] == [[CALLEE]]


def test_valid_number_by_form_opens_the_calls_page(admin: FlaskClient, twilio_api: FakeTwilio) -> None:
    response = admin.post("/dial", data={"to": CALLEE})
    assert response.status_code == 302
    (sid,) = twilio_api.calls
    assert response.location == f"/calls/{sid}"
    shown = admin.get(response.location)
    assert shown.status_code == 200
    assert CALLEE in page_text(shown)


# -- Twilio says no -------------------------------------------------------------------


def test_twilio_refusing_is_a_502_with_its_reason(
    app: Flask, admin: FlaskClient, twilio_api: FakeTwilio
) -> None:
    twilio_api.fail_next_call_create()
    response = admin.post("/dial", json={"to": CALLEE})
    assert response.status_code == 502
    assert "Invalid 'To' Phone Number" in response.get_json()["error"]
    assert len(twilio_api.requests_of("calls_create")) == 1
    assert calls_in(app) == []


@pytest.mark.parametrize("kind", ["json", "form"])
def test_twilio_refusal_shows_no_traceback_url_or_credentials(
    admin: FlaskClient, twilio_api: FakeTwilio, kind: str
) -> None:
    twilio_api.fail_next_call_create()
    if kind == "json":
        response = admin.post("/dial", json={"to": CALLEE})
    else:
        response = admin.post("/dial", data={"to": CALLEE})
    assert response.status_code == 502
    text = page_text(response)
    assert "Invalid 'To' Phone Number" in text
    for leak in ("Traceback", AUTH_TOKEN, twilio_api.base_url, "/Accounts/", "Calls.json"):
        assert leak not in text


def test_twilio_refusing_a_blocked_destination_says_so(
    app: Flask, admin: FlaskClient, twilio_api: FakeTwilio
) -> None:
    """Twilio's geo permissions can refuse what our own policy allows: 21215."""
    twilio_api.block_destinations("+1415555")
    response = admin.post("/dial", json={"to": CALLEE})
    assert response.status_code == 502
    assert response.get_json() == {
        # "Unable to create record:" is how the twilio library words a refused create.
        "error": "Twilio refused the call: Unable to create record: "
        f"Account not authorized to call {CALLEE}. "
        "Perhaps you need to enable some international permissions. (error 21215)"
    }
    assert twilio_api.calls == {} and calls_in(app) == []
    (attempt,) = dial_attempts(app)
    assert (attempt.outcome, attempt.to_number) == ("failed", CALLEE)
    assert attempt.reason is not None and "(error 21215)" in attempt.reason


def test_twilio_refusing_our_caller_id_shows_on_the_dashboard(
    make_app: Callable[..., Flask], twilio_api: FakeTwilio
) -> None:
    """A TWILIO_PHONE_NUMBER the account neither owns nor verified: 21210."""
    app = make_app(TWILIO_PHONE_NUMBER="+14155550111")
    client = app.test_client()
    assert login(client).status_code == 302
    response = client.post("/dial", data={"to": CALLEE})
    assert response.status_code == 502
    assert response.mimetype == "text/html"
    (flashed,) = re.findall(r'<p id="dial-error" class="error"[^>]*>([^<]*)</p>', page_text(response))
    assert flashed.startswith(
        "Twilio refused the call: Unable to create record: The source phone number provided, +14155550111, "
        "is not yet verified for your account."
    )
    assert flashed.endswith("(error 21210)")
    assert twilio_api.calls == {} and calls_in(app) == []
    twilio_api.verify_caller_id("+14155550111")
    placed = client.post("/dial", data={"to": CALLEE})
    assert placed.status_code == 302
    (sid,) = twilio_api.calls
    assert twilio_api.calls[sid]["from"] == "+14155550111"


# -- not configured ------------------------------------------------------------------------


@pytest.mark.parametrize("variable", ["TWILIO_PHONE_NUMBER", "TWILIO_ACCOUNT_SID"])
def test_dial_without_a_twilio_setting_is_a_503_naming_it(
    make_app: Callable[..., Flask], twilio_api: FakeTwilio, variable: str
) -> None:
    app = make_app(**{variable: None})
    client = app.test_client()
    assert login(client).status_code == 302
    response = client.post("/dial", json={"to": CALLEE})
    assert response.status_code == 503
    assert variable in response.get_json()["error"]
    assert twilio_api.requests == []
    assert calls_in(app) == []


def test_form_dial_without_a_twilio_setting_is_a_503_page_naming_it(
    make_app: Callable[..., Flask], twilio_api: FakeTwilio
) -> None:
    """The dashboard's form must answer with a page, not a script's JSON."""
    app = make_app(TWILIO_PHONE_NUMBER=None)
    client = app.test_client()
    assert login(client).status_code == 302
    response = client.post("/dial", data={"to": CALLEE})
    assert response.status_code == 503
    assert response.mimetype == "text/html"
    assert "TWILIO_PHONE_NUMBER" in page_text(response)
    assert twilio_api.requests == []
