"""Workers: every log line of a task carries its id, and the periodic tasks run one at a time,
so a second beat (or an overlapping run) does nothing twice."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator

import pytest
import redis as redis_lib
from celery.signals import task_postrun, task_prerun

from campaigns.logging import configure_logging, get_logger
from campaigns.settings import Settings, get_settings
from workers import tasks
from workers.celery_app import make_celery


def test_task_logs_carry_the_task_id(settings: Settings) -> None:
    buffer = io.StringIO()
    configure_logging(settings, stream=buffer)
    log = get_logger("test.worker")
    task = tasks.reap
    # Celery sends these around every task it runs, in the thread that runs it.
    task_prerun.send(sender=task, task_id="c0ffee-1", task=task, args=(), kwargs={})
    log.info("reaper.finished")
    task_postrun.send(sender=task, task_id="c0ffee-1", task=task, args=(), kwargs={}, retval={})
    log.info("worker.idle")
    lines = [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]
    during = next(line for line in lines if line["event"] == "reaper.finished")
    after = next(line for line in lines if line["event"] == "worker.idle")
    assert during["task_id"] == "c0ffee-1" and during["task"] == "messages.reap"
    assert "task_id" not in after


@pytest.fixture
def worker_settings(
    monkeypatch: pytest.MonkeyPatch, pg_url: str, redis_url: str
) -> Iterator[redis_lib.Redis[bytes]]:
    monkeypatch.setenv("FARO_DATABASE_URL", pg_url)
    monkeypatch.setenv("FARO_REDIS_URL", redis_url)
    get_settings.cache_clear()
    tasks._resources.cache_clear()
    client = redis_lib.Redis.from_url(redis_url)
    client.delete("faro:reap", "faro:tick")
    yield client
    client.delete("faro:reap", "faro:tick")
    client.close()
    get_settings.cache_clear()
    tasks._resources.cache_clear()


def test_a_second_reap_while_one_runs_does_nothing(worker_settings: redis_lib.Redis[bytes]) -> None:
    held = worker_settings.lock("faro:reap", timeout=30)
    assert held.acquire(blocking=False)
    try:
        assert tasks.reap.run() == {}  # what a second beat's copy does: nothing
    finally:
        held.release()
    done = tasks.reap.run()
    assert set(done) >= {"pending", "submitting", "inbound"}, done
    assert worker_settings.get("faro:reap") is None, "the lock is released after the run"


def test_a_second_tick_while_one_runs_does_nothing(worker_settings: redis_lib.Redis[bytes]) -> None:
    held = worker_settings.lock("faro:tick", timeout=30)
    assert held.acquire(blocking=False)
    try:
        assert tasks.campaigns_tick.run() == {}
    finally:
        held.release()
    assert tasks.campaigns_tick.run() != {}


def test_rabbitmq_can_be_the_broker_while_redis_keeps_the_locks() -> None:
    redis_url = "redis://127.0.0.1:6379/15"
    rabbit = make_celery(
        Settings(env="test", redis_url=redis_url, broker_url="amqp://faro:pw@rabbitmq:5672//")
    )
    connection = rabbit.connection_for_write()
    try:
        # kombu's py-amqp transport: installed, and chosen for amqp:// (nothing is connected).
        assert connection.transport_cls == "amqp"
        assert connection.transport.driver_type == "amqp"
        assert connection.hostname == "rabbitmq"
    finally:
        connection.release()
    default = make_celery(Settings(env="test", redis_url=redis_url))
    assert default.conf.broker_url == redis_url


def test_a_failed_tasks_async_work_never_resumes_in_a_later_task() -> None:
    """Each worker thread keeps one event loop from task to task.  A send task that fails while
    its other sends wait must take them down with it: left pending, they would wake inside the
    next task and send what the reaper had already handed to another worker (the duplicates
    the fault test caught)."""
    sent: list[str] = []

    async def failing(gateway: object) -> None:
        async def waiting_send() -> None:
            await asyncio.sleep(0.05)
            sent.append("a message the failed task had claimed")

        asyncio.get_running_loop().create_task(waiting_send())
        await asyncio.sleep(0)
        raise ConnectionError("Redis went away")

    with pytest.raises(ConnectionError):
        tasks._AsyncSide.run(failing)
    tasks._AsyncSide.run(lambda gateway: asyncio.sleep(0.2))  # the thread's next task
    assert sent == []
    # The loop itself is kept, with its gateway: the next task still runs on it.
    assert tasks._AsyncSide.run(lambda gateway: asyncio.sleep(0, "ok")) == "ok"
