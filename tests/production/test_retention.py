"""Retention: texts older than the retention period go (Faro's and Rasa's tracker events), every
count stays; erasure removes a person's tracker events under the pseudonym Rasa knew them by."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from campaigns.assistant.models import Turn, UnansweredQuestion
from campaigns.cli import app
from campaigns.contacts.models import Contact
from campaigns.crypto import AddressCipher
from campaigns.db import make_engine, make_sessionmaker, utcnow
from campaigns.messaging import conversation, inbound
from campaigns.messaging.models import Direction, Message, MessageStatus, Purpose
from campaigns.messaging.senders import create_sender
from campaigns.organizations.service import create_organization
from campaigns.retention import forget_tracker_sender, purge, tracker_sender_id
from campaigns.settings import Settings, get_settings
from tests.factories import twilio_form
from tests.production.conftest import create_database, drop_database

NOW = utcnow()
OLD = NOW - dt.timedelta(days=200)
RECENT = NOW - dt.timedelta(days=1)

# Rasa 3.6 SQLTrackerStore's table, as rasa/core/tracker_store.py (SQLEvent) creates it.
RASA_EVENTS_DDL = """
CREATE TABLE events (
    id SERIAL PRIMARY KEY,
    sender_id VARCHAR(255) NOT NULL,
    type_name VARCHAR(255) NOT NULL,
    timestamp FLOAT,
    intent_name VARCHAR(255),
    action_name VARCHAR(255),
    data TEXT
);
CREATE INDEX ix_events_sender_id ON events (sender_id);
"""


class RecordingAssistant:
    """Stands in for Rasa's REST channel and remembers who it was told was writing."""

    def __init__(self) -> None:
        self.senders: list[str] = []

    def turn(self, *, sender: str, text: str, metadata: dict[str, Any]) -> list[dict[str, Any]]:
        self.senders.append(sender)
        return [{"recipient_id": sender, "text": "Respuesta del asistente"}]


@pytest.fixture(scope="module")
def tracker_url() -> Iterator[str]:
    url = create_database("rasa_tracker")
    engine = make_engine(url)
    with engine.begin() as conn:
        for statement in RASA_EVENTS_DDL.split(";"):
            if statement.strip():
                conn.execute(text(statement))
    engine.dispose()
    yield url
    drop_database(url)


@pytest.fixture(scope="module")
def factory(own_db: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(own_db)
    yield make_sessionmaker(engine)
    engine.dispose()


def _add_events(tracker_url: str, sender: str, moments: list[dt.datetime]) -> None:
    engine = make_engine(tracker_url)
    with engine.begin() as conn:
        for moment in moments:
            conn.execute(
                text(
                    "INSERT INTO events (sender_id, type_name, timestamp, data) "
                    "VALUES (:s, 'user', :t, :d)"
                ),
                {"s": sender, "t": moment.timestamp(), "d": '{"text": "vivo en la calle 5"}'},
            )
    engine.dispose()


def _events(tracker_url: str) -> list[tuple[str, float]]:
    engine = make_engine(tracker_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT sender_id, timestamp FROM events ORDER BY id")).all()
    engine.dispose()
    return [(r[0], r[1]) for r in rows]


def _counts(session: Session) -> dict[str, int]:
    return {
        "messages": session.scalar(select(func.count()).select_from(Message)) or 0,
        "inbound": session.scalar(
            select(func.count()).where(Message.direction == Direction.inbound)
        )
        or 0,
        "turns": session.scalar(select(func.count()).select_from(Turn)) or 0,
        "questions": session.scalar(select(func.count()).select_from(UnansweredQuestion)) or 0,
        "contacts": session.scalar(select(func.count()).select_from(Contact)) or 0,
    }


def test_old_texts_are_purged_counts_stay_and_erasure_reaches_the_tracker(
    factory: sessionmaker[Session],
    own_db: str,
    tracker_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cipher = AddressCipher.from_settings(Settings(env="test"))
    bot = RecordingAssistant()
    with factory() as session, session.begin():
        org = create_organization(session, name="Retention", country="MX")
        sender = create_sender(
            session, organization_id=org.id, channel="whatsapp", address="+14155230001"
        )
        old = inbound.receive(
            session,
            cipher=cipher,
            form=twilio_form(
                sender=sender, phone="+5215512345678", body="vivo en la calle 5", ProfileName="M"
            ),
            now=OLD,
        )
        recent = inbound.receive(
            session,
            cipher=cipher,
            form=twilio_form(
                sender=sender,
                phone="+5215587654321",
                body="¿dónde hay un albergue?",
                ProfileName="J",
            ),
            now=RECENT,
        )
    assert old.message_id is not None and recent.message_id is not None
    # The assistant answers the old message (a reply row) and Rasa learns a pseudonym.
    conversation.handle(factory, message_id=old.message_id, bot=bot, cipher=cipher, now=OLD)
    with factory() as session, session.begin():
        old_msg = session.get(Message, old.message_id)
        recent_msg = session.get(Message, recent.message_id)
        assert old_msg is not None and recent_msg is not None and old_msg.contact_id
        old_contact_id = old_msg.contact_id
        session.execute(
            update(Message)
            .where(Message.direction == Direction.outbound)
            .values(status=MessageStatus.read, status_rank=MessageStatus.read.rank)
        )
        common = {"organization_id": org.id, "channel": "whatsapp", "sender_id": sender.id}
        session.add_all(
            [
                # A campaign message with its personal template variables, delivered long ago.
                Message(
                    **common,
                    contact_id=old_contact_id,
                    direction=Direction.outbound,
                    purpose=Purpose.campaign,
                    status=MessageStatus.delivered,
                    kind="template",
                    body="Hola María, ...",
                    content_variables={"1": "María"},
                    created_at=OLD,
                ),
                # Old but never sent (a paused campaign): keeps its body until it leaves.
                Message(
                    **common,
                    contact_id=old_contact_id,
                    direction=Direction.outbound,
                    purpose=Purpose.campaign,
                    status=MessageStatus.pending,
                    body="todavía por enviar",
                    created_at=OLD,
                ),
                UnansweredQuestion(
                    organization_id=org.id,
                    message_id=old.message_id,
                    language="es",
                    text_redacted="vivo en la calle #",
                    created_at=OLD,
                ),
                UnansweredQuestion(
                    organization_id=org.id,
                    message_id=recent.message_id,
                    language="es",
                    text_redacted="¿dónde hay un albergue?",
                    created_at=RECENT,
                ),
            ]
        )
    [pseudonym] = bot.senders
    _add_events(tracker_url, pseudonym, [OLD, OLD, OLD, RECENT])
    _add_events(tracker_url, "someone-else", [OLD, RECENT, RECENT])

    with factory() as session:
        before = _counts(session)

    monkeypatch.setenv("FARO_DATABASE_URL", own_db)
    monkeypatch.setenv("FARO_RASA_TRACKER_DB_URL", tracker_url)
    monkeypatch.setenv("FARO_RETENTION_DAYS", "90")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["retention", "run"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    print(result.output.strip())
    assert "3 message bodies" in result.output  # old inbound, old reply, old campaign message
    assert "1 unanswered question texts" in result.output
    assert "1 profile names" in result.output
    assert "4 Rasa tracker events" in result.output

    with factory() as session:
        assert _counts(session) == before  # every row (every count) stays
        messages = session.scalars(select(Message).order_by(Message.id)).all()
        kept = {m.body for m in messages if m.body is not None}
        assert kept == {"¿dónde hay un albergue?", "todavía por enviar"}
        assert all(m.content_variables is None for m in messages if m.created_at < NOW)
        questions = dict(
            session.execute(
                select(UnansweredQuestion.message_id, UnansweredQuestion.text_redacted)
            ).all()
        )
        assert questions == {old.message_id: "", recent.message_id: "¿dónde hay un albergue?"}
        names = dict(session.execute(select(Contact.id, Contact.profile_name_ciphertext)).all())
        assert names[old_contact_id] is None
        assert sum(1 for v in names.values() if v is not None) == 1  # the recent writer's
        turn = session.scalars(select(Turn).where(Turn.message_id == old.message_id)).one()
        assert turn.language == "es"  # the anonymous turn stays for the dashboard
    assert sorted(_events(tracker_url)) == sorted(
        [(pseudonym, RECENT.timestamp()), ("someone-else", RECENT.timestamp())] * 1
        + [("someone-else", RECENT.timestamp())]
    )

    # Idempotent: a second run finds nothing.
    again = purge(factory, retention_days=90, tracker_db_url=tracker_url)
    assert (again.message_bodies, again.unanswered_texts, again.profile_names) == (0, 0, 0)
    assert again.tracker_events == 0

    # Erasure (BORRAR): the person's remaining tracker events go, under the pseudonym Rasa used.
    assert tracker_sender_id(cipher, organization_id=org.id, contact_id=old_contact_id) == (
        pseudonym
    )
    assert forget_tracker_sender(tracker_url, sender_id=pseudonym) == 1
    assert {s for s, _ in _events(tracker_url)} == {"someone-else"}


def test_retention_refuses_a_nonsense_period(factory: sessionmaker[Session]) -> None:
    with pytest.raises(ValueError, match="at least one day"):
        purge(factory, retention_days=0)
    with pytest.raises(ValueError, match="retention_days"):
        Settings(retention_days=0)
