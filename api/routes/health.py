from __future__ import annotations

from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

router = APIRouter(tags=["health"])

# What /readyz asks of the assistant; docker-compose.yml's health checks ask the same.
RASA_HEALTH_PATH = "/"
ACTIONS_HEALTH_PATH = "/health"


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    """Each dependency checked on its own, so an operator sees which one is down."""
    checks: dict[str, Any] = {}
    try:
        with request.app.state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    redis = getattr(request.app.state, "redis", None)
    if redis is None:
        checks["redis"] = "not configured"
    else:
        try:
            redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"error: {type(exc).__name__}"
    settings = request.app.state.settings
    for name, url in (
        ("rasa", settings.rasa_url + RASA_HEALTH_PATH),
        ("actions", settings.action_server_url + ACTIONS_HEALTH_PATH),
    ):
        try:
            response = httpx.get(url, timeout=1.0)
            checks[name] = (
                "ok" if response.status_code == 200 else f"error: HTTP {response.status_code}"
            )
        except httpx.HTTPError as exc:
            checks[name] = f"error: {type(exc).__name__}"
    # The assistant being down degrades answers (people get an apology) but loses nothing:
    # readiness, which routes webhooks to this process, depends on the database and Redis.
    ok = all(checks[k] in ("ok", "not configured") for k in ("database", "redis"))
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503
    )
