"""Sign-in, sign-out and password change for the dashboard (forms, CSRF-checked)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.deps import SessionDep
from api.routes.dashboard import web
from campaigns.db import utcnow
from campaigns.errors import AuthenticationFailed, InvalidInput
from campaigns.web_auth import sessions

router = APIRouter(prefix="/dashboard")

FormStr = Annotated[str, Form(max_length=1000)]


def _login_page(
    request: Request,
    *,
    next_: str,
    email: str = "",
    message: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    token, new = web.login_csrf(request)
    response = web.render(
        request,
        "login.html",
        {
            "title": "Sign in",
            "csrf": token,
            "next": web.safe_next(next_),
            "email": email,
            "message": message,
        },
        status_code=status_code,
        headers=headers,
    )
    if new:
        web.set_login_csrf_cookie(response, request, token)
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, session: SessionDep, next: str = "/dashboard") -> Response:
    if web.current(request, session) is not None:
        return RedirectResponse(web.safe_next(next), 303)
    return _login_page(request, next_=next)


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    session: SessionDep,
    email: FormStr = "",
    password: FormStr = "",
    csrf: FormStr = "",
    next: FormStr = "/dashboard",
) -> Response:
    if not web.login_csrf_ok(request, csrf):
        return web.csrf_refused(request, None)
    if not email.strip() or not password:
        return _login_page(
            request,
            next_=next,
            email=email,
            message="Enter your email and password.",
            status_code=422,
        )
    try:
        row, token = sessions.sign_in(
            session,
            email=email,
            password=password,
            address=web.client_address(request),
            secret=web.secret_of(request),
            now=utcnow(),
        )
    except sessions.Throttled as exc:
        # The failure just counted must be kept: the session commits after this returns.
        return _login_page(
            request,
            next_=next,
            email=email,
            message=exc.message[:1].upper() + exc.message[1:] + ".",
            status_code=429,
            headers={"Retry-After": str(exc.retry_after)},
        )
    except AuthenticationFailed:
        return _login_page(
            request,
            next_=next,
            email=email,
            message="Wrong email or password.",
            status_code=401,
        )
    web.audit(
        request,
        session,
        user_id=row.user_id,
        organization_id=row.organization_id,
        action="web.signed_in",
    )
    response = RedirectResponse(web.safe_next(next), 303)
    response.headers.update(web.security_headers(web.settings_of(request)))
    web.set_session_cookie(response, request, token)
    response.delete_cookie(web.LOGIN_CSRF_COOKIE, path=web.COOKIE_PATH)
    return response


@router.post("/logout")
def logout(request: Request, session: SessionDep, csrf: FormStr = "") -> Response:
    signed = web.current(request, session)
    if signed is None:
        return web.to_login(request)
    if not sessions.csrf_ok(signed, csrf):
        return web.csrf_refused(request, signed)
    sessions.sign_out(session, session_id=signed.session_id)
    web.audit(
        request,
        session,
        user_id=signed.principal.user_id,
        organization_id=signed.principal.organization_id,
        action="web.signed_out",
    )
    response = RedirectResponse("/dashboard/login", 303)
    response.headers.update(web.security_headers(web.settings_of(request)))
    web.clear_session_cookie(response, request)
    return response


@router.get("/account", response_class=HTMLResponse)
def account(request: Request, session: SessionDep) -> Response:
    signed = web.current(request, session)
    if signed is None:
        return web.to_login(request)
    return web.render(request, "account.html", {"title": "Your account"}, signed=signed)


@router.post("/account/password", response_class=HTMLResponse)
def change_password(
    request: Request,
    session: SessionDep,
    current: FormStr = "",
    new: FormStr = "",
    confirm: FormStr = "",
    csrf: FormStr = "",
) -> Response:
    signed = web.current(request, session)
    if signed is None:
        return web.to_login(request)
    if not sessions.csrf_ok(signed, csrf):
        return web.csrf_refused(request, signed)

    def again(message: str, status_code: int, headers: dict[str, str] | None = None) -> Response:
        return web.render(
            request,
            "account.html",
            {"title": "Your account", "message": message},
            status_code=status_code,
            signed=signed,
            headers=headers,
        )

    if new != confirm:
        return again("The new password and its confirmation differ.", 422)
    try:
        _, token = sessions.change_password(
            session,
            user_id=signed.principal.user_id,
            current=current,
            new=new,
            address=web.client_address(request),
            secret=web.secret_of(request),
            now=utcnow(),
        )
    except sessions.Throttled as exc:
        return again(exc.message + ".", 429, {"Retry-After": str(exc.retry_after)})
    except AuthenticationFailed:
        return again("Your current password is wrong.", 401)
    except InvalidInput as exc:
        return again(exc.message[:1].upper() + exc.message[1:] + ".", 422)
    web.audit(
        request,
        session,
        user_id=signed.principal.user_id,
        organization_id=signed.principal.organization_id,
        action="web.password_changed",
    )
    response = RedirectResponse("/dashboard/account?changed=1", 303)
    response.headers.update(web.security_headers(web.settings_of(request)))
    web.set_session_cookie(response, request, token)
    return response
