"""The beat task ``analytics.rollup``: one pass at a time (Redis lock), committed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis as redis_lib
from sqlalchemy import Engine, text

from campaigns.analytics.models import Watermark
from campaigns.models import Base
from campaigns.settings import get_settings
from workers import tasks
from workers.celery_app import app as celery_app

LOCK = "faro:analytics-rollup"


@pytest.fixture
def worker_env(
    monkeypatch: pytest.MonkeyPatch, pg_url: str, redis_url: str, engine: Engine
) -> Iterator[redis_lib.Redis[bytes]]:
    monkeypatch.setenv("FARO_DATABASE_URL", pg_url)
    monkeypatch.setenv("FARO_REDIS_URL", redis_url)
    get_settings.cache_clear()
    tasks._resources.cache_clear()
    client = redis_lib.Redis.from_url(redis_url)
    client.delete(LOCK)
    yield client
    client.delete(LOCK)
    client.close()
    get_settings.cache_clear()
    tasks._resources.cache_clear()
    # The task commits: leave the shared test database as the other tests expect it.
    with engine.begin() as conn:
        for table in Base.metadata.sorted_tables:
            if table.name.startswith("analytics_"):
                conn.execute(text(f"DELETE FROM {table.name}"))


def test_a_second_rollup_while_one_runs_does_nothing(
    worker_env: redis_lib.Redis[bytes], engine: Engine
) -> None:
    held = worker_env.lock(LOCK, timeout=30)
    assert held.acquire(blocking=False)
    try:
        assert tasks.analytics_rollup.run() == {}  # a second beat's copy: nothing
    finally:
        held.release()
    done = tasks.analytics_rollup.run()
    assert set(done) == {"rows_read", "handovers_closed"}
    assert worker_env.get(LOCK) is None, "the lock is released after the run"
    with engine.connect() as conn:
        sources = set(conn.execute(text(f"SELECT source FROM {Watermark.__tablename__}")).scalars())
    assert "message_status_event" in sources  # the pass committed its marks


def test_beat_runs_the_rollup_every_minute() -> None:
    entry = celery_app.conf.beat_schedule["analytics.rollup"]
    assert entry["task"] == "analytics.rollup" and entry["schedule"] == 60.0
