"""The Celery application: two queues, late acks, publish-after-commit wiring.

Queues: ``conversation`` (replies to people who wrote; small and latency-sensitive) and ``bulk``
(campaign sends).  Run separate workers for each so a 50,000-message campaign never delays a
reply::

    celery -A workers.celery_app worker -Q conversation --pool threads -c 16
    celery -A workers.celery_app worker -Q bulk --pool threads -c 8
    celery -A workers.celery_app beat
"""

from __future__ import annotations

from typing import Any

import structlog
from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_init, worker_process_init

from campaigns.logging import configure_logging
from campaigns.outbox import Job, install_publisher
from campaigns.settings import Settings, get_settings


def broker_url(redis_url: str) -> str:
    """Celery's spelling of a Redis URL (unix sockets are ``redis+socket://``)."""
    if redis_url.startswith("unix://"):
        return "redis+socket://" + redis_url[len("unix://") :]
    return redis_url


def make_celery(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    app = Celery("faro", include=["workers.tasks"])
    app.conf.update(
        broker_url=settings.broker_url
        or broker_url(settings.redis_url or "redis://127.0.0.1:6379/0"),
        task_default_queue="conversation",
        task_queues=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=4,
        # Task events (Flower, `celery events`) and beat's answer to `celery inspect ping`
        # (docker-compose.yml's health check of beat: it stops answering when it stops ticking).
        worker_send_task_events=True,
        # No "task-sent" event from the publishers: Celery sends it through one dispatcher
        # behind one lock per process, so the API's threads queued behind it (and behind the
        # broker connections it held) — inbound webhooks fell from ~150 to ~45 answered/s.
        # Flower still sees every task from the workers' events (received, started, ...).
        task_send_sent_event=False,
        beat_enable_remote_control=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": 3600},
        worker_hijack_root_logger=False,
        beat_schedule={
            "messages.reap": {
                "task": "messages.reap",
                "schedule": 30.0,
                "options": {"queue": "conversation"},
            },
            # On the conversation queue: behind a campaign's thousands of bulk sends a tick
            # would wait minutes; it is short, and a late one expires instead of piling up.
            "campaigns.tick": {
                "task": "campaigns.tick",
                "schedule": 15.0,
                "options": {"queue": "conversation", "expires": 15},
            },
            # Bulk queue: a long first pass must not hold up replies; a late one expires.
            "analytics.rollup": {
                "task": "analytics.rollup",
                "schedule": 60.0,
                "options": {"queue": "bulk", "expires": 60},
            },
            # Daily; idempotent, so a second beat or a late run is harmless.
            "retention.purge": {
                "task": "retention.purge",
                "schedule": 24 * 3600.0,
                "options": {"queue": "bulk", "expires": 12 * 3600},
            },
        },
        timezone="UTC",
    )
    return app


def celery_publisher(app: Celery) -> Any:
    def publish(job: Job) -> None:
        app.send_task(
            job.task,
            args=list(job.args),
            kwargs=job.kwargs,
            queue=job.queue,
            countdown=job.countdown,
        )

    return publish


app = make_celery()
install_publisher(celery_publisher(app))


@worker_process_init.connect
def _init_worker(**_: Any) -> None:
    configure_logging(get_settings())


@worker_init.connect
def _serve_metrics(**_: Any) -> None:
    # A worker serves no HTTP: with FARO_METRICS_PORT set it exposes its own counters (Twilio and
    # assistant latency) for Prometheus to scrape, one target per worker (see docs/deploy.md).
    port = get_settings().metrics_port
    if port:
        from campaigns.metrics import serve

        serve(port)


@task_prerun.connect
def _bind_task(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    # Each pool thread runs in its own context: every log line of the task carries its id.
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(task_id=task_id, task=getattr(task, "name", None))


@task_postrun.connect
def _unbind_task(**_: Any) -> None:
    structlog.contextvars.clear_contextvars()
