"""The reaper: re-publishes work that a lost task or an unreachable broker left behind.

Runs every 30 s from beat; every step is idempotent, so two reapers are harmless.

- outbound ``pending`` untouched for longer than the longest backoff → ``messages.send``;
- outbound ``submitting`` without a Twilio SID for 10 minutes: the worker died around the call.
  Twilio's status callbacks carry Faro's message id, so most such messages have been
  reconciled by then.  For the rest the reaper **asks Twilio** (``reconcile``: a lookup of the
  messages sent to that number since the claim, matched on the body) before anything else:
  one Twilio has is adopted with its SID and status; one it does not have goes back to
  ``pending`` and is sent again; one it could not ask about waits for the next round.  Without
  a ``reconcile`` (the simulator) they go back to ``pending``;
- inbound messages not handled after 2 minutes → ``conversation.handle``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from campaigns.db import utcnow
from campaigns.logging import get_logger
from campaigns.messaging.dispatch import adopted_status
from campaigns.messaging.models import Direction, Message, MessageStatus, Purpose
from campaigns.messaging.twilio_gateway import SubmitResult
from campaigns.outbox import Job, publish_now

log = get_logger(__name__)

PENDING_AFTER = dt.timedelta(minutes=6)
SUBMITTING_AFTER = dt.timedelta(minutes=10)
UNHANDLED_AFTER = dt.timedelta(minutes=2)
BATCH = 500


Reconcile = Callable[[Sequence[int]], Mapping[int, SubmitResult | None]]


def reap(
    factory: sessionmaker[Session],
    *,
    now: dt.datetime | None = None,
    reconcile: Reconcile | None = None,
) -> dict[str, int]:
    now = now or utcnow()
    counts = {"pending": 0, "submitting": 0, "adopted": 0, "inbound": 0}
    with factory() as session:
        orphans = list(
            session.scalars(
                select(Message.id)
                .where(
                    Message.direction == Direction.outbound,
                    Message.status == MessageStatus.submitting,
                    Message.twilio_sid.is_(None),
                    Message.submitted_at < now - SUBMITTING_AFTER,
                )
                .order_by(Message.id)
                .limit(BATCH * 4)
            )
        )
    answers: Mapping[int, SubmitResult | None] = dict.fromkeys(orphans)
    if orphans and reconcile is not None:
        try:
            answers = reconcile(orphans)
        except Exception as exc:  # cannot ask Twilio now: resend nothing, ask again later
            log.warning("reaper.reconcile_failed", error_type=type(exc).__name__)
            answers = {}
    with factory() as session, session.begin():
        for message_id in sorted(answers):
            found = answers[message_id]
            taken = found is not None and session.scalar(
                select(Message.id).where(Message.twilio_sid == found.sid)
            )
            if found is not None and found.sid and not taken:
                status = adopted_status(found.status)
                session.execute(
                    update(Message)
                    .where(
                        Message.id == message_id,
                        Message.status == MessageStatus.submitting,
                        Message.twilio_sid.is_(None),
                    )
                    .values(
                        twilio_sid=found.sid,
                        status=status,
                        status_rank=status.rank,
                        updated_at=now,
                    )
                    .execution_options(synchronize_session=False)
                )
                counts["adopted"] += 1
                continue
            reset = session.execute(
                update(Message)
                .where(
                    Message.id == message_id,
                    Message.status == MessageStatus.submitting,
                    Message.twilio_sid.is_(None),
                )
                .values(
                    status=MessageStatus.pending,
                    status_rank=MessageStatus.pending.rank,
                    updated_at=now - PENDING_AFTER,
                )
                .execution_options(synchronize_session=False)
            )
            counts["submitting"] += int(reset.rowcount or 0)  # type: ignore[attr-defined]
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
