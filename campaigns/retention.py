"""Retention: what people wrote and were sent is forgotten after ``FARO_RETENTION_DAYS``.

``purge`` (task ``retention.purge``, daily from beat; ``faro retention run``) removes, for
everything older than the cutoff:

- message bodies and template variables, inbound and outbound (``body`` and
  ``content_variables`` set to NULL).  Messages still ``pending`` or ``submitting`` keep theirs
  until they have left; a NULL body on an old row is the mark that it was purged;
- the redacted text of unanswered questions (set to ``""``; language, intent and community stay);
- WhatsApp profile names of contacts who have not written since the cutoff;
- when ``FARO_RASA_TRACKER_DB_URL`` is set, the events of Rasa's SQL tracker store (table
  ``events``, one row per event with a float UNIX ``timestamp``) older than the cutoff.

Rows themselves stay: message direction, status, kind, channel, error codes, turns (intent,
topic, confidence — never text), feedback, poll answers and link clicks, so every count the
dashboard shows is unchanged.  Numbers stay too (encrypted): a person who opted in can still be
reached; a person who wants to be forgotten sends BORRAR.

Work is done in batches of ``batch_size`` rows, one transaction per batch, so a purge of months
of history never holds long locks and a killed purge simply continues on the next run.

``forget_tracker_sender`` deletes every tracker event of one Rasa sender id (the pseudonym
``tracker_sender_id`` computes, as ``campaigns/messaging/conversation.py`` does), for erasure.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import asdict, dataclass

from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.dml import Update

from campaigns.assistant.models import UnansweredQuestion
from campaigns.contacts.models import Contact
from campaigns.crypto import AddressCipher
from campaigns.db import make_engine, utcnow
from campaigns.messaging.models import Message, MessageStatus

# Rasa 3.6's SQLTrackerStore table (rasa/core/tracker_store.py, ``SQLEvent``): only the columns
# Faro reads are needed, but the whole shape is declared so tests can create it.
_rasa = MetaData()
RASA_EVENTS = Table(
    "events",
    _rasa,
    Column("id", Integer, primary_key=True),
    Column("sender_id", String(255), nullable=False, index=True),
    Column("type_name", String(255), nullable=False),
    Column("timestamp", Float),
    Column("intent_name", String(255)),
    Column("action_name", String(255)),
    Column("data", Text),
)

_IN_FLIGHT = (MessageStatus.pending, MessageStatus.submitting)


@dataclass
class PurgeReport:
    cutoff: str = ""
    message_bodies: int = 0
    unanswered_texts: int = 0
    profile_names: int = 0
    tracker_events: int = 0

    def as_dict(self) -> dict[str, int | str]:
        return asdict(self)


def cutoff_for(now: dt.datetime, retention_days: int) -> dt.datetime:
    if retention_days < 1:
        raise ValueError("retention must be at least one day")
    return now - dt.timedelta(days=retention_days)


def _batched(factory: sessionmaker[Session], statement_for_batch: Callable[[], Update]) -> int:
    """Run ``statement_for_batch()`` (an UPDATE limited to one batch) until it changes nothing."""
    total = 0
    while True:
        with factory() as session, session.begin():
            result = session.execute(statement_for_batch())
            changed = int(getattr(result, "rowcount", 0))
        total += max(changed, 0)
        if changed <= 0:
            return total


def purge(
    factory: sessionmaker[Session],
    *,
    now: dt.datetime | None = None,
    retention_days: int,
    tracker_db_url: str | None = None,
    batch_size: int = 5000,
) -> PurgeReport:
    """Purge texts older than ``retention_days``; idempotent; see the module docstring."""
    cutoff = cutoff_for(now or utcnow(), retention_days)
    report = PurgeReport(cutoff=cutoff.isoformat())

    def bodies() -> Update:
        ids = (
            select(Message.id)
            .where(
                Message.created_at < cutoff,
                Message.status.not_in(_IN_FLIGHT),
                or_(Message.body.is_not(None), Message.content_variables.is_not(None)),
            )
            .limit(batch_size)
            .scalar_subquery()
        )
        return (
            update(Message)
            .where(Message.id.in_(ids))
            .values(body=None, content_variables=null())  # SQL NULL, not JSON null
            .execution_options(synchronize_session=False)
        )

    def questions() -> Update:
        ids = (
            select(UnansweredQuestion.id)
            .where(UnansweredQuestion.created_at < cutoff, UnansweredQuestion.text_redacted != "")
            .limit(batch_size)
            .scalar_subquery()
        )
        return (
            update(UnansweredQuestion)
            .where(UnansweredQuestion.id.in_(ids))
            .values(text_redacted="")
            .execution_options(synchronize_session=False)
        )

    def profile_names() -> Update:
        ids = (
            select(Contact.id)
            .where(
                Contact.profile_name_ciphertext.is_not(None),
                func.coalesce(Contact.last_inbound_at, Contact.created_at) < cutoff,
            )
            .limit(batch_size)
            .scalar_subquery()
        )
        return (
            update(Contact)
            .where(Contact.id.in_(ids))
            .values(profile_name_ciphertext=None)
            .execution_options(synchronize_session=False)
        )

    report.message_bodies = _batched(factory, bodies)
    report.unanswered_texts = _batched(factory, questions)
    report.profile_names = _batched(factory, profile_names)
    if tracker_db_url:
        report.tracker_events = purge_tracker(tracker_db_url, cutoff=cutoff, batch_size=batch_size)
    return report


def purge_tracker(tracker_db_url: str, *, cutoff: dt.datetime, batch_size: int = 5000) -> int:
    """Delete Rasa tracker events older than ``cutoff`` (batched); returns how many."""
    engine = make_engine(tracker_db_url)
    events = RASA_EVENTS
    total = 0
    try:
        while True:
            with engine.begin() as conn:
                ids = (
                    select(events.c.id)
                    .where(events.c.timestamp < cutoff.timestamp())
                    .limit(batch_size)
                    .scalar_subquery()
                )
                result = conn.execute(delete(events).where(events.c.id.in_(ids)))
                deleted = int(result.rowcount)
            total += max(deleted, 0)
            if deleted <= 0:
                return total
    finally:
        engine.dispose()


def tracker_sender_id(cipher: AddressCipher, *, organization_id: int, contact_id: int) -> str:
    """The sender id Rasa knows a contact by (the same derivation as the conversation task)."""
    return cipher.pseudonym(f"{organization_id}:{contact_id}")


def forget_tracker_sender(tracker_db_url: str, *, sender_id: str) -> int:
    """Delete every tracker event of one sender (erasure); returns how many."""
    engine = make_engine(tracker_db_url)
    try:
        with engine.begin() as conn:
            result = conn.execute(delete(RASA_EVENTS).where(RASA_EVENTS.c.sender_id == sender_id))
        return max(int(result.rowcount), 0)
    finally:
        engine.dispose()
