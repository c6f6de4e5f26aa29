"""The OpenAPI document at /api/openapi.json, held to the routes it describes.

schemathesis loads the document from the running app, generates requests
for every operation (valid ones and, from its coverage phase, invalid ones)
and checks each answer: no 500, a status the document lists, a body and
headers of the documented schema, and a 401 when the credentials are taken
away. The calls it finds are real rows with transcripts, so the schemas are
checked on full answers too, and the fake Twilio places the calls /dial asks
for. Both storage configurations run every operation.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from schemathesis.specs.openapi.definitions import OPENAPI_31

from app import auth, openapi, tokens
from app.access import Role
from tests.fakes.audio import wav
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import call_sid, login, recording_sid, store_call

# Rows the generated requests meet: two calls with transcripts and a speaker name.
SEEDED = {
    1: "Thanks for calling, how can I help with the refund?",
    2: "Leaving a message about invoice 4471.",
}
SCRIPT_PASSWORD = "script-password-31b7c"


@pytest.fixture
def seeded(app: Flask, twilio_api: FakeTwilio) -> Flask:
    """Two calls with transcripts and their audio; the first has the CallSid of the document's examples."""
    for n, text in SEEDED.items():
        sid = openapi.EXAMPLE_CALL_SID if n == 1 else call_sid(n)
        store_call(app, n, text, names={"A": "Dana"} if n == 1 else None, sid=sid)
        twilio_api.add_recording(recording_sid(n), wav(b"\x00\x01" * 8000), sid)
    return app


@pytest.fixture
def credentials(seeded: Flask) -> dict[str, dict[str, str]]:
    """A script's token (read and dial) and a person's session with its CSRF token (for edits)."""
    with seeded.app_context():
        auth.add_user("script", SCRIPT_PASSWORD, Role.MEMBER)
        token = tokens.issue("script", scopes="calls:read,calls:dial").token
    person: FlaskClient = seeded.test_client()
    assert login(person).status_code == 302
    session = person.get_cookie("session")
    assert session is not None
    return {
        "token": {"Authorization": f"Bearer {token}"},
        "session": {"Cookie": f"session={session.value}", "X-CSRFToken": person.csrf_token()},  # type: ignore[attr-defined]
    }


class CurrentApp:
    """The WSGI app schemathesis sends to: the app of the test that runs (a fresh one each)."""

    app: Flask | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        assert self.app is not None, "no test app is running"
        return self.app(environ, start_response)


# Loaded when the tests are collected; test_the_document_is_openapi_3_1_and_open_to_anyone
# shows that the app serves this same document.
schema = schemathesis.openapi.from_dict(openapi.document())
schema.app = current_app = CurrentApp()


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,  # the same requests every run: a failure here is never a fluke
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_operation_answers_as_documented(
    case: Any, seeded: Flask, credentials: dict[str, dict[str, str]]
) -> None:
    # Naming speakers needs calls:edit, which only a person's session has.
    who = "session" if case.operation.method.upper() == "PUT" else "token"
    # A cursor is opaque: only one from a `next` is accepted, and a made-up one of the
    # documented alphabet rightly gets 400. Every other check applies to such a request.
    # Nor can a schema say which numbers a numbering plan holds: /dial answers a well-formed
    # number that is no real one with 400 too.
    made_up_cursor = "before" in (case.query or {})
    dialling = case.operation.path == "/dial"
    excluded = [schemathesis.checks.positive_data_acceptance] if made_up_cursor or dialling else []
    current_app.app = seeded
    case.call_and_validate(headers=credentials[who], excluded_checks=excluded)


# -- the document itself --------------------------------------------------------


def oas31_validator() -> jsonschema.protocols.Validator:
    """OpenAPI 3.1's own schema, as schemathesis holds it to check the documents it loads."""
    meta = OPENAPI_31
    assert "3.1" in meta["$id"], meta["$id"]
    return jsonschema.Draft202012Validator(meta)


def test_the_document_is_openapi_3_1_and_open_to_anyone(app: Flask) -> None:
    answer = app.test_client().get("/api/openapi.json")
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    document = answer.get_json()
    assert document == openapi.document() and document["openapi"] == "3.1.0"
    errors = sorted(oas31_validator().iter_errors(document), key=str)
    assert not errors, [e.message for e in errors[:5]]


def test_every_route_a_script_can_call_is_documented_and_nothing_else(app: Flask) -> None:
    """The document and the routes agree: a new API route without a description fails here."""
    scripted = {"api", "exports"}
    routes = {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.endpoint.split(".")[0] in scripted or rule.endpoint in ("pages.dial", "pages.recording_audio")
        for method in rule.methods - {"HEAD", "OPTIONS"}  # type: ignore[operator]
    }
    documented = {
        (method.upper(), path.replace("{", "<").replace("}", ">"))
        for path, item in openapi.document()["paths"].items()
        for method in item
    }
    documented.add(("GET", "/api/openapi.json"))
    normalised = {
        (m, r.replace("<row_id:", "<").replace("<fmt>", "<format>").replace("<path:", "<")) for m, r in routes
    }
    assert normalised == documented


def test_every_error_a_route_documents_has_the_error_shape() -> None:
    document = openapi.document()
    error_schema = document["components"]["schemas"]["Error"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, answer in operation["responses"].items():
                if int(status) >= 400:
                    body = answer["content"]["application/json"]["schema"]
                    assert body == {"$ref": "#/components/schemas/Error"}, (method, path, status)
    jsonschema.validate({"error": "No such call."}, error_schema)


@pytest.fixture
def tokened(seeded: Flask) -> Iterator[tuple[FlaskClient, dict[str, str]]]:
    with seeded.app_context():
        auth.add_user("script", SCRIPT_PASSWORD, Role.MEMBER)
        token = tokens.issue("script", scopes="calls:read").token
    yield seeded.test_client(), {"Authorization": f"Bearer {token}"}


def component(name: str) -> jsonschema.protocols.Validator:
    document = openapi.document()
    registry = Registry().with_resource("urn:callscribe", DRAFT202012.create_resource(document))
    return jsonschema.Draft202012Validator(
        {"$ref": f"urn:callscribe#/components/schemas/{name}"},
        registry=registry,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


def test_a_full_call_and_a_full_list_match_their_schemas(tokened: tuple[FlaskClient, dict[str, str]]) -> None:
    client, bearer = tokened
    listed = client.get("/api/calls", headers=bearer)
    assert listed.status_code == 200 and len(listed.get_json()["calls"]) == 2
    component("CallList").validate(listed.get_json())
    searched = client.get("/api/calls", query_string={"q": "refund"}, headers=bearer).get_json()
    assert searched["calls"][0]["snippet_html"], "a search fills the snippet"
    component("CallList").validate(searched)
    call = client.get(f"/api/calls/{openapi.EXAMPLE_CALL_SID}", headers=bearer).get_json()
    assert call["recordings"][0]["dialogue"] and call["speakers"] == {"A": "Dana"}
    component("Call").validate(call)


def test_a_script_gets_json_errors_on_exports_and_audio_too(
    tokened: tuple[FlaskClient, dict[str, str]],
) -> None:
    client, bearer = tokened
    for path in (f"/calls/{call_sid(99)}/transcript.txt", "/recordings/999/audio", "/calls.csv?limit=0"):
        answer = client.get(path, headers=bearer)
        assert answer.status_code in (400, 404) and answer.mimetype == "application/json", path
        assert set(answer.get_json()) == {"error"}
    unsatisfiable = client.get("/recordings/1/audio", headers={**bearer, "Range": "bytes=99999999-"})
    assert unsatisfiable.status_code == 416 and set(unsatisfiable.get_json()) == {"error"}


def test_a_body_over_a_megabyte_is_a_json_413(seeded: Flask, credentials: dict[str, dict[str, str]]) -> None:
    huge = json.dumps({"to": "+14155550100", "pad": "x" * (1024 * 1024)})
    person = seeded.test_client()
    assert login(person).status_code == 302
    script = seeded.test_client()
    for client, method, path, headers in (
        (person, "PUT", f"/api/calls/{call_sid(2)}/speakers", {"X-CSRFToken": person.csrf_token()}),  # type: ignore[attr-defined]
        (script, "POST", "/dial", credentials["token"]),
    ):
        answer = client.open(
            path, method=method, data=huge, headers={**headers, "Content-Type": "application/json"}
        )
        assert answer.status_code == 413 and set(answer.get_json()) == {"error"}, (path, answer.data[:80])
