"""Idempotency keys, as payment APIs have them: a retried request is answered, not repeated.

A key belongs to its user and is stored with a fingerprint of the request:

* the same key with the same request gets the original answer;
* the same key while its first request still runs gets 409;
* the same key with a different request gets 422;
* a key over 255 characters gets 400 (it is never cut);
* keys expire after 24 hours.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from .models import IdempotencyKey, db, utcnow

MAX_KEY_LENGTH = 255
LIFETIME = timedelta(hours=24)


class KeyRefused(Exception):
    """The key cannot be used for this request: ``status`` and a message saying why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Answer:
    """What the first request with the key answered."""

    status: int
    body: dict[str, Any]


def fingerprint(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def begin(username: str, key: str, request_fingerprint: str) -> int | Answer:
    """Claim ``key`` for this request: its row id, or the answer a finished first request got."""
    if len(key) > MAX_KEY_LENGTH:
        raise KeyRefused(400, f"An Idempotency-Key may be at most {MAX_KEY_LENGTH} characters long.")
    db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < utcnow() - LIFETIME))
    row = IdempotencyKey(username=username, key=key, fingerprint=request_fingerprint)
    db.session.add(row)
    try:
        db.session.commit()
        return row.id
    except IntegrityError:
        db.session.rollback()
    earlier = db.session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.username == username, IdempotencyKey.key == key)
    )
    db.session.commit()
    if earlier is None:  # expired and removed in between: a fresh start
        return begin(username, key, request_fingerprint)
    if earlier.fingerprint != request_fingerprint:
        raise KeyRefused(422, "This Idempotency-Key was already used for a different request; use a new key.")
    if earlier.status is None:
        raise KeyRefused(409, "This request was already sent and is still being handled; try again shortly.")
    return Answer(earlier.status, dict(earlier.answer or {}))


def finish(key_id: int, answer: Answer) -> None:
    db.session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.id == key_id)
        .values(status=answer.status, answer=answer.body)
    )
    db.session.commit()


def abandon(key_id: int) -> None:
    """The request failed on our side: let the key be tried again."""
    db.session.rollback()
    db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == key_id))
    db.session.commit()
