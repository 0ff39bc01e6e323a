"""A migrant writes: store the message once, honour consent keywords, hand it to the assistant.

``receive`` is called by the Twilio webhook (after its signature check) and by the simulator,
with the same form fields Twilio posts.  It runs inside the caller's transaction and publishes
its follow-up tasks only after that transaction commits (``campaigns.outbox``).

- Each ``MessageSid`` is stored once (unique key); a retry or duplicate changes nothing and
  publishes nothing, so it never produces a second reply.
- STOP-type keywords opt the contact out of campaigns at once and are confirmed once, in the
  contact's language; START opts back in; HELP explains the service; BORRAR/DELETE/EFASE/EFFACER
  erases the contact (the confirmation is sent first, then the number is removed).
- Anything else goes to the assistant (``conversation.handle``).  A contact who opted out and
  writes again still gets the assistant: they asked.  Campaigns stay off until they opt back in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from campaigns.contacts.models import Channel, ConsentSource, ConsentState, Contact
from campaigns.contacts.service import erase_contact, set_consent
from campaigns.crypto import AddressCipher
from campaigns.db import utcnow
from campaigns.errors import InvalidInput, NotFound
from campaigns.languages import default_language_for_country
from campaigns.logging import get_logger
from campaigns.messaging.keywords import KeywordKind, classify, confirmation
from campaigns.messaging.models import Direction, Message, MessageStatus, Purpose, Sender
from campaigns.messaging.outbound import queue_text
from campaigns.outbox import publish_after_commit
from campaigns.phones import parse_mobile

log = get_logger(__name__)

CONTACT = cast(Table, Contact.__table__)
SENDER = cast(Table, Sender.__table__)
MESSAGE = cast(Table, Message.__table__)

# WhatsApp allows 4,096 characters in a message (SMS is split by Twilio at 1,600); a longer body
# is not something Twilio sends, so it is refused as malformed.
MAX_BODY = 4096


@dataclass(frozen=True)
class InboundResult:
    message_id: int | None
    duplicate: bool
    keyword: KeywordKind | None = None


def _channel_and_number(value: str, field: str) -> tuple[Channel, str]:
    raw = value.strip()
    channel = Channel.whatsapp if raw.lower().startswith("whatsapp:") else Channel.sms
    return channel, parse_mobile(raw, field=field).e164


@dataclass(frozen=True)
class _SenderRef:
    id: int
    organization_id: int
    is_simulated: bool


def _sender_for(session: Session, channel: Channel, to: str) -> _SenderRef:
    number = to.strip().removeprefix("whatsapp:")
    row = (
        session.connection()
        .execute(
            select(SENDER.c.id, SENDER.c.organization_id, SENDER.c.is_simulated).where(
                SENDER.c.channel == channel, SENDER.c.address == number
            )
        )
        .first()
    )
    if row is None:
        raise NotFound("the To number is not a registered sender of any organization", field="To")
    return _SenderRef(id=row[0], organization_id=row[1], is_simulated=bool(row[2]))


def _create_contact(
    session: Session,
    *,
    sender: _SenderRef,
    channel: Channel,
    number: str,
    address_hash: str,
    cipher: AddressCipher,
    language: str | None,
    now: dt.datetime,
) -> None:
    """The contact for a first message, even when two first messages race (both get one row)."""
    country = parse_mobile(number).country
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.connection().execute(
        insert(CONTACT)
        .values(
            organization_id=sender.organization_id,
            channel=channel,
            address_ciphertext=cipher.encrypt(number),
            address_hash=address_hash,
            country=country,
            language=language or default_language_for_country(country),
            consent=ConsentState.unknown,
            is_simulated=sender.is_simulated,
            erased=False,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["organization_id", "channel", "address_hash"])
    )


def _touch_contact(
    session: Session,
    *,
    sender: _SenderRef,
    channel: Channel,
    address_hash: str,
    values: dict[str, object],
) -> int | None:
    """Record the inbound time (and profile name) on the contact in one UPDATE; its id."""
    return (
        session.connection()
        .execute(
            update(CONTACT)
            .where(
                CONTACT.c.organization_id == sender.organization_id,
                CONTACT.c.channel == channel,
                CONTACT.c.address_hash == address_hash,
            )
            .values(**values)
            .returning(CONTACT.c.id)
        )
        .scalar_one_or_none()
    )


def _insert_message(session: Session, values: dict[str, object]) -> int | None:
    """INSERT … ON CONFLICT (twilio_sid) DO NOTHING; the new id, or None for a duplicate."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(MESSAGE)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["twilio_sid"])
        .returning(MESSAGE.c.id)
    )
    return session.connection().execute(stmt).scalar_one_or_none()


def receive(
    session: Session,
    *,
    cipher: AddressCipher,
    form: Mapping[str, str],
    now: dt.datetime | None = None,
) -> InboundResult:
    now = now or utcnow()
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    if not sid or len(sid) > 64:
        raise InvalidInput("MessageSid is missing or malformed", field="MessageSid")
    if not form.get("From"):
        raise InvalidInput("From is missing", field="From")
    if not form.get("To"):
        raise InvalidInput("To is missing", field="To")
    body = form.get("Body", "")
    if len(body) > MAX_BODY:
        raise InvalidInput(f"Body is longer than {MAX_BODY} characters", field="Body")
    channel, number = _channel_and_number(form["From"], "From")
    sender = _sender_for(session, channel, form["To"])
    connection = session.connection()

    if connection.execute(select(MESSAGE.c.id).where(MESSAGE.c.twilio_sid == sid)).first():
        return InboundResult(message_id=None, duplicate=True)

    # Core statements on the hot path: this runs for every message Twilio posts, and the ORM's
    # unit of work was a third of its CPU (docs/benchmarks.md, "Where the inbound webhook's CPU
    # goes").  The keyword path below loads the ORM objects it needs.
    match = classify(body, opt_out_type=form.get("OptOutType") or None)
    address_hash = cipher.lookup_hash(channel.value, number)
    touched: dict[str, object] = {"last_inbound_at": now}
    profile = form.get("ProfileName", "").strip()
    if profile:
        touched["profile_name_ciphertext"] = cipher.encrypt(profile[:200])
    contact_id = _touch_contact(
        session, sender=sender, channel=channel, address_hash=address_hash, values=touched
    )
    if contact_id is None:
        _create_contact(
            session,
            sender=sender,
            channel=channel,
            number=number,
            address_hash=address_hash,
            cipher=cipher,
            language=match.language if match else None,
            now=now,
        )
        contact_id = _touch_contact(
            session, sender=sender, channel=channel, address_hash=address_hash, values=touched
        )
        assert contact_id is not None

    num_media = int(form.get("NumMedia", "0") or 0) if form.get("NumMedia", "0").isdigit() else 0
    kind = "text"
    if form.get("ButtonPayload") or form.get("ButtonText"):
        kind = "button"
    elif form.get("Latitude") and form.get("Longitude"):
        kind = "location"  # the coordinates are not kept: a precise location is too sensitive
    elif num_media and not body:
        kind = "media"
    message_id = _insert_message(
        session,
        {
            "organization_id": sender.organization_id,
            "contact_id": contact_id,
            "sender_id": sender.id,
            "direction": Direction.inbound,
            "channel": channel,
            "twilio_sid": sid,
            "status": MessageStatus.received,
            "status_rank": MessageStatus.received.rank,
            "kind": kind,
            "body": body or form.get("ButtonText") or None,
            "num_media": num_media,
            "button_payload": (form.get("ButtonPayload") or None),
            "attempts": 0,
            "then_erase": False,
            "simulated": sender.is_simulated,
            # Keywords are answered here; only other messages wait for the assistant.
            "handled_at": now if match is not None else None,
            "created_at": now,
            "updated_at": now,
        },
    )
    if message_id is None:  # a concurrent duplicate won the race
        return InboundResult(message_id=None, duplicate=True)

    if match is None:
        publish_after_commit(session, "conversation.handle", message_id, queue="conversation")
        log.info("inbound.received", message_id=message_id, kind=kind)
        return InboundResult(message_id=message_id, duplicate=False)

    _handle_keyword(
        session,
        contact=session.get_one(Contact, contact_id, populate_existing=True),
        sender=session.get_one(Sender, sender.id),
        kind=match.kind,
        twilio_handled=match.reported_by_twilio,
        now=now,
    )
    log.info("inbound.keyword", message_id=message_id, keyword=match.kind.value)
    return InboundResult(message_id=message_id, duplicate=False, keyword=match.kind)


def _handle_keyword(
    session: Session,
    *,
    contact: Contact,
    sender: Sender,
    kind: KeywordKind,
    twilio_handled: bool,
    now: dt.datetime,
) -> None:
    def confirm(then_erase: bool = False) -> None:
        queue_text(
            session,
            contact=contact,
            sender=sender,
            purpose=Purpose.consent,
            body=confirmation(kind, contact.language),
            now=now,
            then_erase=then_erase,
        )

    # On SMS with Advanced Opt-Out, Twilio has already confirmed STOP/START/HELP itself.
    twilio_confirmed = twilio_handled and contact.channel == Channel.sms
    source = ConsentSource.twilio_opt_out if twilio_handled else ConsentSource.keyword
    if kind in (KeywordKind.stop, KeywordKind.start):
        state = ConsentState.opted_out if kind == KeywordKind.stop else ConsentState.opted_in
        changed = set_consent(session, contact=contact, state=state, source=source, now=now)
        if changed and not twilio_confirmed:  # confirmed once, not on every repeat
            confirm()
    elif kind == KeywordKind.help:
        if not twilio_confirmed:
            confirm()
    elif kind == KeywordKind.erase:
        set_consent(
            session,
            contact=contact,
            state=ConsentState.opted_out,
            source=ConsentSource.keyword,
            detail="erase",
            now=now,
        )
        # Bodies and profile name go now; the number goes once the confirmation has left.
        erase_contact(session, contact=contact, now=now, keep_address=True)
        # The assistant's copy of the conversation (Rasa's tracker store) goes too.
        publish_after_commit(
            session,
            "retention.forget_sender",
            contact.organization_id,
            contact.id,
            queue="conversation",
        )
        confirm(then_erase=True)
