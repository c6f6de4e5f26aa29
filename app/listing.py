"""The calls list: filters, full-text search and keyset pages, for the dashboard, the API and the CSV.

Newest first on (``created_at``, ``id``). The next page starts after an
opaque cursor, the last row's (created_at, id), so a page stays put while
new calls arrive, and no page costs more than the first: no OFFSET.

A page is three queries whatever it shows: the calls (only the columns it
shows), their recordings with the start of each transcript (or the whole
text when searching, for the snippet), and the count, which stops at
:data:`COUNT_LIMIT`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from markupsafe import Markup
from sqlalchemy import ColumnElement, and_, exists, false, func, not_, or_, select, tuple_
from sqlalchemy.orm import selectinload

from . import search, wording
from .models import Call, Recording, Transcript, db
from .states import ACTIVE_STAGES, CallStatus, RecordingStatus, Stage, TranscriptStatus

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
COUNT_LIMIT = 10_000
PREVIEW_CHARS = 120
MAX_QUERY = 200

DIRECTIONS = ("inbound", "outbound", "upload")
TRANSCRIPT_FILTERS = ("done", "transcribing", "failed", "none")
NUMBER = re.compile(r"^\+?[0-9]{3,15}$")
CURSOR = re.compile(r"^(\d{1,19})\.(\d{1,18})$")

# How far a call's best recording got: its words on the list, and the filter value it falls under.
TRANSCRIPT_LABELS = {
    Stage.TRANSCRIBED: ("done", "done"),
    Stage.SUBMITTED: ("transcribing", "transcribing"),
    Stage.DELIVERED: ("submitting", "transcribing"),
    Stage.PENDING: ("queued", "transcribing"),
    Stage.FAILED: ("failed", "failed"),
}
NO_STAGE_LABELS = {
    RecordingStatus.ABSENT: ("no audio", "none"),
    RecordingStatus.FAILED: ("recording failed", "failed"),
}


class BadFilter(ValueError):
    """A filter value, limit or cursor that means nothing: the API answers 400, the page drops it."""


@dataclass(frozen=True)
class Filters:
    """What the list is narrowed to. ``until`` is exclusive: the day after the date given."""

    query: str = ""
    terms: tuple[search.Term, ...] = ()
    direction: str | None = None
    statuses: tuple[str, ...] = ()
    transcript: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    numbers: tuple[str, ...] = ()
    updated_since: datetime | None = None
    # The values as given, for links to the next page and the CSV.
    args: tuple[tuple[str, str], ...] = ()

    def link_args(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for key, value in self.args:
            found.setdefault(key, []).append(value)
        return found


@dataclass
class Listed:
    """One call as the list shows it."""

    id: int
    call_sid: str
    direction: str | None
    from_number: str | None
    to_number: str | None
    title: str | None
    status: str | None
    started_at: datetime | None
    created_at: datetime
    updated_at: datetime
    duration: int | None
    sources: list[str | None] = field(default_factory=list)
    transcript_label: str = "no recording"
    transcript: str = "none"
    active: bool = False
    preview: str = ""
    snippet: Markup | None = None

    @property
    def kind(self) -> str:
        return wording.call_kind(self.direction, self.sources)

    @property
    def when(self) -> datetime:
        return self.started_at or self.created_at

    def as_json(self) -> dict[str, Any]:
        return {
            "call_sid": self.call_sid,
            "direction": self.direction,
            "direction_label": self.kind,
            "from": self.from_number,
            "to": self.to_number,
            "title": self.title,
            "status": self.status,
            "started_at": _iso(self.when),
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
            "duration_s": self.duration,
            "transcript_status": self.transcript,
            "transcript_label": self.transcript_label,
            "in_progress": self.active,
            "preview": self.preview,
            "snippet_html": str(self.snippet) if self.snippet is not None else None,
        }


@dataclass(frozen=True)
class Page:
    calls: list[Listed]
    next: str | None


# -- reading what was asked ----------------------------------------------------


def read_filters(args: Mapping[str, Any], *, strict: bool) -> tuple[Filters, list[str]]:
    """The filters in a request's query string, and a sentence for each value that was dropped.

    With ``strict`` (the API) the first bad value raises :class:`BadFilter` instead.
    """
    problems: list[str] = []
    kept: list[tuple[str, str]] = []

    def refuse(message: str) -> None:
        if strict:
            raise BadFilter(message)
        problems.append(message)

    def values(name: str) -> list[str]:
        getlist = getattr(args, "getlist", None)
        raw = getlist(name) if getlist else ([args[name]] if name in args else [])
        return [v.strip() for v in raw if isinstance(v, str) and v.strip()]

    found: dict[str, Any] = {}
    query = " ".join(values("q"))
    if len(query) > MAX_QUERY:
        refuse(f"q is at most {MAX_QUERY} characters; the search used the first {MAX_QUERY}.")
        query = query[:MAX_QUERY]
    if query:
        found["query"], found["terms"] = query, tuple(search.parse(query))
        kept.append(("q", query))
        if not found["terms"]:
            problems.append(f"Nothing to search for in “{query}”: type a word or a number.")

    def choice(name: str, allowed: Sequence[str]) -> None:
        for value in values(name)[:1]:
            if value in allowed:
                found[name] = value
                kept.append((name, value))
            else:
                refuse(f"{name} is one of {', '.join(allowed)}, not “{value[:40]}”.")

    choice("direction", DIRECTIONS)
    statuses = []
    for value in values("status"):
        if value in CallStatus.__members__.values():
            statuses.append(value)
            kept.append(("status", value))
        else:
            refuse(f"status is a Twilio call status ({', '.join(CallStatus)}), not “{value[:40]}”.")
    found["statuses"] = tuple(dict.fromkeys(statuses))
    choice("transcript", TRANSCRIPT_FILTERS)
    for name in ("since", "until"):
        for value in values(name)[:1]:
            moment = _moment(value, end_of_day=name == "until")
            if moment is None:
                refuse(f"{name} is a date (2026-12-01) or a time (2026-12-01T09:30:00Z), not “{value[:40]}”.")
            else:
                found[name] = moment
                kept.append((name, value))
    for value in values("number")[:1]:
        digits = re.sub(r"[\s().-]", "", value)
        if NUMBER.match(digits):
            found["numbers"] = _number_forms(digits)
            kept.append(("number", value))
        else:
            refuse(f"number is a phone number (+14155550100 or its digits), not “{value[:40]}”.")
    for value in values("updated_since")[:1]:
        moment = _moment(value, end_of_day=False)
        if moment is None:
            refuse(f"updated_since is an ISO time (2026-12-01T09:30:00Z), not “{value[:40]}”.")
        else:
            found["updated_since"] = moment
    return Filters(**found, args=tuple(kept)), problems


def read_limit(raw: str | None, *, strict: bool, high: int = MAX_LIMIT) -> tuple[int, list[str]]:
    raw = (raw or "").strip()
    if not raw:
        return DEFAULT_LIMIT, []
    # Short before int(), which refuses a string of thousands of digits with a ValueError.
    digits = raw.lstrip("0") or "0"
    if raw.isascii() and raw.isdigit() and len(digits) <= len(str(high)) and 1 <= int(digits) <= high:
        return int(digits), []
    message = f"limit is a whole number from 1 to {high}, not “{raw[:40]}”."
    if strict:
        raise BadFilter(message)
    return DEFAULT_LIMIT, [message]


def _moment(value: str, *, end_of_day: bool) -> datetime | None:
    """A date (the whole day, in UTC) or an ISO time; ``until`` a date means up to the end of that day."""
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime.combine(day, time(), UTC)
            return moment + timedelta(days=1) if end_of_day else moment
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    parsed = parsed.astimezone(UTC)
    return parsed + timedelta(microseconds=1) if end_of_day else parsed


def _number_forms(digits: str) -> tuple[str, ...]:
    bare = digits.lstrip("+")
    forms = {"+" + bare, bare}
    if len(bare) == 10:  # a North American number without its country code
        forms.add("+1" + bare)
    return tuple(sorted(forms))


def encode_cursor(created_at: datetime, call_id: int) -> str:
    micros = int((created_at - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))
    return base64.urlsafe_b64encode(f"{micros}.{call_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The (created_at, id) a cursor stands for; :class:`BadFilter` for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadFilter("before is a cursor from a page's next link, and this one is not.") from None
    match = CURSOR.match(raw)
    if match is None or int(match.group(2)) > 2**63 - 1:
        raise BadFilter("before is a cursor from a page's next link, and this one is not.")
    try:
        moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(match.group(1)))
    except OverflowError:
        raise BadFilter("before is a cursor from a page's next link, and this one is not.") from None
    return moment, int(match.group(2))


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


# -- the queries ---------------------------------------------------------------


def _has(*where: ColumnElement[bool]) -> ColumnElement[bool]:
    return exists().where(Recording.call_id == Call.id, *where)


def _transcript_is(value: str) -> ColumnElement[bool]:
    """The SQL for the transcript filter, ranked as :func:`transcript_state` ranks on the page."""
    done = _has(Recording.stage == Stage.TRANSCRIBED)
    active = _has(Recording.stage.in_(list(ACTIVE_STAGES)))
    failed = _has(or_(Recording.stage == Stage.FAILED, Recording.status == RecordingStatus.FAILED))
    if value == "done":
        return done
    if value == "transcribing":
        return and_(not_(done), active)
    if value == "failed":
        return and_(not_(done), not_(active), failed)
    return and_(not_(done), not_(active), not_(failed))


def conditions(filters: Filters) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    found = search.condition(filters.terms, db.session.get_bind().dialect.name)
    if found is not None:
        where.append(found)
    elif filters.query:  # asked to search, with nothing to search for ("*", "%"): no call matches
        where.append(false())
    if filters.direction == "outbound":
        where.append(Call.direction.like("outbound%"))
    elif filters.direction:
        where.append(Call.direction == filters.direction)
    if filters.statuses:
        where.append(Call.status.in_(filters.statuses))
    if filters.transcript:
        where.append(_transcript_is(filters.transcript))
    if filters.since:
        where.append(Call.created_at >= filters.since)
    if filters.until:
        where.append(Call.created_at < filters.until)
    if filters.numbers:
        where.append(or_(Call.from_number.in_(filters.numbers), Call.to_number.in_(filters.numbers)))
    if filters.updated_since:
        changed = select(Recording.call_id).where(Recording.updated_at >= filters.updated_since)
        where.append(or_(Call.updated_at >= filters.updated_since, Call.id.in_(changed)))
    return where


LISTED_COLUMNS = (
    Call.id,
    Call.call_sid,
    Call.direction,
    Call.from_number,
    Call.to_number,
    Call.title,
    Call.status,
    Call.started_at,
    Call.created_at,
    Call.updated_at,
    Call.duration,
)


def list_calls(
    filters: Filters, *, before: tuple[datetime, int] | None = None, limit: int = DEFAULT_LIMIT
) -> Page:
    """One page of calls, newest first, after ``before``; with the cursor of the next page."""
    statement = select(*LISTED_COLUMNS).where(*conditions(filters))
    if before is not None:
        statement = statement.where(tuple_(Call.created_at, Call.id) < tuple_(*before))
    statement = statement.order_by(Call.created_at.desc(), Call.id.desc()).limit(limit + 1)
    rows = [Listed(**row._mapping) for row in db.session.execute(statement)]
    more, rows = len(rows) > limit, rows[:limit]
    _describe(rows, filters.terms)
    last = rows[-1] if rows and more else None
    return Page(rows, encode_cursor(last.created_at, last.id) if last else None)


def count_calls(filters: Filters) -> tuple[int, bool]:
    """How many calls match, exactly up to :data:`COUNT_LIMIT`; True when there are more."""
    capped = select(Call.id).where(*conditions(filters)).limit(COUNT_LIMIT + 1).subquery()
    count = db.session.scalar(select(func.count()).select_from(capped)) or 0
    return min(count, COUNT_LIMIT), count > COUNT_LIMIT


def _describe(rows: Sequence[Listed], terms: Sequence[search.Term]) -> None:
    """Fill in each call's transcript state and text, from one query over all their recordings."""
    if not rows:
        return
    text_column = Transcript.text if terms else func.substr(Transcript.text, 1, PREVIEW_CHARS + 40)
    statement = (
        select(
            Recording.call_id,
            Recording.stage,
            Recording.status,
            Recording.source,
            Transcript.status.label("transcript_status"),
            text_column.label("text"),
        )
        .outerjoin(Transcript, Transcript.recording_id == Recording.id)
        .where(Recording.call_id.in_([r.id for r in rows]))
        .order_by(Recording.id)
    )
    by_call: dict[int, list[Any]] = {}
    for recording in db.session.execute(statement):
        by_call.setdefault(recording.call_id, []).append(recording)
    for row in rows:
        recordings = by_call.get(row.id, [])
        row.sources = [r.source for r in recordings]
        row.transcript_label, row.transcript = transcript_state(recordings)
        row.active = any(
            r.stage in ACTIVE_STAGES or r.status == RecordingStatus.IN_PROGRESS for r in recordings
        )
        row.active = row.active or row.status in LIVE_CALL_STATUSES
        texts = [r.text for r in recordings if r.transcript_status == TranscriptStatus.COMPLETED and r.text]
        if texts:
            row.preview = _truncate(texts[0])
            if terms:
                row.snippet = next(
                    (s for s in (search.snippet(t, terms) for t in texts) if s is not None), None
                )


LIVE_CALL_STATUSES = frozenset(
    {CallStatus.QUEUED, CallStatus.INITIATED, CallStatus.RINGING, CallStatus.IN_PROGRESS}
)
STAGE_ORDER = [Stage.TRANSCRIBED, Stage.SUBMITTED, Stage.DELIVERED, Stage.PENDING, Stage.FAILED, None]


def transcript_state(recordings: Sequence[Any]) -> tuple[str, str]:
    """(words on the page, filter value) for the recording that got furthest."""
    if not recordings:
        return "no recording", "none"
    best = min(
        recordings,
        key=lambda r: (
            STAGE_ORDER.index(r.stage) if r.stage in STAGE_ORDER else len(STAGE_ORDER),
            r.status != RecordingStatus.FAILED,
        ),
    )
    if best.stage is None:
        return NO_STAGE_LABELS.get(best.status or "", ("recording", "none"))
    return TRANSCRIPT_LABELS[Stage(best.stage)]


def _truncate(text: str) -> str:
    if len(text) <= PREVIEW_CHARS:
        return text
    cut = text[:PREVIEW_CHARS].rsplit(" ", 1)[0]
    return cut + "…"


def every_call(filters: Filters, *, limit: int | None = None, batch: int = 200) -> Iterator[list[Call]]:
    """Every matching call, newest first, as whole rows in batches: for the CSV, in constant memory."""
    before: tuple[datetime, int] | None = None
    left = limit
    while left is None or left > 0:
        size = batch if left is None else min(batch, left)
        # The CSV shows a transcript's text and speakers: never its words.
        whole = selectinload(Call.recordings).selectinload(Recording.transcript).defer(Transcript.words)
        statement = select(Call).options(whole).where(*conditions(filters))
        if before is not None:
            statement = statement.where(tuple_(Call.created_at, Call.id) < tuple_(*before))
        calls = list(
            db.session.scalars(statement.order_by(Call.created_at.desc(), Call.id.desc()).limit(size))
        )
        if not calls:
            return
        yield calls
        before = (calls[-1].created_at, calls[-1].id)
        if left is not None:
            left -= len(calls)
        db.session.expunge_all()  # what was written out is let go
