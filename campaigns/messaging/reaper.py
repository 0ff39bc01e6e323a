"""The reaper: re-publishes work that a lost task or an unreachable broker left behind.

Runs every 30 s from beat; every step is idempotent, so two reapers are harmless.

- outbound ``pending`` untouched for longer than the longest backoff → ``messages.send``;
- outbound ``submitting`` without a Twilio SID for 10 minutes: the worker died around the call.
  Twilio's status callbacks carry Faro's message id, so a message Twilio accepted has almost
  surely been reconciled by then; the rest go back to ``pending`` and are sent again (the one
  case that could duplicate: Twilio accepted, and every callback for 10 minutes was lost);
- inbound messages not handled after 2 minutes → ``conversation.handle``.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from campaigns.db import utcnow
from campaigns.logging import get_logger
from campaigns.messaging.models import Direction, Message, MessageStatus, Purpose
from campaigns.outbox import Job, publish_now

log = get_logger(__name__)

PENDING_AFTER = dt.timedelta(minutes=6)
SUBMITTING_AFTER = dt.timedelta(minutes=10)
UNHANDLED_AFTER = dt.timedelta(minutes=2)
BATCH = 500


def reap(factory: sessionmaker[Session], *, now: dt.datetime | None = None) -> dict[str, int]:
    now = now or utcnow()
    counts = {"pending": 0, "submitting": 0, "inbound": 0}
    with factory() as session, session.begin():
        session.execute(
            update(Message)
            .where(
                Message.direction == Direction.outbound,
                Message.status == MessageStatus.submitting,
                Message.twilio_sid.is_(None),
                Message.submitted_at < now - SUBMITTING_AFTER,
            )
            .values(
                status=MessageStatus.pending,
                status_rank=MessageStatus.pending.rank,
                updated_at=now - PENDING_AFTER,
            )
            .execution_options(synchronize_session=False)
        )
        stale = session.execute(
            select(Message.id, Message.purpose)
            .where(
                Message.direction == Direction.outbound,
                Message.status == MessageStatus.pending,
                Message.updated_at <= now - PENDING_AFTER,
            )
            .order_by(Message.id)
            .limit(BATCH * 20)
        ).all()
        unhandled = session.scalars(
            select(Message.id)
            .where(
                Message.direction == Direction.inbound,
                Message.handled_at.is_(None),
                Message.created_at < now - UNHANDLED_AFTER,
            )
            .limit(BATCH)
        ).all()
    by_queue: dict[str, list[int]] = {}
    for message_id, purpose in stale:
        by_queue.setdefault((purpose or Purpose.reply).queue, []).append(message_id)
    for queue, ids in by_queue.items():
        for start in range(0, len(ids), BATCH):
            if publish_now(Job("messages.send", (ids[start : start + BATCH],), queue=queue)):
                counts["pending"] += len(ids[start : start + BATCH])
    for message_id in unhandled:
        if publish_now(Job("conversation.handle", (message_id,), queue="conversation")):
            counts["inbound"] += 1
    if any(counts.values()):
        log.info("reaper.republished", **counts)
    return counts
