"""One error body for every 4xx and 5xx::

{"error": {"code": "invalid_input", "message": "...", "field": "phone", "details": ...},
 "request_id": "..."}
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from campaigns.errors import (
    AuthenticationFailed,
    Conflict,
    FaroError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    TooLarge,
)
from campaigns.logging import get_logger

log = get_logger(__name__)

_STATUS: list[tuple[type[FaroError], int]] = [
    (TooLarge, 413),
    (InvalidInput, 422),
    (NotFound, 404),
    (Conflict, 409),
    (PermissionDenied, 403),
    (AuthenticationFailed, 401),
]

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "too_many_requests",
}


def error_body(
    request: Request,
    code: str,
    message: str,
    *,
    field: str | None = None,
    details: Any = None,
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    if details is not None:
        error["details"] = details
    return {"error": error, "request_id": getattr(request.state, "request_id", None)}


def error_response(
    request: Request, status: int, code: str, message: str, **kw: Any
) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(
        error_body(request, code, message, **kw), status_code=status, headers=headers
    )


def _status_for(exc: FaroError) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 400


def _field_of(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(FaroError)
    async def _domain(request: Request, exc: FaroError) -> JSONResponse:
        return error_response(
            request, _status_for(exc), exc.code, exc.message, field=exc.field, details=exc.details
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for e in exc.errors():
            if e.get("type") == "json_invalid":
                problems.append({"field": "body", "message": "malformed JSON"})
            else:
                problems.append(
                    {"field": _field_of(e.get("loc", ())), "message": e.get("msg", "invalid")}
                )
        first = problems[0] if problems else {"field": "body", "message": "invalid"}
        return error_response(
            request,
            422,
            "invalid_input",
            f"{first['field']}: {first['message']}",
            field=first["field"],
            details=problems,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        return error_response(request, exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request.failed", error_type=type(exc).__name__)
        return error_response(request, 500, "internal_error", "an unexpected error occurred")
