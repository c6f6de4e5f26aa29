"""API tokens for scripts: several per user, each with scopes and an optional expiry.

Only a token's SHA-256 is kept; the token itself is shown once. A token is
limited to its scopes *and* its user's role at the time of use, so a
viewer's token can never dial, whatever scopes it was given. Its last use
is written at most once a minute, never on every request.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from .access import ROLE_PERMISSIONS, TOKEN_SCOPES, Account, Permission, Role, SessionUser
from .models import ApiToken, User, db, utcnow

PREFIX = "cs_"  # makes a leaked token easy to spot
LAST_USE_EVERY = timedelta(minutes=1)
DURATION = re.compile(r"^(\d{1,5})([mhd])$")


class TokenError(ValueError):
    """A token could not be made or found; ``str()`` says why."""


@dataclass(frozen=True)
class Issued:
    id: int
    token: str
    scopes: tuple[str, ...]
    expires_at: datetime | None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_scopes(text: str | None, role: Role) -> tuple[Permission, ...]:
    """``calls:read,calls:dial``; none given means every scope the role has."""
    allowed = [s for s in TOKEN_SCOPES if s in ROLE_PERMISSIONS[role]]
    if not text:
        return tuple(allowed)
    asked = [s.strip() for s in text.replace(" ", ",").split(",") if s.strip()]
    known = {str(s) for s in TOKEN_SCOPES}
    unknown = [s for s in asked if s not in known]
    if unknown:
        raise TokenError(f"Unknown scope {', '.join(unknown)}; scopes are {', '.join(sorted(known))}.")
    beyond = [s for s in asked if Permission(s) not in ROLE_PERMISSIONS[role]]
    if beyond:
        raise TokenError(f"A {role}'s token cannot have {', '.join(beyond)}.")
    return tuple(Permission(s) for s in dict.fromkeys(asked))


def parse_duration(text: str | None) -> timedelta | None:
    """``90m``, ``12h`` or ``30d``; None for a token that does not expire."""
    if not text:
        return None
    match = DURATION.match(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise TokenError("Give the expiry as minutes, hours or days, e.g. 90m, 12h or 30d.")
    unit = {"m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
    return timedelta(**{unit: int(match.group(1))})


def issue(username: str, *, scopes: str | None = None, expires: str | None = None) -> Issued:
    """A new token for ``username``; the user's other tokens keep working."""
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        raise TokenError(f"no user {username} (add one with flask users add)")
    granted = parse_scopes(scopes, Role(user.role))
    lifetime = parse_duration(expires)
    token = PREFIX + secrets.token_hex(24)
    row = ApiToken(
        user_id=user.id,
        token_hash=_hash(token),
        scopes=" ".join(granted),
        expires_at=utcnow() + lifetime if lifetime else None,
    )
    db.session.add(row)
    db.session.commit()
    return Issued(row.id, token, tuple(granted), row.expires_at)


def of_user(username: str) -> list[ApiToken]:
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        raise TokenError(f"no user {username}")
    return list(user.tokens)


def revoke(token_id: int) -> str:
    """Revoke a token at once; returns whose it was."""
    row = db.session.get(ApiToken, token_id)
    if row is None or row.revoked_at is not None:
        raise TokenError(f"no active token {token_id}")
    row.revoked_at = utcnow()
    owner = row.user.username
    db.session.commit()
    return owner


def authenticate(token: str) -> SessionUser | None:
    """The user a bearer token stands for, with its scopes; None for a wrong, revoked or expired one."""
    if not token.startswith(PREFIX):
        return None
    now = utcnow()
    found = db.session.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == _hash(token))
    ).first()
    if found is None:
        return None
    row, user = found
    if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        return None
    signed_in = SessionUser(
        Account(user.username, user.password_hash, Role(user.role)),
        generation=0,  # a token is no session: it ends when revoked or expired
        token_id=row.id,
        scopes=frozenset(row.scopes.split()),
    )
    stale = row.last_used_at is None or row.last_used_at < now - LAST_USE_EVERY
    # The read ends first: on SQLite a GET reads without the write lock, and
    # a write that starts its own transaction waits its turn for it.
    db.session.commit()
    if stale:
        db.session.execute(update(ApiToken).where(ApiToken.id == signed_in.token_id).values(last_used_at=now))
        db.session.commit()
    return signed_in


def describe(row: ApiToken) -> str:
    """One line for a listing."""
    state = (
        "revoked"
        if row.revoked_at
        else ("expired" if row.expires_at and row.expires_at <= utcnow() else "active")
    )
    expires = row.expires_at.strftime("%Y-%m-%d %H:%M") if row.expires_at else "never"
    used = row.last_used_at.strftime("%Y-%m-%d %H:%M") if row.last_used_at else "never"
    return f"{row.id}\t{state}\t{row.scopes.replace(' ', ',')}\texpires {expires}\tlast used {used}"
