"""Answering a person who wrote: one reply per inbound message, even if the task runs twice.

``handle`` claims the inbound message (``handled_at`` set in a conditional UPDATE) in the same
transaction that queues the reply, so a redelivered task finds it handled and does nothing, and
a crash before the commit leaves it unclaimed for the retry.

The assistant (Rasa) joins in the assistant issue.  Until then, and whenever it cannot be
reached, the person gets an honest apology in their language with the keywords that still work.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from campaigns.contacts.models import Contact
from campaigns.db import utcnow
from campaigns.logging import get_logger
from campaigns.messaging.models import Message, Purpose, Sender
from campaigns.messaging.outbound import queue_text
from campaigns.settings import Settings

log = get_logger(__name__)

UNAVAILABLE = {
    "es": (
        "Lo sentimos, el asistente no esta disponible en este momento. Intenta de nuevo mas "
        "tarde. Escribe AYUDA para saber que es este servicio."
    ),
    "en": (
        "Sorry, the assistant is not available right now. Please try again later. "
        "Send HELP to learn about this service."
    ),
    "ht": (
        "Nou regret sa, asistan an pa disponib kounye a. Tanpri eseye ankò pita. "
        "Voye ÈD pou konnen sa sèvis sa a ye."
    ),
    "fr": (
        "Désolé, l'assistant n'est pas disponible pour le moment. Réessayez plus tard. "
        "Envoyez AIDE pour savoir ce qu'est ce service."
    ),
}


def _claim(session: Session, message_id: int, now: dt.datetime) -> bool:
    claimed = session.execute(
        update(Message)
        .where(Message.id == message_id, Message.handled_at.is_(None))
        .values(handled_at=now)
        .returning(Message.id)
        .execution_options(synchronize_session=False)
    ).first()
    return claimed is not None


def handle(
    factory: sessionmaker[Session],
    *,
    message_id: int,
    settings: Settings,
    now: dt.datetime | None = None,
) -> bool:
    """Reply to one inbound message; False if it was already handled."""
    now = now or utcnow()
    with factory() as session, session.begin():
        if not _claim(session, message_id, now):
            return False
        row = session.execute(
            select(Message, Contact, Sender)
            .join(Contact, Contact.id == Message.contact_id)
            .join(Sender, Sender.id == Message.sender_id)
            .where(Message.id == message_id)
        ).first()
        if row is None:
            return False
        _, contact, sender = row
        if contact.erased:
            return False
        queue_text(
            session,
            contact=contact,
            sender=sender,
            purpose=Purpose.reply,
            body=UNAVAILABLE.get(contact.language, UNAVAILABLE["es"]),
            now=now,
        )
        log.info("conversation.answered", message_id=message_id, source="unavailable")
    return True
