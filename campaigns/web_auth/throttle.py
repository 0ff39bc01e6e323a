"""Throttling of failed credentials: sign-in per account and per client address, bearer tokens
per client address.

A sliding window over ``auth_failure`` rows, in the database so every API replica sees the same
counts and the embedded default needs nothing more.  Keys are HMACs of the email or address under
the installation's secret key: the table says how often, never who.

Limits (per 15 minutes):

- sign-in, per account: 5 — a person mistyping does not reach it; guessing one account stops;
- sign-in, per client address: 20 — spraying many accounts stops, an office behind one NAT
  address is not locked out by one person's typos;
- bearer tokens, per client address: 20 — tokens carry 256 random bits, so this slows noise and
  probing, not a guess that could succeed.

Once a sign-in key has reached its limit every attempt is refused (429) until the oldest failure
leaves the window, whether or not the password is right; otherwise the answer would tell a
guesser when it was right.  A right bearer token is never refused (``api/deps.py``): no guess
reaches one, so only wrong tokens get 429.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from campaigns.web_auth.models import AuthFailure

WINDOW = dt.timedelta(minutes=15)


@dataclass(frozen=True)
class Limit:
    scope: str
    attempts: int
    window: dt.timedelta = WINDOW


LOGIN_ACCOUNT = Limit("login_account", 5)
LOGIN_ADDRESS = Limit("login_address", 20)
TOKEN_ADDRESS = Limit("token_address", 20)


def key_hash(secret: bytes, limit: Limit, value: str) -> str:
    return hmac.new(secret, f"{limit.scope}:{value}".encode(), hashlib.sha256).hexdigest()


def retry_after(
    session: Session, *, secret: bytes, limit: Limit, value: str, now: dt.datetime
) -> int | None:
    """Seconds until ``value`` may try again, or ``None`` if it is under its limit."""
    since = now - limit.window
    row = session.execute(
        select(func.count(), func.min(AuthFailure.created_at)).where(
            AuthFailure.scope == limit.scope,
            AuthFailure.key_hash == key_hash(secret, limit, value),
            AuthFailure.created_at > since,
        )
    ).one()
    count, oldest = int(row[0]), row[1]
    if count < limit.attempts or oldest is None:
        return None
    if oldest.tzinfo is None:  # SQLite returns aggregates without the column type
        oldest = oldest.replace(tzinfo=dt.UTC)
    return max(1, int((oldest + limit.window - now).total_seconds()) + 1)


def record_failure(
    session: Session, *, secret: bytes, limit: Limit, value: str, now: dt.datetime
) -> None:
    """Count one failure for ``value``, and forget every failure older than the window.

    The table so holds at most one window of failures; addresses that are refused are not
    counted again, so a flood from one address adds at most ``limit.attempts`` rows.
    """
    purge(session, now=now, window=limit.window)
    session.add(
        AuthFailure(scope=limit.scope, key_hash=key_hash(secret, limit, value), created_at=now)
    )
    session.flush()


def clear(session: Session, *, secret: bytes, limit: Limit, value: str) -> None:
    """Forget the failures of ``value`` (an account that just signed in successfully)."""
    session.execute(
        delete(AuthFailure).where(
            AuthFailure.scope == limit.scope,
            AuthFailure.key_hash == key_hash(secret, limit, value),
        )
    )


def purge(session: Session, *, now: dt.datetime, window: dt.timedelta = WINDOW) -> int:
    """Delete every failure older than the window (keys that never came back)."""
    result = session.execute(delete(AuthFailure).where(AuthFailure.created_at <= now - window))
    return int(getattr(result, "rowcount", 0) or 0)


def token_retry_after(
    session: Session, *, secret: bytes, address: str, now: dt.datetime
) -> int | None:
    """Seconds until a wrong token from ``address`` is answered 401 again, or ``None``."""
    return retry_after(session, secret=secret, limit=TOKEN_ADDRESS, value=address, now=now)


def record_token_failure(
    session: Session, *, secret: bytes, address: str, now: dt.datetime
) -> None:
    record_failure(session, secret=secret, limit=TOKEN_ADDRESS, value=address, now=now)


def wait_message(what: str, seconds: int) -> str:
    minutes = max(1, (seconds + 59) // 60)
    return f"too many failed {what}; try again in {minutes} minute" + ("s" if minutes != 1 else "")
