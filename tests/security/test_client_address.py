"""The client address, and whether the request came over https, are taken from
X-Forwarded-For and X-Forwarded-Proto only as far as TRUSTED_PROXIES says.

The address is seen where it matters: the login throttle, which locks one
(name, address) pair after five failures.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from tests.helpers import ADMIN_PASSWORD, Visitor

ROOT = Path(__file__).resolve().parents[2]
PROXY = "10.0.0.2"  # where the proxy in front of the app connects from


def lock_admin(app: Flask, address: str = PROXY, **headers: str) -> None:
    visitor = Visitor(app, address)
    for _ in range(5):
        assert visitor.log_in("admin", "wrong password!", **headers).status_code == 401


def test_without_proxies_x_forwarded_for_is_ignored(make_app: Callable[..., Flask]) -> None:
    app = make_app(TRUSTED_PROXIES="0")
    for n in range(5):
        Visitor(app, "192.0.2.50").log_in("admin", "wrong password!", X_Forwarded_For=f"198.51.100.{n}")
    forged = Visitor(app, "192.0.2.50").log_in("admin", ADMIN_PASSWORD, X_Forwarded_For="198.51.100.99")
    assert forged.status_code == 429, "a made-up X-Forwarded-For does not change the address"
    honest = Visitor(app, "192.0.2.51").log_in("admin", ADMIN_PASSWORD, X_Forwarded_For="192.0.2.50")
    assert honest.status_code == 302, "nor can it take another client's address"


def test_behind_one_proxy_the_last_hop_is_the_address(make_app: Callable[..., Flask]) -> None:
    app = make_app(TRUSTED_PROXIES="1")
    # The client made up the first entries; the proxy appended the last.
    for n in range(5):
        Visitor(app, PROXY).log_in("admin", "wrong password!", X_Forwarded_For=f"10.9.9.{n}, 203.0.113.66")
    again = Visitor(app, PROXY).log_in("admin", ADMIN_PASSWORD, X_Forwarded_For="192.0.2.1, 203.0.113.66")
    assert again.status_code == 429, "forged entries before the last hop change nothing"
    other = Visitor(app, PROXY).log_in("admin", ADMIN_PASSWORD, X_Forwarded_For="203.0.113.66, 192.0.2.7")
    assert other.status_code == 302, "another client behind the same proxy is not locked"


def test_behind_two_proxies_the_second_last_hop_is_the_address(make_app: Callable[..., Flask]) -> None:
    app = make_app(TRUSTED_PROXIES="2")
    lock_admin(app, X_Forwarded_For="203.0.113.66, 192.0.2.7, 10.0.0.1")
    assert (
        Visitor(app, PROXY).log_in("admin", ADMIN_PASSWORD, X_Forwarded_For="192.0.2.7, 10.0.0.9").status_code
        == 429
    )
    assert (
        Visitor(app, PROXY)
        .log_in("admin", ADMIN_PASSWORD, X_Forwarded_For="192.0.2.7, 203.0.113.66, 10.0.0.1")
        .status_code
        == 302
    )


@pytest.mark.parametrize(("proxies", "https"), [("0", False), ("1", True)])
def test_x_forwarded_proto_is_trusted_only_behind_a_proxy(
    make_app: Callable[..., Flask], proxies: str, https: bool
) -> None:
    client = make_app(TRUSTED_PROXIES=proxies).test_client()
    response = client.get("/login", headers={"X-Forwarded-Proto": "https"})
    assert ("Strict-Transport-Security" in response.headers) is https
    assert ("Secure" in response.headers["Set-Cookie"]) is https


def gunicorn_setting(name: str, **env: str) -> str:
    """A value of gunicorn.conf.py, as gunicorn would read it with this environment."""
    code = f"import runpy; print(repr(runpy.run_path('gunicorn.conf.py')[{name!r}]))"
    environ = {key: value for key, value in os.environ.items() if key != "TRUSTED_PROXIES"} | env
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def test_gunicorn_trusts_forwarded_headers_only_behind_a_proxy() -> None:
    assert gunicorn_setting("forwarded_allow_ips", TRUSTED_PROXIES="0") == "''"
    assert gunicorn_setting("forwarded_allow_ips", TRUSTED_PROXIES="1") == "'*'"
    assert gunicorn_setting("forwarded_allow_ips") == "'*'", "one proxy by default"
