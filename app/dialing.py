"""/dial: which numbers may be called, how often, the audit trail, and placing the call.

Exposed click-to-call endpoints are the classic route to toll fraud, so a
number must be valid, in an allowed country, not premium-rate or another
special service, and within the per-user, hourly and daily limits. Every
attempt is written down before Twilio hears of it. The limits count these
rows, so every gunicorn worker and machine shares them.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

import phonenumbers
from phonenumbers import PhoneNumberType
from sqlalchemy import func, select, update

from . import callbacks, calls, clients, idempotency
from .config import current_settings, require
from .models import Call, DialAttempt, db, utcnow
from .providers import ProviderError
from .states import COUNTED_DIAL_OUTCOMES, DialOutcome

log = logging.getLogger(__name__)

# Numbers that cost the caller extra or reach no person: never dialled.
DENIED_TYPES = {
    PhoneNumberType.PREMIUM_RATE: "a premium-rate number",
    PhoneNumberType.SHARED_COST: "a shared-cost number",
    PhoneNumberType.PERSONAL_NUMBER: "a personal (forwarding) number",
    PhoneNumberType.PAGER: "a pager",
    PhoneNumberType.UAN: "a universal access number",
    PhoneNumberType.VOICEMAIL: "a voicemail access number",
    PhoneNumberType.UNKNOWN: "a number of unknown type",
}


class InvalidNumber(ValueError):
    pass


def parse_e164(raw: str) -> str:
    """A dialable E.164 number, or InvalidNumber saying what is wrong."""
    raw = (raw or "").strip()
    if not raw:
        raise InvalidNumber("Enter the number to call.")
    if not raw.startswith("+"):
        raise InvalidNumber("Write the number in E.164 form: + then country code, e.g. +14155550100.")
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        raise InvalidNumber("That is not a phone number.") from None
    formatted = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if formatted != raw.replace(" ", "").replace("-", ""):
        raise InvalidNumber("Write the number in E.164 form, with digits only after the +.")
    if not phonenumbers.is_valid_number(number):
        raise InvalidNumber(f"{formatted} is not a valid number in any country's numbering plan.")
    return formatted


class DialRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def new_request_key() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Caller:
    """Who asks to dial, for the limits and the audit trail."""

    username: str
    auth_method: str  # "session" or "token:<id>"
    client_address: str | None


def dial_once(to: str, caller: Caller, key: str | None) -> idempotency.Answer:
    """/dial's answer: placed once per idempotency key (a form's, or a script's Idempotency-Key)."""
    if not key:
        return _answer(to, caller)
    try:
        claimed = idempotency.begin(caller.username, key, idempotency.fingerprint("POST /dial", to.strip()))
    except idempotency.KeyRefused as refused:
        return idempotency.Answer(refused.status, {"error": str(refused)})
    if isinstance(claimed, idempotency.Answer):
        return claimed
    try:
        answer = _answer(to, caller)
    except BaseException:
        idempotency.abandon(claimed)  # our failure: the same key may try again
        raise
    idempotency.finish(claimed, answer)
    return answer


def _answer(to: str, caller: Caller) -> idempotency.Answer:
    try:
        call = dial(to, caller)
    except DialRefused as refused:
        return idempotency.Answer(refused.status, {"error": str(refused)})
    return idempotency.Answer(201, {"call_sid": call.call_sid, "status": call.status, "to": call.to_number})


def dial(to: str, caller: Caller) -> Call:
    """Check, record, then place the call. Raises DialRefused with a status and a reason."""
    try:
        number = parse_e164(to)
    except InvalidNumber as error:
        record_refusal(to, caller, str(error))
        raise DialRefused(400, str(error)) from None
    settings = current_settings()
    # A missing setting is the operator's to fix (503), before any policy applies.
    require("placing calls", TWILIO_PHONE_NUMBER=settings.twilio_phone_number, BASE_URL=settings.base_url)
    clients.twilio()
    problem = _policy_problem(number)
    if problem:
        record_refusal(number, caller, problem)
        raise DialRefused(403, problem)

    attempt_id = _record(number, caller, DialOutcome.PENDING, None)
    over = _over_limit(attempt_id, caller.username)
    db.session.commit()  # no transaction stays open while Twilio answers
    if over:
        _finish(attempt_id, DialOutcome.REFUSED, over)
        raise DialRefused(429, over)
    try:
        call = _place(number)
    except ProviderError as error:
        _finish(attempt_id, DialOutcome.FAILED, str(error))
        raise DialRefused(502, str(error)) from None
    except Exception:
        _finish(attempt_id, DialOutcome.FAILED, "not placed: an error on our side")
        raise
    _finish(attempt_id, DialOutcome.PLACED, None, call.call_sid)
    return call


def record_refusal(to: str, caller: Caller, reason: str) -> None:
    """An attempt refused before any call: it is on the audit trail all the same."""
    _record(to, caller, DialOutcome.REFUSED, reason)


def _place(number: str) -> Call:
    """Ask Twilio to call ``number`` (checked, allowed) and record the callee; store the call."""
    settings = current_settings()
    twilio = clients.twilio()
    assert settings.twilio_phone_number is not None and settings.base_url is not None
    placed = twilio.place_call(
        to=number,
        from_=settings.twilio_phone_number,
        twiml_url=callbacks.public_url(settings.base_url, callbacks.TWILIO_OUTBOUND),
        status_url=callbacks.public_url(settings.base_url, callbacks.TWILIO_CALL_STATUS),
    )
    return calls.call_placed(
        placed, account_sid=twilio.account_sid, from_number=settings.twilio_phone_number, to_number=number
    )


def _policy_problem(number: str) -> str | None:
    settings = current_settings()
    parsed = phonenumbers.parse(number, None)
    region = phonenumbers.region_code_for_number(parsed)
    if not settings.dial_allowed_countries:
        return "No country is allowed: set DIAL_ALLOWED_COUNTRIES (or TWILIO_PHONE_NUMBER)."
    if region not in settings.dial_allowed_countries:
        allowed = ", ".join(settings.dial_allowed_countries)
        return f"Calls to {region or 'that range'} are not allowed (DIAL_ALLOWED_COUNTRIES: {allowed})."
    kind = DENIED_TYPES.get(phonenumbers.number_type(parsed))
    if kind:
        return f"{number} is {kind}; such numbers are never dialled."
    return None


def _record(number: str, caller: Caller, outcome: DialOutcome, reason: str | None) -> int:
    """Write the audit row (committed before Twilio hears of the call)."""
    attempt = DialAttempt(
        request_key=new_request_key(),
        username=caller.username,
        auth_method=caller.auth_method,
        client_address=(caller.client_address or "")[:64] or None,
        # What was asked for, cut to fit: a refused one may be no number at all.
        to_number="".join(c for c in number if c.isprintable())[:64],
        outcome=outcome,
        reason=reason,
    )
    db.session.add(attempt)
    db.session.commit()
    log.info(
        "dial %s by %s: %s%s", attempt.to_number, caller.username, outcome, f" ({reason})" if reason else ""
    )
    return attempt.id


def audit_log(limit: int = 200) -> list[DialAttempt]:
    """The newest /dial attempts, for admins."""
    return list(db.session.scalars(select(DialAttempt).order_by(DialAttempt.id.desc()).limit(limit)))


def _finish(attempt_id: int, outcome: DialOutcome, reason: str | None, call_sid: str | None = None) -> None:
    db.session.execute(
        update(DialAttempt)
        .where(DialAttempt.id == attempt_id)
        .values(outcome=outcome, reason=reason, call_sid=call_sid)
    )
    db.session.commit()


def _over_limit(attempt_id: int, username: str) -> str | None:
    """Count this attempt among those before it; two at once are both counted."""
    settings = current_settings()
    now = utcnow()

    def counted(since_seconds: int, user: str | None = None) -> int:
        query = (
            select(func.count())
            .select_from(DialAttempt)
            .where(
                DialAttempt.outcome.in_(COUNTED_DIAL_OUTCOMES),
                DialAttempt.created_at > now - timedelta(seconds=since_seconds),
                DialAttempt.id <= attempt_id,
            )
        )
        if user is not None:
            query = query.where(DialAttempt.username == user)
        return db.session.scalar(query) or 0

    if counted(3600, username) > settings.dial_per_user_per_hour:
        return f"You placed {settings.dial_per_user_per_hour} calls in the last hour; wait a while."
    if counted(3600) > settings.dial_per_hour:
        return f"{settings.dial_per_hour} calls were placed in the last hour (DIAL_PER_HOUR); wait a while."
    if counted(86400) > settings.dial_daily_limit:
        return f"The daily limit of {settings.dial_daily_limit} calls is reached (DIAL_DAILY_LIMIT)."
    return None
