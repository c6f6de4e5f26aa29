"""Idempotency-Key on /dial, as payment APIs do it: scoped to the user, checked against the request."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from app.models import DialAttempt, IdempotencyKey, db, utcnow
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import login

PASSWORD = "a long enough password"
FIRST, SECOND = "+14155550123", "+14155550124"


def dial(client: FlaskClient, to: str, key: str) -> Any:
    return client.post("/dial", json={"to": to}, headers={"Idempotency-Key": key})


def admin(app: Flask) -> FlaskClient:
    client = app.test_client()
    assert login(client).status_code == 302
    return client


def test_the_same_key_and_request_get_the_first_answer_and_dial_once(
    app: Flask, twilio_api: FakeTwilio
) -> None:
    client = admin(app)
    first = dial(client, FIRST, "order-1")
    again = dial(client, FIRST, "order-1")
    assert first.status_code == again.status_code == 201
    assert first.get_json() == again.get_json()
    assert len(twilio_api.calls_created) == 1


def test_the_same_key_with_another_number_is_a_422_and_dials_nothing(
    app: Flask, twilio_api: FakeTwilio
) -> None:
    client = admin(app)
    assert dial(client, FIRST, "order-1").status_code == 201
    other = dial(client, SECOND, "order-1")
    assert other.status_code == 422
    assert "different request" in other.get_json()["error"]
    assert [c["To"] for c in twilio_api.calls_created] == [[FIRST]]


def test_the_same_key_while_the_first_request_runs_is_a_409(app: Flask, twilio_api: FakeTwilio) -> None:
    twilio_api.delay_next("calls_create", 1.0)
    clients = [admin(app), admin(app)]
    barrier = threading.Barrier(2)
    answers: list[Any] = [None, None]

    def send(i: int) -> None:
        barrier.wait(timeout=10)
        if i == 1:
            twilio_api.wait_for(lambda: twilio_api.requests_of("calls_create"))
        answers[i] = dial(clients[i], FIRST, "order-1")

    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert [a.status_code for a in answers] == [201, 409]
    assert "still being handled" in answers[1].get_json()["error"]
    assert len(twilio_api.calls_created) == 1


def test_a_key_over_255_characters_is_a_400_and_never_cut(app: Flask, twilio_api: FakeTwilio) -> None:
    client = admin(app)
    assert dial(client, FIRST, "k" * 256).status_code == 400
    assert twilio_api.calls_created == []
    # Two long keys that share their first 64 characters are two keys.
    assert dial(client, FIRST, "k" * 64 + "a" * 100).status_code == 201
    assert dial(client, SECOND, "k" * 64 + "b" * 100).status_code == 201
    assert len(twilio_api.calls_created) == 2


def test_keys_belong_to_their_user(app: Flask, twilio_api: FakeTwilio) -> None:
    result = app.test_cli_runner().invoke(
        args=["users", "add", "ada", "--password-stdin"], input=PASSWORD + "\n"
    )
    assert result.exit_code == 0
    ada = app.test_client()
    assert ada.post("/login", data={"username": "ada", "password": PASSWORD}).status_code == 302
    assert dial(admin(app), FIRST, "shared-name").status_code == 201
    answer = dial(ada, SECOND, "shared-name")
    assert answer.status_code == 201, "ada's key is hers, whatever admin used"
    assert answer.get_json()["to"] == SECOND
    assert len(twilio_api.calls_created) == 2


def test_a_key_expires_after_a_day(app: Flask, twilio_api: FakeTwilio) -> None:
    client = admin(app)
    assert dial(client, FIRST, "order-1").status_code == 201
    with app.app_context():
        db.session.execute(
            update(IdempotencyKey).values(created_at=utcnow() - timedelta(hours=24, seconds=1))
        )
        db.session.commit()
    assert dial(client, SECOND, "order-1").status_code == 201, "an expired key is a new key"
    assert len(twilio_api.calls_created) == 2


def test_a_refusal_is_remembered_too(app: Flask, twilio_api: FakeTwilio) -> None:
    client = admin(app)
    first = dial(client, "+1900", "order-1")
    again = dial(client, "+1900", "order-1")
    assert first.status_code == again.status_code == 400
    assert first.get_json() == again.get_json()
    with app.app_context():
        assert len(db.session.scalars(select(DialAttempt)).all()) == 1, "the retry was answered, not tried"
