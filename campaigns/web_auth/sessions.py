"""Dashboard sign-in: password check with throttling, server-side sessions, CSRF tokens.

A session's lifecycle::

    sign_in ──▶ live ──(request)──▶ live, last_seen_at moved (at most once a minute)
                 │
                 ├─ sign_out ─────────────────▶ deleted
                 ├─ change_password ──────────▶ every session of the user deleted
                 ├─ idle > IDLE or past expires_at ─▶ refused, deleted
                 └─ user deactivated or password changed elsewhere ─▶ refused, deleted

The browser holds only the random id; the table stores its SHA-256.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from campaigns.errors import AuthenticationFailed, InvalidInput
from campaigns.organizations.models import User
from campaigns.organizations.service import Principal, hash_password, verify_password
from campaigns.web_auth import throttle
from campaigns.web_auth.models import WebSession

LIFETIME = dt.timedelta(hours=12)
IDLE = dt.timedelta(hours=2)
MAX_PASSWORD = 200


class Throttled(AuthenticationFailed):
    """Too many failed attempts from this account or address; ``retry_after`` in seconds."""

    code = "too_many_requests"

    def __init__(self, retry_after: int) -> None:
        minutes = max(1, (retry_after + 59) // 60)
        super().__init__(
            f"too many failed sign-in attempts; try again in {minutes} minute"
            + ("s" if minutes != 1 else "")
        )
        self.retry_after = retry_after


@dataclass(frozen=True)
class SignedIn:
    """A live session: who, and the secret its forms must echo."""

    principal: Principal
    session_id: int
    csrf_token: str
    email: str
    name: str


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def password_stamp(password_hash: str | None) -> str:
    return hashlib.sha256((password_hash or "").encode()).hexdigest()[:16]


def _check_throttle(
    session: Session, *, secret: bytes, email: str, address: str, now: dt.datetime
) -> None:
    for limit, value in ((throttle.LOGIN_ACCOUNT, email), (throttle.LOGIN_ADDRESS, address)):
        wait = throttle.retry_after(session, secret=secret, limit=limit, value=value, now=now)
        if wait is not None:
            raise Throttled(wait)


def _fail(
    session: Session, *, secret: bytes, email: str, address: str, now: dt.datetime
) -> AuthenticationFailed:
    for limit, value in ((throttle.LOGIN_ACCOUNT, email), (throttle.LOGIN_ADDRESS, address)):
        throttle.record_failure(session, secret=secret, limit=limit, value=value, now=now)
    try:
        _check_throttle(session, secret=secret, email=email, address=address, now=now)
    except Throttled as exc:
        return exc
    return AuthenticationFailed("wrong email or password")


def sign_in(
    session: Session,
    *,
    email: str,
    password: str,
    address: str,
    secret: bytes,
    now: dt.datetime,
) -> tuple[WebSession, str]:
    """Check the password and open a session; returns the row and the cookie's secret.

    Raises ``Throttled`` when the account or the address has too many recent failures (checked
    before the password, so a right password is refused too), else ``AuthenticationFailed``
    with one message for an unknown email, a wrong password and a deactivated user.  The caller
    must commit even when this raises, so that failures are counted.
    """
    email = email.strip().lower()[:320]
    _check_throttle(session, secret=secret, email=email, address=address, now=now)
    user = session.scalar(
        select(User).where(User.email == email).execution_options(skip_org_scope=True)
    )
    # Hash even for an unknown email so timing does not tell which emails exist.
    ok = verify_password(password[:MAX_PASSWORD], user.password_hash if user else _DUMMY_HASH)
    if user is None or not ok or not user.is_active:
        raise _fail(session, secret=secret, email=email, address=address, now=now)
    throttle.clear(session, secret=secret, limit=throttle.LOGIN_ACCOUNT, value=email)
    return _open(session, user=user, now=now)


def _open(session: Session, *, user: User, now: dt.datetime) -> tuple[WebSession, str]:
    # The user's sessions that expired unseen go now (a stale cookie deletes its own row).
    session.execute(
        delete(WebSession)
        .where(
            WebSession.user_id == user.id,
            (WebSession.expires_at <= now) | (WebSession.last_seen_at < now - IDLE),
        )
        .execution_options(skip_org_scope=True)
    )
    token = secrets.token_urlsafe(32)
    row = WebSession(
        organization_id=user.organization_id,
        user_id=user.id,
        token_hash=_token_hash(token),
        csrf_token=secrets.token_urlsafe(32),
        password_stamp=password_stamp(user.password_hash),
        created_at=now,
        last_seen_at=now,
        expires_at=now + LIFETIME,
    )
    session.add(row)
    session.flush()
    return row, token


def resolve(session: Session, token: str, *, now: dt.datetime) -> SignedIn | None:
    """The live session behind a cookie, or ``None`` (and the row deleted if it went stale)."""
    if not token or len(token) > 100:
        return None
    row = session.execute(
        select(WebSession, User)
        .join(User, User.id == WebSession.user_id)
        .where(WebSession.token_hash == _token_hash(token))
        .execution_options(skip_org_scope=True)
    ).one_or_none()
    if row is None:
        return None
    web, user = row
    stale = (
        web.expires_at <= now
        or now - web.last_seen_at > IDLE
        or not user.is_active
        or not hmac.compare_digest(web.password_stamp, password_stamp(user.password_hash))
    )
    if stale:
        session.execute(
            delete(WebSession).where(WebSession.id == web.id).execution_options(skip_org_scope=True)
        )
        return None
    if now - web.last_seen_at > dt.timedelta(minutes=1):
        web.last_seen_at = now
    return SignedIn(
        principal=Principal(
            user_id=user.id,
            organization_id=user.organization_id,
            role=user.role,
            is_operator=user.is_operator,
        ),
        session_id=web.id,
        csrf_token=web.csrf_token,
        email=user.email,
        name=user.name,
    )


def csrf_ok(signed_in: SignedIn, submitted: str | None) -> bool:
    return bool(submitted) and hmac.compare_digest(
        signed_in.csrf_token.encode(), (submitted or "").encode()
    )


def sign_out(session: Session, *, session_id: int) -> None:
    session.execute(
        delete(WebSession).where(WebSession.id == session_id).execution_options(skip_org_scope=True)
    )


def change_password(
    session: Session,
    *,
    user_id: int,
    current: str,
    new: str,
    address: str,
    secret: bytes,
    now: dt.datetime,
) -> tuple[WebSession, str]:
    """Set a new password and revoke every session of the user; returns a fresh session.

    A wrong current password counts as a failed sign-in of the account (same throttle).
    """
    user = session.scalar(
        select(User).where(User.id == user_id).execution_options(skip_org_scope=True)
    )
    if user is None or not user.is_active:
        raise AuthenticationFailed("signed out")
    _check_throttle(session, secret=secret, email=user.email, address=address, now=now)
    if not verify_password(current[:MAX_PASSWORD], user.password_hash):
        raise _fail(session, secret=secret, email=user.email, address=address, now=now)
    if len(new) > MAX_PASSWORD:
        raise InvalidInput(
            f"the new password must have at most {MAX_PASSWORD} characters", field="new"
        )
    if new == current:
        raise InvalidInput("the new password must differ from the current one", field="new")
    user.password_hash = hash_password(new)
    session.execute(
        delete(WebSession)
        .where(WebSession.user_id == user.id)
        .execution_options(skip_org_scope=True)
    )
    return _open(session, user=user, now=now)


_DUMMY_HASH = (
    "scrypt$16384$8$1$00000000000000000000000000000000$"
    + "00" * 64  # never matches: a scrypt digest of 64 zero bytes is not reachable
)
