"""Failed logins, counted per (user name, client address) and per client address.

A guesser is slowed down where it stands. Five failures for one name from
one address lock that pair; fifty from one address, whatever the names,
lock the address. A lock lasts 2^(n - limit) seconds after the latest
attempt (n: attempts in the last 15 minutes), at most 15 minutes. An attempt
while locked is refused without looking at the password, and counts: a
client that does not wait waits longer.

A lock only ever holds the address it was earned from, so nothing a
stranger does from elsewhere locks anyone out. Names that do not exist are
counted like real ones, so a lock tells nothing about which names exist.

The client address is ``request.remote_addr`` as ProxyFix leaves it (see
TRUSTED_PROXIES). An IPv6 address counts as its /64, which one subscriber
usually holds whole. Counts are rows of ``attempts``, shared by every
process and machine; no request ever waits for a lock to end.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from datetime import timedelta

from sqlalchemy import delete, func, select

from .models import Attempt, db, utcnow

WINDOW = timedelta(minutes=15)
FAILURES_PER_NAME_AND_ADDRESS = 5
FAILURES_PER_ADDRESS = 50
LONGEST_LOCK = 900  # seconds
KEY_PREFIX = "login:"


def lock_seconds(failures: int, allowed: int) -> int:
    """How long a count stays locked after its latest attempt: 1 s at the limit, doubling, capped."""
    if failures < allowed:
        return 0
    return min(2 ** min(failures - allowed, 10), LONGEST_LOCK)


def client_network(address: str | None) -> str:
    """What failures are counted by: the IPv4 address, or the IPv6 address's /64."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        # No address at all (a proxy passed on junk): a short key no address can take.
        return "other:" + hashlib.sha256(str(address).encode()).hexdigest()[:16]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip.packed, 64), strict=False))
    return str(ip)


def _name_key(username: str, address: str | None) -> str:
    return f"{KEY_PREFIX}name:{client_network(address)}|{username}"  # a network never holds "|"


def _limits(username: str, address: str | None) -> dict[str, int]:
    """Each count a login is part of, with the failures it allows."""
    return {
        f"{KEY_PREFIX}address:{client_network(address)}": FAILURES_PER_ADDRESS,
        _name_key(username, address): FAILURES_PER_NAME_AND_ADDRESS,
    }


def seconds_locked(username: str, address: str | None) -> int:
    """Seconds until a login for this name from this address is looked at again; 0: now."""
    now = utcnow()
    limits = _limits(username, address)
    counts = db.session.execute(
        select(Attempt.key, func.count(), func.max(Attempt.at))
        .where(Attempt.key.in_(limits), Attempt.at > now - WINDOW)
        .group_by(Attempt.key)
    )
    wait = 0.0
    for key, failures, latest in counts:
        until = latest + timedelta(seconds=lock_seconds(failures, limits[key]))
        wait = max(wait, (until - now).total_seconds())
    return math.ceil(wait)


def count_failure(username: str, address: str | None) -> None:
    """One more failure for this name from this address, and for the address."""
    now = utcnow()
    db.session.add_all([Attempt(key=key, at=now) for key in _limits(username, address)])
    db.session.execute(delete(Attempt).where(Attempt.key.startswith(KEY_PREFIX), Attempt.at < now - WINDOW))
    db.session.commit()


def count_refusal(username: str, address: str | None) -> int:
    """An attempt while locked counts as a failure; returns the seconds the lock now lasts."""
    count_failure(username, address)
    return seconds_locked(username, address)


def forget_failures(username: str, address: str | None) -> None:
    """After a successful login this name starts afresh from this address.

    The address keeps its count: whoever has an account of their own must not
    be able to wipe the failures they made against other names.
    """
    db.session.execute(delete(Attempt).where(Attempt.key == _name_key(username, address)))
    db.session.commit()
