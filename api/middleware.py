"""ASGI middleware: request ids, body size limits, and one privacy-safe log line per request."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import structlog
from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from campaigns.logging import get_logger
from campaigns.metrics import observe_request

log = get_logger("faro.http")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes its limit; FastAPI re-raises it as is."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"request body is larger than {limit} bytes")


def _send_json(status: int, body: dict[str, Any]) -> list[Message]:
    payload = json.dumps(body).encode()
    return [
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        },
        {"type": "http.response.body", "body": payload},
    ]


class RequestContextMiddleware:
    """Binds a request id (``X-Request-ID`` in and out) and enforces body size limits.

    ``limits`` maps a path prefix to a byte limit; the first match wins.  A request whose
    ``Content-Length`` or streamed body goes over the limit gets a 413 before any handler runs
    (or, for a streamed body, before the handler sees the excess).
    """

    def __init__(self, app: ASGIApp, *, limits: list[tuple[str, int]], default_limit: int) -> None:
        self.app = app
        self.limits = limits
        self.default_limit = default_limit

    def _limit_for(self, path: str) -> int:
        for prefix, limit in self.limits:
            if path.startswith(prefix):
                return limit
        return self.default_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        start = time.perf_counter()
        status_holder = {"status": 500}
        path = scope.get("path", "")
        limit = self._limit_for(path)

        def too_large_body() -> dict[str, Any]:
            return {
                "error": {
                    "code": "too_large",
                    "message": f"request body is larger than {limit} bytes",
                    "field": "body",
                },
                "request_id": request_id,
            }

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                too_big = True
            if too_big:
                for m in _send_json(413, too_large_body()):
                    await send_wrapper(m)
                self._log(scope, 413, start)
                return

        received = 0

        async def receive_wrapper() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        except BodyTooLarge:
            for m in _send_json(413, too_large_body()):
                await send_wrapper(m)
        finally:
            self._log(scope, status_holder["status"], start)

    def _log(self, scope: Scope, status: int, start: float) -> None:
        route = scope.get("route")
        # The route's path template, never the raw path: no id or number reaches a metric label.
        template = getattr(route, "path", None) or "unmatched"
        seconds = time.perf_counter() - start
        method = scope.get("method") or ""
        observe_request(method if method in _METHODS else "other", template, status, seconds)
        log.info(
            "request.completed",
            method=method,
            route=template,
            status=status,
            duration_ms=round(seconds * 1000, 2),
        )
