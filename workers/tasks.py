"""Celery tasks: thin adapters that open a unit of work and call the core.

Every task takes ids, is safe to run twice, and checks the rows' state first (``send_batch``
claims only ``pending`` rows), so a redelivery after a crash does nothing harmful.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import os
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from contextlib import suppress
from functools import lru_cache
from typing import Any, TypeVar

import redis
from celery import Task
from sqlalchemy.exc import InterfaceError, OperationalError

from campaigns.bot_client import AssistantUnavailable, BotClient
from campaigns.crypto import AddressCipher
from campaigns.db import make_engine, make_sessionmaker, utcnow
from campaigns.logging import get_logger
from campaigns.messaging import conversation, reaper
from campaigns.messaging.dispatch import CONCURRENCY, find_accepted, send_batch
from campaigns.messaging.ratelimit import RateLimiter
from campaigns.messaging.twilio_gateway import (
    Gateway,
    SimulatorGateway,
    SubmitResult,
    TwilioGateway,
)
from campaigns.outreach import engine
from campaigns.settings import get_settings
from workers.celery_app import app

log = get_logger(__name__)

_T = TypeVar("_T")


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
        max_connections=CONCURRENCY,
    )


class _AsyncSide:
    """One event loop and one gateway per worker thread, kept from task to task.

    A task that built its own (``asyncio.run`` and a new gateway each time) opened a new HTTPS
    connection to Twilio for nearly every call: connection set-up was 18% of a send's time in
    the profile, and every batch started cold.  Kept here, the gateway's connection pool stays
    warm for the life of the thread.  Worker pool threads are long-lived and run one task at a
    time, so each has its own loop; a forked child (``os.getpid()`` changed) builds its own.
    """

    _local = threading.local()

    @classmethod
    def get(cls) -> tuple[asyncio.Runner, Gateway]:
        settings = get_settings()
        token = settings.twilio_auth_token
        key = (
            os.getpid(),
            settings.uses_simulator,
            settings.twilio_account_sid,
            token.get_secret_value() if token else None,  # a rotated token takes effect
            settings.twilio_api_url,
        )
        state = getattr(cls._local, "state", None)
        if state is None or state[0] != key:
            if state is not None and state[0][0] == key[0]:  # settings changed: start afresh
                with suppress(Exception):
                    state[1].run(state[2].close())
                state[1].close()
            runner = asyncio.Runner()

            async def build() -> Gateway:
                return _gateway()  # aiohttp wants its session made inside the loop it runs on

            state = (key, runner, runner.run(build()))
            cls._local.state = state
        return state[1], state[2]

    @classmethod
    def run(cls, work: Callable[[Gateway], Coroutine[Any, Any, _T]]) -> _T:
        """Run ``work`` on this thread's loop; nothing it started outlives it.

        ``Runner.run`` leaves the coroutine's other tasks pending when it raises, and they
        would resume inside a later task: a send the reaper had meanwhile handed to another
        worker would then go out twice.  They are cancelled here, before the task ends.
        """
        runner, gateway = cls.get()
        try:
            return runner.run(work(gateway))
        finally:
            loop = runner.get_loop()
            left = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in left:
                task.cancel()
            if left:
                loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))


async def _send(gateway: Gateway, message_ids: list[int]) -> dict[str, int]:
    factory, limiter, cipher = _resources()
    report = await send_batch(
        factory=factory,
        gateway=gateway,
        simulator=SimulatorGateway(),
        limiter=limiter,
        cipher=cipher,
        public_url=get_settings().public_url,
        message_ids=message_ids,
        rate_while_chatting=get_settings().campaign_rate_while_chatting,
    )
    return {"claimed": report.claimed, "accepted": report.accepted, "retried": report.retried}


@app.task(name="messages.send", acks_late=True)
def send_messages(message_ids: list[int]) -> dict[str, int]:
    """Send pending outbound messages (one or a batch)."""
    ids = [int(i) for i in message_ids]
    return _AsyncSide.run(lambda gateway: _send(gateway, ids))


@lru_cache(maxsize=1)
def _bot() -> BotClient:
    return BotClient(get_settings().rasa_url)


# A database that went away mid-turn (a restart, a failover) is tried again after 1, 2, 4, 8,
# 10 and 10 s (35 s in all) before the reaper's two-minute lease is the last resort.
DATABASE_RETRIES = 6


@app.task(name="conversation.handle", bind=True, acks_late=True, max_retries=3)
def handle_conversation(self: Task[Any, Any], message_id: int, lease: str | None = None) -> str:
    """Answer one inbound message: the assistant, or an apology after the last retry.

    ``lease`` is set by this task's own retry after a database error (see
    ``conversation.handle``).
    """
    factory, limiter, cipher = _resources()
    if limiter is not None:  # campaigns yield the machines while someone waits for an answer
        with suppress(redis.RedisError):
            limiter.mark_chatting()
    now = utcnow()
    try:
        return conversation.handle(
            factory,
            message_id=int(message_id),
            bot=_bot(),
            cipher=cipher,
            now=now,
            lease=_lease_time(lease),
        )
    except AssistantUnavailable as exc:
        if self.request.retries >= (self.max_retries or 0):
            conversation.give_up(factory, message_id=int(message_id))
            return "unavailable"
        raise self.retry(exc=exc, countdown=2 ** (self.request.retries + 1)) from exc
    except (OperationalError, InterfaceError) as exc:
        if self.request.retries >= DATABASE_RETRIES:
            raise  # the reaper re-publishes it once its lease is over
        log.warning("conversation.database_unavailable", message_id=message_id)
        raise self.retry(
            exc=exc,
            args=(message_id,),
            kwargs={"lease": now.isoformat()},
            countdown=min(10, 2**self.request.retries),
            max_retries=DATABASE_RETRIES,
        ) from exc


def _lease_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:  # not one this task wrote: no lease to take over
        return None


def _one_at_a_time(name: str, work: Callable[[], dict[str, int]]) -> dict[str, int]:
    """Run periodic work under a Redis lock: a copy from a second beat, or one that overlaps a
    slow run, finds the lock taken and does nothing (the lock expires if its holder dies)."""
    settings = get_settings()
    if not settings.redis_url:
        return work()
    lock = redis.Redis.from_url(settings.redis_url).lock(f"faro:{name}", timeout=60, blocking=False)
    if not lock.acquire():
        return {}
    try:
        return work()
    finally:
        with suppress(redis.RedisError):
            lock.release()


@app.task(name="messages.reap", acks_late=True)
def reap() -> dict[str, int]:
    """Re-publish work a lost task left behind (every 30 s from beat; one at a time by lock)."""
    factory, _, cipher = _resources()

    def reconcile(message_ids: Sequence[int]) -> Mapping[int, SubmitResult | None]:
        # Before resending a message a dead worker left without Twilio's SID, ask Twilio.
        return _AsyncSide.run(
            lambda gateway: find_accepted(
                factory=factory, gateway=gateway, cipher=cipher, message_ids=message_ids
            )
        )

    return _one_at_a_time("reap", lambda: reaper.reap(factory, reconcile=reconcile))


@app.task(name="campaigns.tick", acks_late=True)
def campaigns_tick() -> dict[str, int]:
    """Plan and dispatch due campaign runs (every 15 s from beat; one at a time by lock)."""
    factory, _, _ = _resources()
    public_url = get_settings().public_url
    return _one_at_a_time("tick", lambda: vars(engine.tick(factory, public_url=public_url)))


@app.task(name="retention.purge", acks_late=True)
def retention_purge() -> dict[str, int | str]:
    """Purge message bodies and conversation text past FARO_RETENTION_DAYS (daily from beat)."""
    from campaigns.retention import purge

    settings = get_settings()
    factory, _, _ = _resources()
    tracker = settings.rasa_tracker_db_url
    return purge(
        factory,
        retention_days=settings.retention_days,
        tracker_db_url=tracker.get_secret_value() if tracker else None,
    ).as_dict()


@app.task(name="retention.forget_sender", acks_late=True)
def retention_forget_sender(organization_id: int, contact_id: int) -> int:
    """Erasure: delete the contact's events from Rasa's tracker store (if configured)."""
    from campaigns.retention import forget_tracker_sender, tracker_sender_id

    settings = get_settings()
    tracker = settings.rasa_tracker_db_url
    if tracker is None:
        return 0
    _, _, cipher = _resources()
    sender_id = tracker_sender_id(
        cipher, organization_id=int(organization_id), contact_id=int(contact_id)
    )
    return forget_tracker_sender(tracker.get_secret_value(), sender_id=sender_id)


@app.task(name="analytics.rollup", acks_late=True)
def analytics_rollup() -> dict[str, int]:
    """Roll new events up into the analytics tables (every 60 s from beat; one at a time by
    lock, and by a PostgreSQL advisory lock inside the pass should a pass outlive the lock)."""
    from campaigns.analytics.rollup import run_rollup
    from campaigns.db import unit_of_work

    factory, _, _ = _resources()

    def work() -> dict[str, int]:
        with unit_of_work(factory) as session:
            report = run_rollup(session)
        return {"rows_read": report.rows_read, "handovers_closed": report.handovers_closed}

    return _one_at_a_time("analytics-rollup", work)


if os.environ.get("FARO_BENCH_TASKS") == "1":
    # bench/campaign_dispatch.py measures Celery's ceiling with a no-op task (``bench.noop``).
    importlib.import_module("bench.celery_noop")
