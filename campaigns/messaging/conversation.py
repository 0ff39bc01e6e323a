"""The relay: one inbound message, one answer — from the assistant, or an honest apology.

``handle`` (the ``conversation.handle`` task):

1. takes a short lease on the inbound message (``handling_started_at``) so two deliveries of
   the task do not both ask the assistant;
2. answers at once what needs no language model (``turns.before_assistant``), or
3. sends the text to Rasa's REST channel with a pseudonymous sender id and metadata (language,
   country, community, organization, message id).  Rasa's action server calls Faro back
   (``/internal/assistant/turn``), which queues the answer and marks the message handled, in
   one transaction;
4. if Rasa answered but its action could not reach Faro, the texts Rasa returned are sent;
5. if Rasa cannot be reached, the lease is released and ``AssistantUnavailable`` raised: the
   task retries with backoff, and after the last retry ``give_up`` sends an apology in the
   contact's language.  If the database goes away mid-turn (a restart, a failover), the task
   retries within seconds and takes over its own lease (``lease=``).  The inbound message is
   never lost: until it is handled, the reaper re-publishes it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import or_, update
from sqlalchemy.orm import Session, sessionmaker

from campaigns.assistant import texts, turns
from campaigns.bot_client import Assistant, AssistantUnavailable
from campaigns.crypto import AddressCipher
from campaigns.db import utcnow
from campaigns.logging import get_logger
from campaigns.messaging.models import Message

log = get_logger(__name__)

LEASE = dt.timedelta(minutes=2)


def _lease(
    session: Session, message_id: int, now: dt.datetime, held: dt.datetime | None = None
) -> bool:
    free = or_(Message.handling_started_at.is_(None), Message.handling_started_at < now - LEASE)
    if held is not None:  # an earlier attempt of this same task took it: take it over
        free = or_(free, Message.handling_started_at == held)
    return (
        session.execute(
            update(Message)
            .where(Message.id == message_id, Message.handled_at.is_(None), free)
            .values(handling_started_at=now)
            .returning(Message.id)
            .execution_options(synchronize_session=False)
        ).first()
        is not None
    )


def _release(factory: sessionmaker[Session], message_id: int) -> None:
    with factory() as session, session.begin():
        session.execute(
            update(Message)
            .where(Message.id == message_id, Message.handled_at.is_(None))
            .values(handling_started_at=None)
            .execution_options(synchronize_session=False)
        )


def handle(
    factory: sessionmaker[Session],
    *,
    message_id: int,
    bot: Assistant | None,
    cipher: AddressCipher,
    now: dt.datetime | None = None,
    lease: dt.datetime | None = None,
) -> str:
    """Answer one inbound message; returns what happened (for logs and tests).

    ``lease``: the ``now`` of an earlier attempt of the same task that lost the database
    mid-turn; its lease is taken over instead of waiting two minutes for it to expire (a lease
    someone else took since has another time and is respected).
    """
    now = now or utcnow()
    with factory() as session, session.begin():
        if not _lease(session, message_id, now, held=lease):
            return "already_handled"
        ctx = turns.load_context(session, message_id, now)
        if ctx is None or ctx.contact.erased:
            session.execute(
                update(Message)
                .where(Message.id == message_id)
                .values(handled_at=now)
                .execution_options(synchronize_session=False)
            )
            return "no_contact"
        first = turns.before_assistant(session, ctx)
        if isinstance(first, turns.Reply):
            turns.finish(session, ctx, first, now)
            log.info("conversation.answered", message_id=message_id, source=first.source)
            return first.source
        metadata: dict[str, Any] = {
            "organization_id": ctx.contact.organization_id,
            "language": ctx.contact.language,
            "country": ctx.contact.country,
            "community_id": ctx.community_id,
            "inbound_message_id": message_id,
        }
        sender = cipher.pseudonym(f"{ctx.contact.organization_id}:{ctx.contact.id}")
        metadata["contact_ref"] = sender
        text = first
    if bot is None:
        _release(factory, message_id)
        raise AssistantUnavailable("no assistant configured")
    try:
        replies = bot.turn(sender=sender, text=text, metadata=metadata)
    except AssistantUnavailable:
        _release(factory, message_id)
        raise
    with factory() as session, session.begin():
        ctx = turns.load_context(session, message_id, now)
        if ctx is None:
            return "no_contact"
        if ctx.message.handled_at is not None:
            log.info("conversation.answered", message_id=message_id, source="rasa")
            return "rasa"
        # The action could not reach Faro: send what Rasa said (its own apology).
        said = [r["text"] for r in replies if isinstance(r.get("text"), str) and r["text"]]
        reply = turns.Reply(
            said or [texts.say("unavailable", ctx.contact.language)],
            source="unavailable",
            answered=False,
        )
        turns.finish(session, ctx, reply, now)
    log.info("conversation.answered", message_id=message_id, source="rasa_without_faro")
    return "rasa_without_faro"


def give_up(
    factory: sessionmaker[Session], *, message_id: int, now: dt.datetime | None = None
) -> bool:
    """After the last retry: an apology in the contact's language, once."""
    now = now or utcnow()
    with factory() as session, session.begin():
        ctx = turns.load_context(session, message_id, now)
        if ctx is None or ctx.message.handled_at is not None or ctx.contact.erased:
            return False
        reply = turns.Reply(
            [texts.say("unavailable", ctx.contact.language)], source="unavailable", answered=False
        )
        done = turns.finish(session, ctx, reply, now)
    log.warning("conversation.assistant_unavailable", message_id=message_id)
    return done
