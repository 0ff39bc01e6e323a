"""``GET /metrics``: Prometheus text format, behind a bearer token.

Counts and queue depths tell an outsider how busy a migration service is and when, so the
endpoint is never public in production: with ``FARO_METRICS_TOKEN`` set, Prometheus must send
``Authorization: Bearer <token>``; without it, production answers 404 and development serves the
metrics to anyone (the API listens on 127.0.0.1 there).
"""

from __future__ import annotations

import hmac
from typing import Annotated

import redis as redis_lib
from fastapi import APIRouter, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from api.errors import error_response
from campaigns import metrics
from campaigns.settings import Settings

router = APIRouter(tags=["health"])


def _state(request: Request) -> metrics.StateCollector:
    state: metrics.StateCollector | None = getattr(request.app.state, "metrics_state", None)
    if state is None:
        settings: Settings = request.app.state.settings
        broker = getattr(request.app.state, "redis", None)
        if settings.broker_url:
            # Queue depths are read from a Redis broker only; RabbitMQ has its own exporter.
            redis_broker = settings.broker_url.startswith(("redis://", "rediss://"))
            broker = redis_lib.Redis.from_url(settings.broker_url) if redis_broker else None
        state = metrics.StateCollector(engine=request.app.state.engine, redis=broker)
        request.app.state.metrics_state = state
    return state


@router.get("/metrics", include_in_schema=False, response_model=None)
async def prometheus_metrics(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Response:
    settings: Settings = request.app.state.settings
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    if token is None and settings.env == "production":
        return error_response(
            request, 404, "not_found", "metrics are off: set FARO_METRICS_TOKEN to serve them"
        )
    if token is not None:
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            return error_response(
                request, 401, "unauthenticated", "send Authorization: Bearer <FARO_METRICS_TOKEN>"
            )
    # The database and Redis reads block: off the event loop that answers the webhooks.
    body = await run_in_threadpool(metrics.exposition, _state(request))
    return Response(body, media_type=metrics.CONTENT_TYPE_LATEST)
