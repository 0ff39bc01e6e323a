"""What every dashboard page shares: templates, security headers, the signed-in user, CSRF.

Pages are server-rendered; the only scripts are files under ``/static`` (CSP ``script-src
'self'``), and chart data travels in ``<script type="application/json">`` blocks, which are
data, not code.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from api.errors import _status_for as status_for  # the API's mapping, so pages agree with it
from campaigns.audit import Actor, record, set_actor
from campaigns.db import scope_session, utcnow
from campaigns.errors import FaroError
from campaigns.organizations.models import Role
from campaigns.settings import Settings
from campaigns.web_auth import sessions
from campaigns.web_auth.sessions import SignedIn

WEB = Path(__file__).resolve().parent.parent.parent / "web"
templates = Jinja2Templates(directory=str(WEB / "templates"))

SESSION_COOKIE = "faro_session"
LOGIN_CSRF_COOKIE = "faro_login_csrf"
COOKIE_PATH = "/dashboard"

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)


def security_headers(settings: Settings) -> dict[str, str]:
    headers = {
        "Content-Security-Policy": CSP,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cache-Control": "no-store",
    }
    if settings.env == "production":
        headers["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
    return headers


def secure_cookies(settings: Settings) -> bool:
    return settings.public_url.startswith("https://")


class StaticAssets(StaticFiles):
    """``/static``: the dashboard's CSS, JS and vendored chart library, with safe headers."""

    def __init__(self) -> None:
        super().__init__(directory=str(WEB / "static"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-content-type-options", b"nosniff"),
                    (b"cache-control", b"public, max-age=3600"),
                ]
            await send(message)

        await super().__call__(scope, receive, with_headers)


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def client_address(request: Request) -> str:
    # Behind a load balancer, run uvicorn with --proxy-headers so this is the real client.
    return request.client.host if request.client else "unknown"


def secret_of(request: Request) -> bytes:
    return settings_of(request).secret_key.get_secret_value().encode()


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    status_code: int = 200,
    signed: SignedIn | None = None,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    response = templates.TemplateResponse(
        request,
        template,
        {**context, "signed": signed, "is_admin": bool(signed and is_admin(signed))},
        status_code=status_code,
    )
    response.headers.update(security_headers(settings_of(request)))
    if headers:
        response.headers.update(headers)
    return response


def is_admin(signed: SignedIn) -> bool:
    return signed.principal.role == Role.admin


def current(request: Request, session: Session) -> SignedIn | None:
    """The signed-in user of this request, with the session scoped to their organization.

    No audit actor is set: pages only read, and the session row's own bookkeeping (last seen,
    tokens) must not fill the audit log.  Sign-in, sign-out and password changes are recorded
    explicitly (``audit``).
    """
    token = request.cookies.get(SESSION_COOKIE, "")
    signed = sessions.resolve(session, token, now=utcnow()) if token else None
    if signed is None:
        return None
    scope_session(session, signed.principal.organization_id)
    return signed


def audit(
    request: Request, session: Session, *, user_id: int, organization_id: int, action: str
) -> None:
    """One audit event for a sign-in event, naming nothing secret (no token, no email)."""
    session.flush()  # the session rows' own changes are written before the actor is set
    set_actor(
        session,
        Actor(
            user_id=user_id,
            organization_id=organization_id,
            via="web",
            request_id=getattr(request.state, "request_id", None),
        ),
    )
    record(
        session,
        action=action,
        object_type="app_user",
        object_id=user_id,
        organization_id=organization_id,
    )


def to_login(request: Request) -> RedirectResponse:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    response = RedirectResponse(f"/dashboard/login?next={quote(target, safe='')}", 303)
    response.headers.update(security_headers(settings_of(request)))
    return response


def safe_next(value: str | None) -> str:
    """Only a dashboard path may follow sign-in (no open redirect to another site)."""
    if value and value.startswith("/dashboard") and "//" not in value and "\\" not in value:
        return value
    return "/dashboard"


def set_session_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(sessions.LIFETIME.total_seconds()),
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(settings_of(request)),
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(settings_of(request)),
    )


def login_csrf(request: Request) -> tuple[str, bool]:
    """The sign-in form's CSRF token (double-submit cookie) and whether it is new."""
    existing = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if 20 <= len(existing) <= 100:
        return existing, False
    return secrets.token_urlsafe(32), True


def set_login_csrf_cookie(response: Response, request: Request, value: str) -> None:
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        value,
        max_age=3600,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=secure_cookies(settings_of(request)),
    )


def login_csrf_ok(request: Request, submitted: str) -> bool:
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    return bool(cookie and submitted) and hmac.compare_digest(cookie.encode(), submitted.encode())


def error_page(request: Request, exc: FaroError, signed: SignedIn | None) -> HTMLResponse:
    status = status_for(exc)
    return render(
        request,
        "error.html",
        {"title": "Cannot show this page", "message": exc.message, "status": status},
        status_code=status,
        signed=signed,
    )


def csrf_refused(request: Request, signed: SignedIn | None) -> HTMLResponse:
    return render(
        request,
        "error.html",
        {
            "title": "Form refused",
            "message": "This form is missing its security token or the token is wrong "
            "(the page may be old, or the form was not sent from Faro). "
            "Reload the page and try again.",
            "status": 403,
        },
        status_code=403,
        signed=signed,
    )


def today() -> dt.date:
    return utcnow().date()
