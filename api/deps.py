"""Request dependencies: settings, the unit of work, and the caller.

``get_principal`` is where organization scoping happens for the whole API: it authenticates the
bearer token, then confines the request's session to the caller's organization
(``campaigns.db.scope_session``) and names the actor for the audit log.  Every ``/v1`` router
depends on it, so no route can run unscoped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session

from campaigns.audit import Actor, set_actor
from campaigns.crypto import AddressCipher
from campaigns.db import scope_session, unit_of_work, utcnow
from campaigns.errors import AuthenticationFailed
from campaigns.organizations.models import Role
from campaigns.organizations.service import Principal, authenticate
from campaigns.settings import Settings
from campaigns.web_auth import throttle


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    """One session per request; committed after the endpoint returns, before the response."""
    session: Session = request.app.state.sessionmaker()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_cipher(settings: SettingsDep) -> AddressCipher:
    return AddressCipher.from_settings(settings)


CipherDep = Annotated[AddressCipher, Depends(get_cipher)]


def get_principal(request: Request, session: SessionDep) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if not header:
        raise AuthenticationFailed("missing Authorization header: use 'Bearer <token>'")
    if scheme.lower() != "bearer" or not secret.strip():
        raise AuthenticationFailed("Authorization header must be 'Bearer <token>'")
    principal = _authenticate_throttled(request, session, secret.strip())
    scope_session(session, principal.organization_id)
    set_actor(
        session,
        Actor(
            user_id=principal.user_id,
            organization_id=principal.organization_id,
            via="api",
            request_id=getattr(request.state, "request_id", None),
        ),
    )
    return principal


def _authenticate_throttled(request: Request, session: Session, secret: str) -> Principal:
    """``authenticate``; a wrong token from an address with too many failures gets 429.

    A right token is never throttled: it carries 256 random bits, so no guess reaches one, and
    an address shared by many clients (a NAT, a load balancer) is not locked out by one of them.
    A failure is recorded in its own transaction: the request's is rolled back by the error.
    """
    try:
        return authenticate(session, secret)
    except AuthenticationFailed:
        settings: Settings = request.app.state.settings
        key = settings.secret_key.get_secret_value().encode()
        address = request.client.host if request.client else "unknown"
        wait = throttle.token_retry_after(session, secret=key, address=address, now=utcnow())
        if wait is not None:
            message = throttle.wait_message("token attempts from this address", wait)
            raise HTTPException(429, message) from None
        with unit_of_work(request.app.state.sessionmaker) as own:
            throttle.record_token_failure(own, secret=key, address=address, now=utcnow())
        raise


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(role: Role) -> object:
    def check(principal: PrincipalDep) -> Principal:
        principal.require(role)
        return principal

    return Depends(check)


ManagerDep = Annotated[Principal, require(Role.manager)]
AdminDep = Annotated[Principal, require(Role.admin)]
