"""Celery tasks: thin adapters that open a unit of work and call the core.

Every task takes ids, is safe to run twice, and checks the rows' state first (``send_batch``
claims only ``pending`` rows), so a redelivery after a crash does nothing harmful.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from functools import lru_cache
from typing import Any

import redis
from celery import Task

from campaigns.bot_client import AssistantUnavailable, BotClient
from campaigns.crypto import AddressCipher
from campaigns.db import make_engine, make_sessionmaker
from campaigns.messaging import conversation, reaper
from campaigns.messaging.dispatch import send_batch
from campaigns.messaging.ratelimit import RateLimiter
from campaigns.messaging.twilio_gateway import Gateway, SimulatorGateway, TwilioGateway
from campaigns.outreach import engine
from campaigns.settings import get_settings
from workers.celery_app import app


@lru_cache(maxsize=1)
def _resources() -> tuple[Any, RateLimiter | None, AddressCipher]:
    settings = get_settings()
    factory = make_sessionmaker(make_engine(settings.effective_database_url))
    limiter = RateLimiter(redis.Redis.from_url(settings.redis_url)) if settings.redis_url else None
    return factory, limiter, AddressCipher.from_settings(settings)


def _gateway() -> Gateway:
    settings = get_settings()
    if settings.uses_simulator:
        return SimulatorGateway()
    assert settings.twilio_account_sid and settings.twilio_auth_token
    return TwilioGateway(
        account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token.get_secret_value(),
        api_url=settings.twilio_api_url,
    )


async def _send(message_ids: list[int]) -> dict[str, int]:
    factory, limiter, cipher = _resources()
    gateway = _gateway()
    simulator = SimulatorGateway()
    try:
        report = await send_batch(
            factory=factory,
            gateway=gateway,
            simulator=simulator,
            limiter=limiter,
            cipher=cipher,
            public_url=get_settings().public_url,
            message_ids=message_ids,
        )
    finally:
        await gateway.close()
    return {"claimed": report.claimed, "accepted": report.accepted, "retried": report.retried}


@app.task(name="messages.send", acks_late=True)
def send_messages(message_ids: list[int]) -> dict[str, int]:
    """Send pending outbound messages (one or a batch)."""
    return asyncio.run(_send([int(i) for i in message_ids]))


@lru_cache(maxsize=1)
def _bot() -> BotClient:
    return BotClient(get_settings().rasa_url)


@app.task(name="conversation.handle", bind=True, acks_late=True, max_retries=3)
def handle_conversation(self: Task[Any, Any], message_id: int) -> str:
    """Answer one inbound message: the assistant, or an apology after the last retry."""
    factory, _, cipher = _resources()
    try:
        return conversation.handle(factory, message_id=int(message_id), bot=_bot(), cipher=cipher)
    except AssistantUnavailable as exc:
        if self.request.retries >= (self.max_retries or 0):
            conversation.give_up(factory, message_id=int(message_id))
            return "unavailable"
        raise self.retry(exc=exc, countdown=2 ** (self.request.retries + 1)) from exc


@app.task(name="messages.reap", acks_late=True)
def reap() -> dict[str, int]:
    """Re-publish work a lost task left behind (runs every 30 s from beat)."""
    factory, _, _ = _resources()
    return reaper.reap(factory)


@app.task(name="campaigns.tick", acks_late=True)
def campaigns_tick() -> dict[str, int]:
    """Plan and dispatch due campaign runs (every 15 s from beat; one at a time by lock)."""
    settings = get_settings()
    factory, _, _ = _resources()
    if not settings.redis_url:
        return vars(engine.tick(factory, public_url=get_settings().public_url))
    lock = redis.Redis.from_url(settings.redis_url).lock("faro:tick", timeout=60, blocking=False)
    if not lock.acquire():
        return {}
    try:
        return vars(engine.tick(factory, public_url=get_settings().public_url))
    finally:
        with suppress(redis.RedisError):
            lock.release()
