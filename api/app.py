"""The FastAPI application: ``create_app(settings)``."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from starlette.requests import Request

from api import errors
from api.middleware import RequestContextMiddleware
from api.routes import (
    analytics,
    assistant,
    audit,
    campaigns,
    communities,
    contacts,
    dashboard,
    health,
    knowledge,
    links,
    messages,
    metrics,
    organizations,
    senders,
    simulator,
    tokens,
    users,
    webhooks,
)
from campaigns.crypto import AddressCipher
from campaigns.db import make_engine, make_sessionmaker
from campaigns.logging import configure_logging, get_logger
from campaigns.outbox import install_publisher
from campaigns.settings import Settings, get_settings

log = get_logger(__name__)


def create_app(settings: Settings | None = None, *, engine: Any = None) -> FastAPI:
    settings = settings or get_settings()
    settings.check_production()
    configure_logging(settings)
    owns_engine = engine is None
    engine = engine or make_engine(settings.effective_database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info("api.started", embedded=settings.is_embedded, simulator=settings.uses_simulator)
        # What start-up built (modules, routes, compiled statements) lives as long as the process:
        # moved out of the collector's sight, so its full collections stop walking it.  (The
        # webhooks' latency spikes turned out to be stale query plans: docs/benchmarks.md.)
        gc.collect()
        gc.freeze()
        yield
        if app.state.redis is not None:
            app.state.redis.close()
        if owns_engine:
            engine.dispose()

    app = FastAPI(
        title="Faro API",
        version="1",
        summary="Trustworthy information on safe, regular migration, over WhatsApp and SMS.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    webhooks.install_state(
        app.state,
        session_factory=app.state.sessionmaker,
        cipher=AddressCipher.from_settings(settings),
    )
    app.state.redis = redis.Redis.from_url(settings.redis_url) if settings.redis_url else None
    if settings.redis_url:
        # Tasks asked for during a request are published to Celery after the commit.
        from workers.celery_app import celery_publisher, make_celery

        install_publisher(celery_publisher(make_celery(settings)))

    errors.install(app)

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> JSONResponse:
        # Two requests racing for the same unique value: the loser gets a clear 409.
        return errors.error_response(
            request, 409, "conflict", "conflicts with an existing object (a unique value is taken)"
        )

    @app.exception_handler(OperationalError)
    async def _unavailable(request: Request, exc: OperationalError) -> JSONResponse:
        # The database is unreachable (restarting, failing over): nothing was stored; try again.
        log.warning("request.database_unavailable", error_type=type(exc).__name__)
        return errors.error_response(
            request, 503, "unavailable", "the database is unavailable; retry shortly"
        )

    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError) -> JSONResponse:
        # e.g. a NUL character, which PostgreSQL cannot store in text, or a number out of range.
        return errors.error_response(
            request,
            422,
            "invalid_input",
            "a value cannot be stored (NUL character or out of range)",
        )

    # Twilio's webhooks first: the router tries routes in order, and they are the hot path
    # (hundreds a second); matching them past every /v1 route cost a quarter of their CPU.
    app.include_router(webhooks.router)
    app.include_router(assistant.internal)
    for module in (
        assistant,
        health,
        metrics,
        organizations,
        users,
        tokens,
        communities,
        contacts,
        campaigns,
        knowledge,
        senders,
        messages,
        audit,
        simulator,
        links,
        analytics,
    ):
        app.include_router(module.router)
    app.include_router(dashboard.router)
    app.mount("/static", dashboard.static_files(), name="static")

    app.add_middleware(
        RequestContextMiddleware,
        limits=[
            ("/v1/contacts/import", settings.max_import_bytes),
            ("/webhooks/", settings.max_webhook_bytes),
        ],
        default_limit=settings.max_json_bytes,
    )
    return app
