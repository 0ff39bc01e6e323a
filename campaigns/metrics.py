"""Prometheus metrics: what Faro counts as it works, and what it reads at scrape time.

Counted as it works (cheap: one labelled increment or observation):

- ``faro_http_requests_total{method,route,status}`` and
  ``faro_http_request_duration_seconds{route}``: the route is the path *template*
  (``/v1/contacts/{contact_id}``), never the raw path, so no id or number reaches a label;
- ``faro_twilio_request_duration_seconds{outcome}``: each call to Twilio's Messages API;
- ``faro_bot_reply_duration_seconds{outcome}``: each conversation turn asked of Rasa.

Read at scrape time (``StateCollector``; only the API's ``/metrics`` serves these):

- ``faro_queue_depth{queue}``: messages waiting in each Celery queue (Redis ``LLEN``);
- ``faro_queue_unacked``: tasks a worker has taken and not yet acknowledged;
- ``faro_outbound_messages{status,error_code}``: outbound messages created in the last 24
  hours, by current status and Twilio error code (``"none"`` when there is none);
- ``faro_metrics_source_up{source}``: 0 when the database or Redis could not be read.

Processes.  Several uvicorn workers share one ``/metrics``: set ``PROMETHEUS_MULTIPROC_DIR`` to
an empty directory (a tmpfs) before the API starts and prometheus_client adds up every worker's
counters there.  A Celery worker (thread pool: one process) serves its own counters on
``FARO_METRICS_PORT`` instead; each worker container is one scrape target.

- ``faro_rollup_lag_seconds{source}``: seconds since the analytics rollup last took in new
  events from each source table (its watermark's ``seen_at``).
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection, Engine

from campaigns.logging import get_logger

__all__ = ["CONTENT_TYPE_LATEST"]

log = get_logger(__name__)

QUEUES = ("conversation", "bulk")
# Kombu's Redis transport keeps a task sent with a priority in a list of its own:
# "<queue>\x06\x16<priority>" for each priority step but the default one.
_PRIORITY_SEP = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)
OUTBOUND_WINDOW = dt.timedelta(hours=24)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_REMOTE_BUCKETS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 15.0)

HTTP_REQUESTS = Counter(
    "faro_http_requests",
    "HTTP requests by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "faro_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template.",
    ["route"],
    buckets=_LATENCY_BUCKETS,
)
TWILIO_DURATION = Histogram(
    "faro_twilio_request_duration_seconds",
    "Calls to Twilio's Messages API. outcome: ok, rejected (Twilio answered an error), "
    "failed (timeout or connection error).",
    ["outcome"],
    buckets=_REMOTE_BUCKETS,
)
BOT_DURATION = Histogram(
    "faro_bot_reply_duration_seconds",
    "Conversation turns asked of the assistant (Rasa). outcome: ok, rejected (an HTTP error "
    "status), failed (unreachable or timed out).",
    ["outcome"],
    buckets=_REMOTE_BUCKETS,
)


@contextmanager
def timed(histogram: Histogram) -> Iterator[None]:
    """Observe the block's duration with an ``outcome`` label: ``ok`` if it returns, ``rejected``
    if it raises an error that carries an HTTP status (the other side answered no), else
    ``failed``."""
    start = time.perf_counter()
    outcome = "failed"
    try:
        yield
        outcome = "ok"
    except BaseException:
        if isinstance(getattr(sys.exc_info()[1], "status", None), int):
            outcome = "rejected"
        raise
    finally:
        histogram.labels(outcome).observe(time.perf_counter() - start)


# The labelled children, looked up once: ``labels()`` costs more than the increment itself, and
# this runs on every webhook.  Bounded: routes are templates, methods and statuses few.
_request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    key = (method, route, status)
    children = _request_children.get(key)
    if children is None:
        children = (HTTP_REQUESTS.labels(method, route, str(status)), HTTP_DURATION.labels(route))
        _request_children[key] = children
    children[0].inc()
    children[1].observe(seconds)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class StateCollector(Collector):
    """Reads queue depths from Redis, and outbound counts and rollup lag from the database, at
    each scrape.

    The database query reads one day of ``message`` rows through the ``created_at`` index; its
    result is kept ``cache_seconds`` so that several scrapers cost one query.
    """

    def __init__(
        self,
        *,
        engine: Engine | None,
        redis: Any | None,
        cache_seconds: float = 15.0,
        clock: Any = time.monotonic,
    ) -> None:
        self._engine = engine
        self._redis = redis
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._database: tuple[float, DatabaseState] | None = None

    def collect(self) -> Iterable[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "faro_metrics_source_up",
            "1 if the source could be read at this scrape",
            labels=["source"],
        )
        if self._redis is not None:
            ok = True
            try:
                yield from self._queues()
            except Exception as exc:  # a scrape never fails because Redis is down
                log.warning("metrics.source_failed", source="redis", error=type(exc).__name__)
                ok = False
            up.add_metric(["redis"], 1 if ok else 0)
        if self._engine is not None:
            try:
                rows = self._database_rows()
            except Exception as exc:
                log.warning("metrics.source_failed", source="database", error=type(exc).__name__)
                up.add_metric(["database"], 0)
            else:
                up.add_metric(["database"], 1)
                family = GaugeMetricFamily(
                    "faro_outbound_messages",
                    "Outbound messages created in the last 24 hours, by current status and "
                    "Twilio error code",
                    labels=["status", "error_code"],
                )
                for status, code, count in rows.outbound:
                    family.add_metric([status, code], count)
                yield family
                lag = GaugeMetricFamily(
                    "faro_rollup_lag_seconds",
                    "Seconds since the analytics rollup last took in new events from a source "
                    "table (one pass every period; more means the dashboard is behind)",
                    labels=["source"],
                )
                for source, seconds in rows.rollup_lag:
                    lag.add_metric([source], seconds)
                yield lag
        yield up

    def _queues(self) -> Iterator[GaugeMetricFamily]:
        assert self._redis is not None
        pipe = self._redis.pipeline(transaction=False)
        for queue in QUEUES:
            pipe.llen(queue)
            for step in _PRIORITY_STEPS:
                pipe.llen(f"{queue}{_PRIORITY_SEP}{step}")
        pipe.hlen("unacked")
        counts = pipe.execute()
        depth = GaugeMetricFamily(
            "faro_queue_depth", "Tasks waiting in a Celery queue", labels=["queue"]
        )
        per_queue = 1 + len(_PRIORITY_STEPS)
        for n, queue in enumerate(QUEUES):
            depth.add_metric([queue], sum(counts[n * per_queue : (n + 1) * per_queue]))
        yield depth
        yield GaugeMetricFamily(
            "faro_queue_unacked",
            "Tasks taken by a worker and not yet acknowledged (all queues)",
            value=counts[-1],
        )

    def _database_rows(self) -> DatabaseState:
        with self._lock:
            now = self._clock()
            if self._database is not None and now - self._database[0] < self._cache_seconds:
                return self._database[1]
            assert self._engine is not None
            with self._engine.connect() as conn:
                state = DatabaseState(outbound=outbound_counts(conn), rollup_lag=rollup_lag(conn))
            self._database = (now, state)
            return state


@dataclass(frozen=True)
class DatabaseState:
    outbound: list[tuple[str, str, int]]
    rollup_lag: list[tuple[str, float]]


def outbound_counts(
    conn: Connection, *, now: dt.datetime | None = None
) -> list[tuple[str, str, int]]:
    """(status, error code or ``"none"``, count) of outbound messages created in the window."""
    from campaigns.db import utcnow
    from campaigns.messaging.models import Direction, Message

    since = (now or utcnow()) - OUTBOUND_WINDOW
    if conn.dialect.name == "postgresql":
        # A slow scrape must not hold a connection the webhooks need (LOCAL: it ends with
        # this read-only transaction).
        conn.execute(text("SET LOCAL statement_timeout = 5000"))
    result = conn.execute(
        select(Message.status, Message.error_code, func.count())
        .where(Message.direction == Direction.outbound, Message.created_at >= since)
        .group_by(Message.status, Message.error_code)
    ).all()
    return [
        (str(getattr(status, "value", status)), str(code) if code else "none", int(count))
        for status, code, count in result
    ]


def rollup_lag(conn: Connection, *, now: dt.datetime | None = None) -> list[tuple[str, float]]:
    """(source table, seconds since the rollup last looked at it) from the analytics watermarks."""
    from campaigns.analytics.models import Watermark
    from campaigns.db import utcnow

    now = now or utcnow()
    marks = conn.execute(select(Watermark.source, Watermark.seen_at)).all()
    return [
        (str(source), max(0.0, (now - _aware(seen_at)).total_seconds()))
        for source, seen_at in marks
        if seen_at is not None
    ]


def _aware(moment: dt.datetime) -> dt.datetime:
    # SQLite returns naive datetimes; Faro stores UTC everywhere.
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def exposition(state: StateCollector | None = None) -> bytes:
    """The text a scrape gets: this process's (or, in multiprocess mode, every API worker's)
    counters, then the state read now."""
    if multiprocess_dir():
        counters = CollectorRegistry()
        multiprocess.MultiProcessCollector(counters)  # type: ignore[no-untyped-call]
        body = generate_latest(counters)
    else:
        body = generate_latest(REGISTRY)
    if state is not None:
        registry = CollectorRegistry()
        registry.register(state)
        body += generate_latest(registry)
    return body


def serve(port: int) -> None:
    """A worker's own metrics on ``port`` (a background thread; the worker serves no HTTP)."""
    from prometheus_client import start_http_server

    start_http_server(port)
    log.info("metrics.served", port=port)
