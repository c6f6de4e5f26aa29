"""Twilio's signature passes behind every proxy Twilio's requests really cross, and nothing else does."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

import pytest
from flask import Flask
from twilio.request_validator import RequestValidator

from tests.helpers import AUTH_TOKEN, call_sid, call_status_form, twilio_signature


def test_our_signer_matches_twilios_published_test_vector() -> None:
    """twilio-python's own test vector: token 12345, its URL and parameters, its signature."""
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
        "Caller": "+14158675309",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_signature(url, params, token="12345") == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert RequestValidator("12345").validate(url, params, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")


# How each front end hands Twilio's request to us: TLS ends before the app.
FRONT_ENDS = {
    "ngrok": {"Host": "abc123.ngrok.app", "X-Forwarded-Proto": "https", "X-Forwarded-For": "54.172.60.1"},
    "heroku": {
        "Host": "callscribe.herokuapp.com",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Port": "443",
        "X-Forwarded-For": "54.172.60.1",
        "Via": "1.1 vegur",
    },
    "render": {
        "Host": "callscribe.onrender.com",
        "X-Forwarded-Proto": "https",
        "True-Client-IP": "54.172.60.1",
    },
    "fly": {
        "Host": "callscribe.fly.dev",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Port": "443",
        "Fly-Forwarded-Proto": "https",
        "Fly-Client-IP": "54.172.60.1",
    },
}


@pytest.mark.parametrize("front_end", list(FRONT_ENDS))
def test_genuine_request_passes_behind_each_front_end(make_app: Callable[..., Flask], front_end: str) -> None:
    headers = FRONT_ENDS[front_end]
    base_url = f"https://{headers['Host']}"
    client = make_app(BASE_URL=base_url).test_client()
    form = call_status_form(call_sid(), "ringing")
    signature = twilio_signature(f"{base_url}/twilio/call-status", form)
    response = client.post(
        "/twilio/call-status",
        data=urlencode(form),
        content_type="application/x-www-form-urlencoded",
        base_url="http://10.0.0.7:8080",  # what the app itself sees
        headers={**headers, "X-Twilio-Signature": signature},
    )
    assert response.status_code == 204


def test_public_url_with_a_non_default_port(make_app: Callable[..., Flask]) -> None:
    base_url = "https://calls.example.com:8443"
    client = make_app(BASE_URL=base_url).test_client()
    form = call_status_form(call_sid(), "ringing")
    response = client.post(
        "/twilio/call-status",
        data=form,
        headers={"X-Twilio-Signature": twilio_signature(f"{base_url}/twilio/call-status", form)},
    )
    assert response.status_code == 204


def test_query_string_twilio_appended_is_part_of_the_signed_url(app: Flask) -> None:
    client = app.test_client()
    form = call_status_form(call_sid(), "completed", CallDuration="3")
    query = "attempt=2&note=caf%C3%A9%20%2B%201"
    url = f"https://callscribe.example/twilio/call-status?{query}"
    response = client.post(
        f"/twilio/call-status?{query}", data=form, headers={"X-Twilio-Signature": twilio_signature(url, form)}
    )
    assert response.status_code == 204


# The webhook URL as configured in the Twilio console, with connection overrides.
OVERRIDES = "#rc=3&rt=5000"


def test_signature_over_the_url_without_its_fragment_is_accepted(app: Flask) -> None:
    """The request Twilio makes carries no fragment: HTTP's request target never has one."""
    form = call_status_form(call_sid(), "ringing")
    signature = twilio_signature("https://callscribe.example/twilio/call-status", form)
    response = app.test_client().post(
        "/twilio/call-status", data=form, headers={"X-Twilio-Signature": signature}
    )
    assert response.status_code == 204


def test_signature_over_the_url_with_its_fragment_is_refused(app: Flask) -> None:
    """A signature that covers the fragment cannot be checked, so it is refused.

    twilio-python's ``RequestValidator.validate`` is the reference: it signs
    the URL string it is given as is (``urlparse(...).geturl()`` keeps the
    fragment, and only the port is added or removed), so it never strips a
    fragment. The fragment never reaches the server, and the app rebuilds
    the signed URL from BASE_URL, the path and the raw query string, which
    is right only if Twilio signs the URL without its fragment. Were Twilio
    to sign ``...#rc=3&rt=5000`` as well, every callback of a number
    configured with overrides would be refused here, loudly (403), rather
    than accepted on a URL the app guessed.
    """
    form = call_status_form(call_sid(), "ringing")
    url = f"https://callscribe.example/twilio/call-status{OVERRIDES}"
    assert RequestValidator(AUTH_TOKEN).validate(url, form, twilio_signature(url, form)), (
        "the reference validator keeps the fragment in the signed URL"
    )
    response = app.test_client().post(
        "/twilio/call-status", data=form, headers={"X-Twilio-Signature": twilio_signature(url, form)}
    )
    assert response.status_code == 403


@pytest.mark.parametrize(
    "forged",
    [
        {"Host": "attacker.example", "X-Forwarded-Proto": "https"},
        {"X-Forwarded-Host": "attacker.example", "X-Forwarded-Proto": "https"},
        {
            "X-Forwarded-Host": "attacker.example",
            "X-Forwarded-Port": "8443",
            "Forwarded": "host=attacker.example",
        },
    ],
)
def test_forged_forwarding_headers_cannot_make_a_forgery_pass(app: Flask, forged: dict[str, str]) -> None:
    """The attacker signs their own URL with a token they know; headers claim it is ours."""
    form = call_status_form(call_sid(), "ringing")
    for token in (AUTH_TOKEN, "attackers-own-token"):
        signature = twilio_signature("https://attacker.example/twilio/call-status", form, token=token)
        response = app.test_client().post(
            "/twilio/call-status", data=form, headers={**forged, "X-Twilio-Signature": signature}
        )
        assert response.status_code == 403


@pytest.mark.parametrize("signature", [None, "", "not base64", "RSOYDt4T1cUTdK1PDd93/VVr8B8="])
def test_without_a_token_nothing_is_accepted(make_app: Callable[..., Flask], signature: str | None) -> None:
    client = make_app(TWILIO_AUTH_TOKEN=None).test_client()
    headers = {} if signature is None else {"X-Twilio-Signature": signature}
    for path in ("/twilio/voice", "/twilio/call-status", "/twilio/recording-status", "/twilio/outbound"):
        response = client.post(path, data=call_status_form(call_sid(), "ringing"), headers=headers)
        assert response.status_code == 503
        assert "TWILIO_AUTH_TOKEN" in response.get_json()["error"]
