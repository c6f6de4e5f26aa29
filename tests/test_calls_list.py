"""The calls list, its API and its CSV: keyset pages, filters, full-text search, counts, live status.

Every test runs on SQLite (FTS5) and on PostgreSQL (tsvector), through the
same routes. Calls are stored as rows with the app's own index function
(:func:`app.search.reindex`), except where the test is that the pipeline
itself keeps the index up to date.
"""

from __future__ import annotations

import csv
import io
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, insert, select

from app import search
from app.models import Call, Recording, db
from tests.helpers import ACCOUNT_SID, T0, call_sid, login, recording_sid, store_call


def listed(client: FlaskClient, **query: Any) -> list[str]:
    """The CallSids the API lists for this query, in order."""
    response = client.get("/api/calls", query_string=query)
    assert response.status_code == 200, response.get_json()
    return [c["call_sid"] for c in response.get_json()["calls"]]


def shown(client: FlaskClient, **query: Any) -> list[str]:
    """The CallSids the page shows, in order."""
    response = client.get("/", query_string=query)
    assert response.status_code == 200
    return re.findall(r'<tr data-call-sid="([^"]+)"', response.get_data(as_text=True))


# -- keyset pages ----------------------------------------------------------------


def test_pages_follow_the_cursor_and_stay_put_while_calls_arrive(app: Flask, admin: FlaskClient) -> None:
    for n in range(1, 6):
        store_call(app, n, f"call number {n}")
    first = admin.get("/api/calls", query_string={"limit": 2}).get_json()
    assert [c["call_sid"] for c in first["calls"]] == [call_sid(5), call_sid(4)]
    store_call(app, 6, "a new call arrives", created_at=T0 + timedelta(hours=1))
    second = admin.get("/api/calls", query_string={"limit": 2, "before": first["next"]}).get_json()
    assert [c["call_sid"] for c in second["calls"]] == [call_sid(3), call_sid(2)]
    last = admin.get("/api/calls", query_string={"limit": 2, "before": second["next"]}).get_json()
    assert [c["call_sid"] for c in last["calls"]] == [call_sid(1)] and last["next"] is None


def test_calls_created_in_the_same_instant_are_ordered_by_id_across_pages(
    app: Flask, admin: FlaskClient
) -> None:
    for n in range(1, 6):
        store_call(app, n, created_at=T0)
    seen: list[str] = []
    cursor = None
    while True:
        body = admin.get(
            "/api/calls", query_string={"limit": 2, **({"before": cursor} if cursor else {})}
        ).get_json()
        seen += [c["call_sid"] for c in body["calls"]]
        cursor = body["next"]
        if cursor is None:
            break
    assert seen == [call_sid(n) for n in (5, 4, 3, 2, 1)]


def test_the_page_links_to_older_calls_with_a_cursor(app: Flask, admin: FlaskClient) -> None:
    for n in range(1, 4):
        store_call(app, n)
    html = admin.get("/?limit=2").get_data(as_text=True)
    older = re.search(r'<a rel="next" href="([^"]+)"', html)
    assert older and "before=" in older.group(1) and "page=" not in older.group(1)
    assert shown(admin, **dict(pair.split("=") for pair in older.group(1).split("?")[1].split("&amp;"))) == [
        call_sid(1)
    ]


def test_an_old_page_link_goes_to_the_first_page_of_the_same_list(admin: FlaskClient) -> None:
    response = admin.get("/?page=7&q=refund&direction=inbound")
    assert response.status_code == 302
    assert response.headers["Location"] == "/?q=refund&direction=inbound"


@pytest.mark.parametrize("limit", ["0", "201", "ten", "-1", "1e3"])
def test_a_bad_limit_is_a_400_on_the_api_and_dropped_on_the_page(
    app: Flask, admin: FlaskClient, limit: str
) -> None:
    store_call(app, 1)
    answer = admin.get("/api/calls", query_string={"limit": limit})
    assert answer.status_code == 400 and "limit" in answer.get_json()["error"]
    page = admin.get("/", query_string={"limit": limit})
    assert page.status_code == 200
    assert "limit is a whole number from 1 to 200" in page.get_data(as_text=True)
    assert shown(admin, limit=limit) == [call_sid(1)]


@pytest.mark.parametrize("cursor", ["nonsense", "MTIzNDU2", "", "%%%", "OTk5OTk5OTk5OTk5OTk5OTk5OS4x"])
def test_a_bad_cursor_is_a_400_on_the_api_and_the_first_page_on_the_page(
    app: Flask, admin: FlaskClient, cursor: str
) -> None:
    store_call(app, 1)
    if cursor:
        answer = admin.get("/api/calls", query_string={"before": cursor})
        assert answer.status_code == 400 and answer.mimetype == "application/json"
        page = admin.get("/", query_string={"before": cursor})
        assert page.status_code == 200 and "Showing the newest calls." in page.get_data(as_text=True)
    assert shown(admin, before=cursor) == [call_sid(1)]


@pytest.mark.parametrize("limit", ["0", "201", "9" * 5000, "1e2", "-5"])
def test_a_limit_out_of_range_is_a_400_on_the_api_and_the_default_on_the_page(
    app: Flask, admin: FlaskClient, limit: str
) -> None:
    store_call(app, 1)
    answer = admin.get("/api/calls", query_string={"limit": limit})
    assert answer.status_code == 400 and "limit is a whole number from 1 to 200" in answer.get_json()["error"]
    page = admin.get("/", query_string={"limit": limit})
    assert page.status_code == 200 and "limit is a whole number" in page.get_data(as_text=True)
    assert admin.get("/calls.csv", query_string={"limit": limit * 4}).status_code == 400


def test_a_blank_limit_is_the_default_and_leading_zeros_are_allowed(app: Flask, admin: FlaskClient) -> None:
    for n in range(1, 4):
        store_call(app, n)
    assert len(listed(admin, limit=" ")) == 3 and len(listed(admin, limit="002")) == 2


# -- filters ---------------------------------------------------------------------


@pytest.fixture
def mixed(app: Flask) -> dict[str, str]:
    """Calls of every kind the filters tell apart."""
    return {
        "inbound_done": store_call(app, 1, "hello there", direction="inbound", created_at=T0),
        "outbound_busy": store_call(
            app,
            2,
            None,
            direction="outbound-api",
            status="busy",
            stage=None,
            recording_status="completed",
            from_number="+14155550100",
            to_number="+442071838750",
            created_at=T0 + timedelta(days=1),
        ),
        "transcribing": store_call(app, 3, None, stage="submitted", created_at=T0 + timedelta(days=2)),
        "failed": store_call(
            app, 4, None, stage="failed", created_at=T0 + timedelta(days=3, hours=23, minutes=59)
        ),
        "no_recording": store_call(
            app, 5, None, stage=None, recording_status="absent", created_at=T0 + timedelta(days=4)
        ),
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"direction": "inbound"}, ["no_recording", "failed", "transcribing", "inbound_done"]),
        ({"direction": "outbound"}, ["outbound_busy"]),
        ({"status": "busy"}, ["outbound_busy"]),
        ({"transcript": "done"}, ["inbound_done"]),
        ({"transcript": "transcribing"}, ["transcribing"]),
        ({"transcript": "failed"}, ["failed"]),
        ({"transcript": "none"}, ["no_recording", "outbound_busy"]),
        ({"since": "2026-11-21", "until": "2026-11-23"}, ["transcribing", "outbound_busy"]),
        ({"until": "2026-11-20"}, ["inbound_done"]),
        ({"since": "2026-11-24T12:00:00Z"}, ["no_recording"]),
        ({"number": "+442071838750"}, ["outbound_busy"]),
        ({"number": "442071838750"}, ["outbound_busy"]),
        ({"number": "(415) 555-0123"}, ["no_recording", "failed", "transcribing", "inbound_done"]),
        ({"direction": "inbound", "transcript": "done", "q": "hello"}, ["inbound_done"]),
        ({"direction": "upload"}, []),
    ],
)
def test_filters_narrow_the_list_and_combine(
    admin: FlaskClient, mixed: dict[str, str], query: dict[str, str], expected: list[str]
) -> None:
    want = [mixed[name] for name in expected]
    assert listed(admin, **query) == want
    assert shown(admin, **query) == want


def test_status_may_be_repeated(admin: FlaskClient, mixed: dict[str, str]) -> None:
    statuses = [("status", "busy"), ("status", "completed")]
    response = admin.get("/api/calls", query_string=statuses)
    assert len(response.get_json()["calls"]) == 5
    assert listed(admin, status="no-answer") == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("direction", "sideways"),
        ("status", "ringing-ish"),
        ("transcript", "maybe"),
        ("since", "yesterday"),
        ("until", "2026-13-45"),
        ("number", "call me"),
        ("number", "12"),
        ("updated_since", "soon"),
    ],
)
def test_a_malformed_filter_is_a_400_on_the_api_and_dropped_with_a_message_on_the_page(
    admin: FlaskClient, mixed: dict[str, str], name: str, value: str
) -> None:
    answer = admin.get("/api/calls", query_string={name: value})
    assert answer.status_code == 400 and name in answer.get_json()["error"]
    if name != "updated_since":
        page = admin.get("/", query_string={name: value})
        assert page.status_code == 200 and f"{name} is" in page.get_data(as_text=True)
        assert len(shown(admin, **{name: value})) == 5


# -- search ----------------------------------------------------------------------


@pytest.fixture
def spoken(app: Flask) -> dict[str, str]:
    return {
        "refund": store_call(app, 1, "I would like a refund for the broken kettle, please."),
        "policy": store_call(app, 2, "What is your refund policy for kettles?"),
        "reverse": store_call(app, 3, "The policy says no refund after thirty days."),
        "other": store_call(
            app, 4, "Just calling to say the delivery was lovely.", from_number="+442071838750"
        ),
        "named": store_call(app, 5, "Speaking now.", names={"A": "Dana Whitfield"}),
        "accents": store_call(app, 6, "Le café était fermé, désolé."),
    }


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("refund", ["reverse", "policy", "refund"]),
        ("policy refund", ["reverse", "policy"]),
        ("REFUND Policy", ["reverse", "policy"]),
        ('"refund policy"', ["policy"]),
        ('"policy refund"', []),
        ("refun*", ["reverse", "policy", "refund"]),
        ("kettle*", ["policy", "refund"]),
        ("kettle", ["refund"]),
        ('"refund pol"*', ["policy"]),
        ("cafe", ["accents"]),
        ("désolé", ["accents"]),
        ("dana", ["named"]),
        ("whitf*", ["named"]),
        ("+442071838750", ["other"]),
        ("1838750", ["other"]),
        ("838750", []),
        ("8750", ["other"]),
        ("+44 20 7183 8750", ["other"]),
        ("refund nothing-like-this", []),
    ],
)
def test_search_matches_every_word_prefixes_phrases_numbers_and_names(
    admin: FlaskClient, spoken: dict[str, str], q: str, expected: list[str]
) -> None:
    want = [spoken[name] for name in expected]
    assert listed(admin, q=q) == want
    assert shown(admin, q=q) == want


@pytest.mark.parametrize(
    "q",
    [
        '"refund',
        'refund"',
        "*",
        "**",
        '"',
        '""',
        "refund AND",
        "NOT refund",
        "NEAR(refund policy)",
        "refund OR",
        "refund:*",
        "refund & policy",
        "(refund",
        "refund)",
        "^refund",
        "col:refund",
        "'",
        "\\",
        "-refund",
        "+",
        "%",
        "_",
        "refund\u200b",
        "🙂",
    ],
)
def test_text_a_person_types_is_never_query_syntax(
    admin: FlaskClient, spoken: dict[str, str], q: str
) -> None:
    answer = admin.get("/api/calls", query_string={"q": q})
    assert answer.status_code == 200, answer.get_json()
    page = admin.get("/", query_string={"q": q})
    assert page.status_code == 200
    # Operators are words like any other, or nothing: the same hits as the plain words.
    plain = " ".join(search.words(q.replace("*", " ")))
    if plain and "*" not in q and '"' not in q:
        assert listed(admin, q=q) == listed(admin, q=plain)


def test_an_unbalanced_quote_reads_as_plain_words(admin: FlaskClient, spoken: dict[str, str]) -> None:
    assert listed(admin, q='"policy refund') == [spoken["reverse"], spoken["policy"]]


def test_a_search_with_nothing_to_search_for_says_so(admin: FlaskClient, spoken: dict[str, str]) -> None:
    html = admin.get("/", query_string={"q": "*"}).get_data(as_text=True)
    assert "Nothing to search for" in html and shown(admin, q="*") == []


def test_a_hit_shows_a_snippet_with_the_words_marked(admin: FlaskClient, spoken: dict[str, str]) -> None:
    html = admin.get("/", query_string={"q": '"refund policy"'}).get_data(as_text=True)
    assert "What is your <mark>refund</mark> <mark>policy</mark> for kettles" in html
    body = admin.get("/api/calls", query_string={"q": "kettle*"}).get_json()
    assert [c["snippet_html"] for c in body["calls"]] == [
        "What is your refund policy for <mark>kettles</mark>",
        "I would like a refund for the broken <mark>kettle</mark>, please",
    ]


def test_a_snippet_is_escaped_before_the_marks_go_in(app: Flask, admin: FlaskClient) -> None:
    store_call(app, 1, 'He said <script>alert("refund")</script> & <b>left</b>.')
    html = admin.get("/", query_string={"q": "refund"}).get_data(as_text=True)
    assert "<script>alert" not in html and "<b>left" not in html
    assert "&lt;script&gt;alert(&#34;<mark>refund</mark>&#34;)&lt;/script&gt; &amp; &lt;b&gt;left" in html


def test_a_long_transcript_gives_a_short_snippet_around_the_hit(app: Flask, admin: FlaskClient) -> None:
    words = [f"filler{i}" for i in range(400)]
    words[250] = "needle"
    store_call(app, 1, " ".join(words))
    (call,) = admin.get("/api/calls", query_string={"q": "needle"}).get_json()["calls"]
    snippet = call["snippet_html"]
    assert snippet.startswith("… filler242 ") and "<mark>needle</mark>" in snippet and snippet.endswith(" …")
    assert len(snippet.split()) < 35


def test_a_rename_is_found_by_search_at_once(app: Flask, admin: FlaskClient) -> None:
    store_call(app, 1, "placeholder")
    csrf = {"X-CSRFToken": admin.csrf_token()}  # type: ignore[attr-defined]
    answer = admin.put(f"/api/calls/{call_sid(1)}/speakers", json={"A": "Marguerite"}, headers=csrf)
    assert answer.status_code == 200
    assert listed(admin, q="marguerite") == [call_sid(1)]
    admin.put(f"/api/calls/{call_sid(1)}/speakers", json={"A": ""}, headers=csrf)
    assert listed(admin, q="marguerite") == []


# -- counts ----------------------------------------------------------------------


def test_the_page_counts_the_matching_calls(app: Flask, admin: FlaskClient, spoken: dict[str, str]) -> None:
    assert "3 calls" in admin.get("/?q=refund").get_data(as_text=True)
    assert "1 call<" in admin.get("/?q=dana").get_data(as_text=True).replace("</span>", "<")
    assert "6 calls" in admin.get("/").get_data(as_text=True)


def test_the_count_stops_at_ten_thousand(app: Flask, admin: FlaskClient) -> None:
    with app.app_context():
        db.session.execute(
            insert(Call),
            [
                {"call_sid": f"CA{n:032x}", "created_at": T0 + timedelta(seconds=n), "direction": "inbound"}
                for n in range(10_001)
            ],
        )
        db.session.commit()
    html = admin.get("/").get_data(as_text=True)
    assert "10,000+ calls" in html
    assert "10,000 calls" in admin.get("/?until=" + (T0 + timedelta(seconds=9_999)).isoformat()).get_data(
        as_text=True
    )


# -- what a page costs -------------------------------------------------------------


@contextmanager
def counted(app: Flask) -> Iterator[list[str]]:
    statements: list[str] = []
    with app.app_context():
        engine = db.engine

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


@pytest.mark.parametrize("query", [{}, {"q": "word"}, {"transcript": "done", "direction": "inbound"}])
def test_a_page_makes_the_same_number_of_queries_for_few_calls_and_many(
    app: Flask, admin: FlaskClient, query: dict[str, str]
) -> None:
    for n in range(1, 3):
        store_call(app, n, "a word or two", names={"A": "Dana"})
    with counted(app) as few:
        assert admin.get("/", query_string=query).status_code == 200
    for n in range(3, 41):
        store_call(app, n, "a word or two", names={"A": "Dana"})
        with app.app_context():  # a second recording for some calls
            if n % 3 == 0:
                call_id = db.session.scalar(select(Call.id).where(Call.call_sid == call_sid(n)))
                db.session.add(
                    Recording(
                        recording_sid=recording_sid(1000 + n),
                        call_id=call_id,
                        account_sid=ACCOUNT_SID,
                        status="completed",
                        stage="submitted",
                    )
                )
                db.session.commit()
    with counted(app) as many:
        assert admin.get("/", query_string=query).status_code == 200
    assert len(shown(admin, **query)) == 40
    assert len(many) == len(few), (few, many)


def test_the_list_fetches_only_the_start_of_each_transcript(app: Flask, admin: FlaskClient) -> None:
    store_call(app, 1, "start " + "lots of words " * 500)
    with counted(app) as statements:
        admin.get("/")
    reading = [s for s in statements if "transcripts" in s]
    assert reading and all("words" not in s.split("FROM")[0] and "utterances" not in s for s in reading)
    assert any("substr" in s.lower() for s in reading)


def test_the_csv_reads_each_transcript_s_text_and_turns_but_never_its_words(
    app: Flask, admin: FlaskClient
) -> None:
    store_call(app, 1, "what the caller said", names={"A": "Dana"})
    with counted(app) as statements:
        csv_text = admin.get("/calls.csv").get_data(as_text=True)
    assert "what the caller said" in csv_text and "Dana" in csv_text
    reading = [s.split("FROM")[0] for s in statements if "FROM transcripts" in s]
    assert reading and all("transcripts.words" not in s for s in reading), reading


# -- live status -------------------------------------------------------------------


def test_the_list_has_no_meta_refresh_but_a_script_and_a_refresh_link(app: Flask, admin: FlaskClient) -> None:
    store_call(app, 1, None, stage="submitted")
    html = admin.get("/").get_data(as_text=True)
    assert 'http-equiv="refresh"' not in html
    assert re.search(r'<script src="/static/calls\.js[^"]*" defer></script>', html)
    assert "<noscript>" in html and ">Refresh</a>" in html
    assert 'data-live="/api/calls"' in html and 'data-active="1"' in html


def test_updated_since_lists_only_calls_that_changed(app: Flask, admin: FlaskClient) -> None:
    store_call(app, 1, "old and done")
    store_call(app, 2, None, stage="submitted")
    body = admin.get("/api/calls").get_json()
    as_of = body["as_of"]
    assert listed(admin, updated_since=as_of) == []
    with app.app_context():
        db.session.execute(
            Recording.__table__.update()
            .where(Recording.recording_sid == recording_sid(2))
            .values(stage="transcribed", updated_at=datetime.now(UTC))
        )
        db.session.commit()
    (changed,) = admin.get("/api/calls", query_string={"updated_since": as_of}).get_json()["calls"]
    assert changed["call_sid"] == call_sid(2) and changed["transcript_status"] == "done"
    assert changed["in_progress"] is False


# -- SQLite: reads never wait for the write lock ----------------------------------------


def test_a_page_read_does_not_take_sqlites_write_lock(app: Flask, admin: FlaskClient) -> None:
    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            pytest.skip("SQLite only: PostgreSQL readers never block writers")
        path = db.engine.url.database
    store_call(app, 1, "hello")
    writer = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {}
        answer = admin.get("/", query_string={"q": "hello"})
        assert answer.status_code == 200 and shown(admin, q="hello") == [call_sid(1)]
        assert admin.get("/api/calls").status_code == 200
    finally:
        writer.execute("ROLLBACK")
        writer.close()


# -- the API's call --------------------------------------------------------------------


def test_the_api_gives_a_call_with_recordings_dialogue_and_names(app: Flask, admin: FlaskClient) -> None:
    store_call(app, 1, "Hello from Dana.", names={"A": "Dana"})
    body = admin.get(f"/api/calls/{call_sid(1)}").get_json()
    assert body["call_sid"] == call_sid(1) and body["speakers"] == {"A": "Dana"}
    (recording,) = body["recordings"]
    assert recording["transcript"]["text"] == "Hello from Dana."
    assert recording["dialogue"][0]["speaker"] == "Dana"
    assert recording["audio"].endswith("/audio")


def test_the_api_answers_json_for_an_unknown_call_and_a_missing_login(
    app: Flask, client: FlaskClient
) -> None:
    missing = client.get(f"/api/calls/{call_sid(1)}")
    assert missing.status_code == 401 and missing.get_json() == {"error": "Log in first."}
    login(client)
    unknown = client.get(f"/api/calls/{call_sid(9)}")
    assert unknown.status_code == 404 and "error" in unknown.get_json()


# -- CSV -------------------------------------------------------------------------------


def test_the_csv_has_one_row_per_call_with_the_lists_filters(app: Flask, admin: FlaskClient) -> None:
    store_call(app, 1, 'He said "hello", then\nhung up.', names={"A": "Dana"})
    store_call(app, 2, '=HYPERLINK("http://evil") refund', from_number="-1+1")
    store_call(app, 3, "@SUM(A1) not this one", direction="outbound-api")
    response = admin.get("/calls.csv", query_string={"direction": "inbound"})
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert re.fullmatch(
        r'attachment; filename="calls-\d{4}-\d{2}-\d{2}\.csv"', response.headers["Content-Disposition"]
    )
    assert response.is_streamed
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert list(rows[0]) == [
        "call_sid",
        "started_at",
        "direction",
        "from",
        "to",
        "status",
        "duration_s",
        "transcript_status",
        "speakers",
        "text",
    ]
    assert [r["call_sid"] for r in rows] == [call_sid(2), call_sid(1)]
    evil, hello = rows
    assert evil["text"] == '\'=HYPERLINK("http://evil") refund' and evil["from"] == "'-1+1"
    assert hello["from"] == "'+14155550123" and hello["to"] == "'+14155550100"
    assert hello["text"] == 'He said "hello", then\nhung up.' and hello["speakers"] == "Dana"
    assert hello["started_at"] == "2026-11-20T12:01:00Z" and hello["duration_s"] == "30"
    assert hello["transcript_status"] == "done" and hello["direction"] == "inbound"
    searched = list(csv.DictReader(io.StringIO(admin.get("/calls.csv?q=refund").get_data(as_text=True))))
    assert [r["call_sid"] for r in searched] == [call_sid(2)]


def test_the_csv_refuses_a_malformed_filter(admin: FlaskClient) -> None:
    answer = admin.get("/calls.csv", query_string={"since": "someday"})
    assert answer.status_code == 400


def test_the_csv_of_many_calls_comes_in_batches(app: Flask, admin: FlaskClient) -> None:
    for n in range(1, 10):
        store_call(app, n, f"call {n}")
    with app.app_context():
        db.session.execute(
            insert(Call),
            [{"call_sid": f"CA{n:032x}", "created_at": T0 - timedelta(seconds=n)} for n in range(100, 600)],
        )
        db.session.commit()
    response = admin.get("/calls.csv")
    chunks = list(response.response)
    rows = list(csv.reader(io.StringIO("".join(c.decode() if isinstance(c, bytes) else c for c in chunks))))
    assert len(rows) == 1 + 509
    assert len(chunks) > 3  # written out a batch at a time, not built whole
    assert len(set(r[0] for r in rows[1:])) == 509
