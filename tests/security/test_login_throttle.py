"""Failed logins are throttled per (user name, client address) and per client address.

Each test sends what an attacker would send: login forms from chosen client
addresses (``REMOTE_ADDR``, as the proxy in front of the app connects),
with made-up names, wrong and right passwords.
"""

from __future__ import annotations

from flask import Flask

from tests.helpers import ADMIN_PASSWORD, Visitor, password_checks

ATTACKER = "203.0.113.66"
ADMIN_HOME = "198.51.100.10"
PASSWORD = "a long enough password"


def add_user(app: Flask, username: str) -> None:
    result = app.test_cli_runner().invoke(
        args=["users", "add", username, "--password-stdin"], input=PASSWORD + "\n"
    )
    assert result.exit_code == 0, result.output


def test_strangers_failing_with_made_up_names_do_not_lock_out_the_admin(app: Flask) -> None:
    stranger = Visitor(app, ATTACKER)
    for n in range(60):
        stranger.log_in(f"made-up-{n}", "guess")
    assert stranger.log_in("admin", ADMIN_PASSWORD).status_code == 429, "the stranger's address is locked"
    assert Visitor(app, ADMIN_HOME).log_in("admin", ADMIN_PASSWORD).status_code == 302


def test_five_failures_lock_one_name_from_one_address_even_for_the_right_password(app: Flask) -> None:
    attacker = Visitor(app, ATTACKER)
    for _ in range(5):
        assert attacker.log_in("admin", "wrong password!").status_code == 401
    locked = attacker.log_in("admin", ADMIN_PASSWORD)
    assert locked.status_code == 429
    assert "Too many failed attempts" in locked.get_data(as_text=True)
    assert locked.headers["Retry-After"] == "2"
    # The lock is on that pair only: the admin from its own address, and
    # another user from the attacker's address, log in.
    assert Visitor(app, ADMIN_HOME).log_in("admin", ADMIN_PASSWORD).status_code == 302
    add_user(app, "ada")
    assert attacker.log_in("ada", PASSWORD).status_code == 302


def test_a_name_that_does_not_exist_is_locked_like_a_real_one(app: Flask) -> None:
    """Otherwise the lock would tell which names exist."""
    attacker = Visitor(app, ATTACKER)
    answers = {}
    for username in ("admin", "nobody"):
        statuses = [attacker.log_in(username, "wrong password!").status_code for _ in range(5)]
        locked = attacker.log_in(username, "wrong password!")
        answers[username] = (statuses, locked.status_code, locked.headers.get("Retry-After"))
    assert answers["admin"] == answers["nobody"] == ([401] * 5, 429, "2")


def test_while_locked_no_password_is_checked(app: Flask) -> None:
    attacker = Visitor(app, ATTACKER)
    for _ in range(5):
        attacker.log_in("admin", "wrong password!")
    attacker.client.get("/login")
    with password_checks() as checks:
        assert attacker.log_in("admin", ADMIN_PASSWORD).status_code == 429
    assert checks == []


def test_each_attempt_while_locked_doubles_the_wait_up_to_fifteen_minutes(app: Flask) -> None:
    attacker = Visitor(app, ATTACKER)
    for _ in range(5):
        attacker.log_in("admin", "wrong password!")
    waits = [attacker.log_in("admin", ADMIN_PASSWORD).headers.get("Retry-After") for _ in range(11)]
    assert waits == ["2", "4", "8", "16", "32", "64", "128", "256", "512", "900", "900"]


def test_a_successful_login_forgets_that_names_failures(app: Flask) -> None:
    admin = Visitor(app, ADMIN_HOME)
    for _ in range(4):
        assert admin.log_in("admin", "wrong password!").status_code == 401
    assert admin.log_in("admin", ADMIN_PASSWORD).status_code == 302
    admin = Visitor(app, ADMIN_HOME)
    assert admin.log_in("admin", "wrong password!").status_code == 401
    assert admin.log_in("admin", ADMIN_PASSWORD).status_code == 302


def test_fifty_failures_lock_the_address_for_every_name_and_only_that_address(app: Flask) -> None:
    attacker = Visitor(app, ATTACKER)
    for n in range(50):
        assert attacker.log_in(f"made-up-{n}", "guess").status_code == 401
    add_user(app, "ada")
    locked = attacker.log_in("ada", PASSWORD)
    assert locked.status_code == 429
    assert locked.headers["Retry-After"] == "2"
    assert Visitor(app, ADMIN_HOME).log_in("ada", PASSWORD).status_code == 302


def test_addresses_of_one_ipv6_network_count_as_one(app: Flask) -> None:
    """Whoever has one IPv6 address usually has its whole /64."""
    for n in range(5):
        Visitor(app, f"2001:db8:1:2::{n + 1:x}").log_in("admin", "wrong password!")
    assert Visitor(app, "2001:db8:1:2:ffff::1").log_in("admin", ADMIN_PASSWORD).status_code == 429
    assert Visitor(app, "2001:db8:1:3::1").log_in("admin", ADMIN_PASSWORD).status_code == 302
