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

from celery import Celery
from celery.signals import worker_process_init

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
        broker_url=broker_url(settings.redis_url or "redis://127.0.0.1:6379/0"),
        task_default_queue="conversation",
        task_queues=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=4,
        worker_send_task_events=True,
        task_send_sent_event=True,
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
