"""Tasks published only after the transaction that asked for them commits.

Services call ``publish_after_commit(session, "messages.send", [ids], queue="conversation")``.
Nothing is sent to the broker until the session commits; a rollback drops the list.  If the
broker is unreachable at that moment the work is not lost: the rows it refers to are in the
database in a state the reaper (``messages.reap``) re-publishes.  "The database is the truth,
the queue is a nudge."

The publisher is installed once per process (the API and the workers use Celery's
``send_task``); a process with none installed, such as a one-off CLI command, leaves the work to
the reaper.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from campaigns.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class Job:
    task: str
    args: tuple[Any, ...] = ()
    queue: str = "conversation"
    countdown: float | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)


Publisher = Callable[[Job], None]
_publisher: Publisher | None = None


def install_publisher(publisher: Publisher | None) -> None:
    global _publisher
    _publisher = publisher


def publish_after_commit(
    session: Session,
    task: str,
    *args: Any,
    queue: str = "conversation",
    countdown: float | None = None,
) -> None:
    session.info.setdefault("outbox", []).append(
        Job(task=task, args=args, queue=queue, countdown=countdown)
    )


def publish_now(job: Job) -> bool:
    """Hand one job to the broker; False (logged) if there is no broker or it refused."""
    if _publisher is None:
        return False
    try:
        _publisher(job)
    except Exception as exc:
        log.warning("outbox.publish_failed", task=job.task, error_type=type(exc).__name__)
        return False
    return True


@event.listens_for(Session, "after_commit")
def _publish(session: Session) -> None:
    # SQLAlchemy fires this on a SAVEPOINT's release too: wait for the real commit, or a fast
    # worker would look for rows that are not visible yet.
    if session.in_nested_transaction():
        return
    for job in session.info.pop("outbox", []):
        publish_now(job)


@event.listens_for(Session, "after_soft_rollback")
def _forget(session: Session, previous_transaction: Any) -> None:
    session.info.pop("outbox", None)
