"""Organizations, users and tokens: creation, authentication and role checks."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.db import get_or_404, session_org, utcnow
from campaigns.errors import AuthenticationFailed, Conflict, InvalidInput, PermissionDenied
from campaigns.organizations.models import ApiToken, Organization, Role, User
from campaigns.phones import normalize_country

TOKEN_PREFIX = "faro_"  # noqa: S105 - a prefix, not a secret


@dataclass(frozen=True)
class Principal:
    """Who is calling: resolved from a bearer token, carried through one request."""

    user_id: int
    organization_id: int
    role: Role
    is_operator: bool
    token_id: int | None = None

    def require(self, role: Role) -> None:
        if self.role.rank < role.rank:
            raise PermissionDenied(f"this needs the {role.value} role; you are {self.role.value}")


def hash_token(secret: str) -> str:
    # Tokens carry 256 bits of randomness, so a plain SHA-256 is enough to store them safely.
    return hashlib.sha256(secret.encode()).hexdigest()


def hash_password(password: str) -> str:
    if len(password) < 12:
        raise InvalidInput("password must have at least 12 characters", field="password")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt$16384$8$1${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str | None) -> bool:
    if not stored:
        return False
    try:
        _, n, r, p, salt, digest = stored.split("$")
        got = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p)
        )
    except ValueError:
        return False
    return hmac.compare_digest(got.hex(), digest)


def create_organization(
    session: Session, *, name: str, country: str, kind: str = "ngo"
) -> Organization:
    name = name.strip()
    if not name:
        raise InvalidInput("name must not be empty", field="name")
    if session.scalar(
        select(Organization.id)
        .where(Organization.name == name)
        .execution_options(skip_org_scope=True)
    ):
        raise Conflict(f"an organization named {name!r} exists already", field="name")
    org = Organization(name=name, country=normalize_country(country), kind=kind)
    session.add(org)
    session.flush()
    return org


def create_user(
    session: Session,
    *,
    organization_id: int,
    email: str,
    role: Role,
    name: str = "",
    password: str | None = None,
    is_operator: bool = False,
) -> User:
    email = email.strip().lower()
    if "@" not in email or len(email) > 320:
        raise InvalidInput("not an email address", field="email")
    if session.scalar(
        select(User.id).where(User.email == email).execution_options(skip_org_scope=True)
    ):
        raise Conflict("a user with this email exists already", field="email")
    user = User(
        organization_id=organization_id,
        email=email,
        role=role,
        name=name,
        is_operator=is_operator,
        password_hash=hash_password(password) if password else None,
    )
    session.add(user)
    session.flush()
    return user


def issue_token(
    session: Session,
    *,
    user: User,
    name: str = "",
    days: int = 90,
    now: dt.datetime | None = None,
) -> tuple[ApiToken, str]:
    """Create a token for ``user``; the secret is returned once and never stored."""
    if not 1 <= days <= 3650:
        raise InvalidInput("days must be between 1 and 3650", field="days")
    now = now or utcnow()
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        organization_id=user.organization_id,
        user_id=user.id,
        name=name,
        token_hash=hash_token(secret),
        prefix=secret[: len(TOKEN_PREFIX) + 6],
        created_at=now,
        expires_at=now + dt.timedelta(days=days),
    )
    session.add(token)
    session.flush()
    return token, secret


def authenticate(session: Session, secret: str, *, now: dt.datetime | None = None) -> Principal:
    """Resolve a bearer token into a principal, or raise ``AuthenticationFailed`` saying why."""
    now = now or utcnow()
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        raise AuthenticationFailed("malformed token")
    row = session.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == hash_token(secret))
        .execution_options(skip_org_scope=True)
    ).one_or_none()
    if row is None:
        raise AuthenticationFailed("unknown token")
    token, user = row
    if token.revoked_at is not None:
        raise AuthenticationFailed("token revoked")
    if token.expires_at <= now:
        raise AuthenticationFailed("token expired")
    if not user.is_active:
        raise AuthenticationFailed("user deactivated")
    # Recording use at minute granularity keeps writes off the hot path.
    if token.last_used_at is None or now - token.last_used_at > dt.timedelta(minutes=1):
        token.last_used_at = now
    return Principal(
        user_id=user.id,
        organization_id=user.organization_id,
        role=user.role,
        is_operator=user.is_operator,
        token_id=token.id,
    )


def revoke_token(session: Session, *, principal: Principal, token_id: int) -> ApiToken:
    token = get_or_404(session, ApiToken, token_id, "token")
    if token.user_id != principal.user_id:
        principal.require(Role.admin)
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    session.flush()
    return token


def get_user(session: Session, user_id: int) -> User:
    return get_or_404(session, User, user_id, "user")


def current_org(session: Session) -> int:
    org = session_org(session)
    if org is None:
        raise PermissionDenied("no organization in scope")
    return org
