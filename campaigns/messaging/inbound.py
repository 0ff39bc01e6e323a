"""A migrant writes: store the message once, honour consent keywords, hand it to the assistant.

``prepare`` checks and parses the form Twilio posts; ``store`` writes a batch of them in the
caller's transaction, set-based (the webhook's group commit hands it what arrived together);
``receive`` does both for one message and acts on a consent keyword (the webhook's keywords, and
the simulator, which posts the same fields).  Follow-up tasks are published only after the
transaction commits (``campaigns.outbox``).

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import cast

from sqlalchemy import Executable, Table, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from campaigns.contacts.models import Channel, ConsentSource, ConsentState, Contact
from campaigns.contacts.service import erase_contact, set_consent
from campaigns.crypto import AddressCipher
from campaigns.db import utcnow
from campaigns.errors import InvalidInput, NotFound
from campaigns.languages import default_language_for_country
from campaigns.logging import get_logger
from campaigns.messaging.keywords import KeywordKind, KeywordMatch, classify, confirmation
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
# The payloads Faro puts on its own buttons are short; Twilio carries them back as they were.
MAX_BUTTON_PAYLOAD = 256


@dataclass(frozen=True)
class InboundResult:
    message_id: int | None
    duplicate: bool
    keyword: KeywordKind | None = None
    contact_id: int | None = None
    sender_id: int | None = None


@dataclass(frozen=True)
class Inbound:
    """One message as Twilio posted it, checked and parsed (``prepare``), before it is stored."""

    sid: str
    channel: Channel
    number: str  # E.164
    country: str | None
    to: str  # the sender's number, without ``whatsapp:``
    body: str
    kind: str  # text | media | button | location
    num_media: int
    button_payload: str | None
    profile_name: str | None
    keyword: KeywordMatch | None


@dataclass(frozen=True)
class _SenderRef:
    id: int
    organization_id: int
    is_simulated: bool


def prepare(form: Mapping[str, str]) -> Inbound:
    """Check and parse a form; ``InvalidInput`` names the field that is missing or malformed."""
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
    if len(form.get("ButtonPayload") or "") > MAX_BUTTON_PAYLOAD:
        raise InvalidInput(
            f"ButtonPayload is longer than {MAX_BUTTON_PAYLOAD} characters", field="ButtonPayload"
        )
    raw = form["From"].strip()
    channel = Channel.whatsapp if raw.lower().startswith("whatsapp:") else Channel.sms
    phone = parse_mobile(raw, field="From")
    num_media = int(form.get("NumMedia", "0") or 0) if form.get("NumMedia", "0").isdigit() else 0
    kind = "text"
    if form.get("ButtonPayload") or form.get("ButtonText"):
        kind = "button"
    elif form.get("Latitude") and form.get("Longitude"):
        kind = "location"  # the coordinates are not kept: a precise location is too sensitive
    elif num_media and not body:
        kind = "media"
    profile = form.get("ProfileName", "").strip()
    return Inbound(
        sid=sid,
        channel=channel,
        number=phone.e164,
        country=phone.country,
        to=form["To"].strip().removeprefix("whatsapp:"),
        body=body or form.get("ButtonText") or "",
        kind=kind,
        num_media=num_media,
        button_payload=form.get("ButtonPayload") or None,
        profile_name=profile[:200] or None,
        keyword=classify(body, opt_out_type=form.get("OptOutType") or None),
    )


# The batch's statements, built once per dialect: building them (and their cache keys) anew
# for every batch was a third of ``store``'s CPU.
_SENDERS = select(
    SENDER.c.id, SENDER.c.organization_id, SENDER.c.is_simulated, SENDER.c.channel, SENDER.c.address
).where(SENDER.c.address.in_(bindparam("addresses", expanding=True)))
_STORED = select(MESSAGE.c.twilio_sid).where(
    MESSAGE.c.twilio_sid.in_(bindparam("sids", expanding=True))
)


@cache
def _writes(dialect: str) -> tuple[Executable, Executable]:
    """(contacts upsert, messages insert) for ``dialect``."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    contacts = insert(CONTACT)
    upsert = contacts.on_conflict_do_update(
        index_elements=["organization_id", "channel", "address_hash"],
        set_={
            "last_inbound_at": contacts.excluded.last_inbound_at,
            "profile_name_ciphertext": func.coalesce(
                contacts.excluded.profile_name_ciphertext, CONTACT.c.profile_name_ciphertext
            ),
        },
    ).returning(CONTACT.c.organization_id, CONTACT.c.channel, CONTACT.c.address_hash, CONTACT.c.id)
    messages = (
        insert(MESSAGE)
        .on_conflict_do_nothing(index_elements=["twilio_sid"])
        .returning(MESSAGE.c.twilio_sid, MESSAGE.c.id)
    )
    return upsert, messages


def store(
    session: Session,
    *,
    cipher: AddressCipher,
    items: Sequence[Inbound],
    now: dt.datetime | None = None,
) -> list[InboundResult | Exception]:
    """Store a batch of inbound messages in the caller's transaction, set-based.

    The inbound webhook's hot path: four statements for the whole batch, whatever its size (the
    senders; the MessageSids already stored; every contact touched or created in one
    ``INSERT … ON CONFLICT DO UPDATE``, in key order so that two batches cannot deadlock; every
    message in one ``INSERT … ON CONFLICT DO NOTHING``).  Each item gets its own outcome: the
    stored message, a duplicate (stored before, or twice in this batch), or ``NotFound`` for a
    To number no organization registered.  A message that is not a keyword is published to the
    assistant after commit; a keyword is stored answered, and ``receive`` acts on it.  The
    MessageSid is checked before the contact is touched, so Twilio retrying a message from
    someone who has since been erased does not bring their number back.
    """
    now = now or utcnow()
    connection = session.connection()
    outcomes: list[InboundResult | Exception | None] = [None] * len(items)

    senders = {
        (Channel(channel), address): _SenderRef(
            id=sender_id, organization_id=org_id, is_simulated=bool(simulated)
        )
        for sender_id, org_id, simulated, channel, address in connection.execute(
            _SENDERS, {"addresses": sorted({i.to for i in items})}
        )
    }
    stored = set(connection.execute(_STORED, {"sids": [i.sid for i in items]}).scalars())
    fresh: list[tuple[int, Inbound, _SenderRef, str]] = []
    for position, item in enumerate(items):
        sender = senders.get((item.channel, item.to))
        if sender is None:
            outcomes[position] = NotFound(
                "the To number is not a registered sender of any organization", field="To"
            )
        elif item.sid in stored:  # Twilio's retry, or the same message twice in this batch
            outcomes[position] = InboundResult(message_id=None, duplicate=True)
        else:
            stored.add(item.sid)
            address_hash = cipher.lookup_hash(item.channel.value, item.number)
            fresh.append((position, item, sender, address_hash))
    if not fresh:
        return [cast(InboundResult | Exception, o) for o in outcomes]

    contacts = _upsert_contacts(session, cipher, fresh, now)
    rows = [
        {
            "organization_id": sender.organization_id,
            "contact_id": contacts[(sender.organization_id, item.channel, address_hash)],
            "sender_id": sender.id,
            "direction": Direction.inbound,
            "channel": item.channel,
            "twilio_sid": item.sid,
            "status": MessageStatus.received,
            "status_rank": MessageStatus.received.rank,
            "kind": item.kind,
            "body": item.body or None,
            "num_media": item.num_media,
            "button_payload": item.button_payload,
            "attempts": 0,
            "then_erase": False,
            "simulated": sender.is_simulated,
            # Keywords are answered by ``receive``; only other messages await the assistant.
            "handled_at": now if item.keyword is not None else None,
            "created_at": now,
            "updated_at": now,
        }
        for _, item, sender, address_hash in fresh
    ]
    result = connection.execute(_writes(connection.dialect.name)[1], rows)
    inserted: dict[str, int] = dict(result.all())
    for (position, item, sender, _), row in zip(fresh, rows, strict=True):
        message_id = inserted.get(item.sid)
        if message_id is None:  # a concurrent duplicate (another batch) won the race
            outcomes[position] = InboundResult(message_id=None, duplicate=True)
            continue
        outcomes[position] = InboundResult(
            message_id=message_id,
            duplicate=False,
            keyword=item.keyword.kind if item.keyword else None,
            contact_id=cast(int, row["contact_id"]),
            sender_id=sender.id,
        )
        if item.keyword is None:
            publish_after_commit(session, "conversation.handle", message_id, queue="conversation")
            log.info("inbound.received", message_id=message_id, kind=item.kind)
    return [cast(InboundResult | Exception, o) for o in outcomes]


def _upsert_contacts(
    session: Session,
    cipher: AddressCipher,
    fresh: Sequence[tuple[int, Inbound, _SenderRef, str]],
    now: dt.datetime,
) -> dict[tuple[int, Channel, str], int]:
    """Every contact of the batch touched (last inbound time, profile name) or created, in one
    statement, even when two first messages race (both get the one row); their ids by key."""
    rows: dict[tuple[int, Channel, str], dict[str, object]] = {}
    for _, item, sender, address_hash in fresh:
        key = (sender.organization_id, item.channel, address_hash)
        row = rows.get(key)
        if row is None:
            language = item.keyword.language if item.keyword else None
            row = rows[key] = {
                "organization_id": sender.organization_id,
                "channel": item.channel,
                "address_ciphertext": cipher.encrypt(item.number),
                "address_hash": address_hash,
                "country": item.country,
                "language": language or default_language_for_country(item.country),
                "consent": ConsentState.unknown,
                "is_simulated": sender.is_simulated,
                "erased": False,
                "created_at": now,
                "updated_at": now,
                "last_inbound_at": now,
                "profile_name_ciphertext": None,
            }
        if item.profile_name:  # the latest one the batch carries
            row["profile_name_ciphertext"] = cipher.encrypt(item.profile_name)
    connection = session.connection()
    ordered = [rows[key] for key in sorted(rows, key=lambda k: (k[0], k[1].value, k[2]))]
    return {
        (org_id, Channel(channel), address_hash): contact_id
        for org_id, channel, address_hash, contact_id in connection.execute(
            _writes(connection.dialect.name)[0], ordered
        )
    }


def receive(
    session: Session,
    *,
    cipher: AddressCipher,
    form: Mapping[str, str],
    now: dt.datetime | None = None,
) -> InboundResult:
    """One message (the simulator, and the webhook's consent keywords): stored as ``store``
    does, then a keyword is acted on in the same transaction."""
    now = now or utcnow()
    item = prepare(form)
    outcome = store(session, cipher=cipher, items=[item], now=now)[0]
    if isinstance(outcome, Exception):
        raise outcome
    if outcome.duplicate or item.keyword is None:
        return outcome
    assert outcome.contact_id is not None and outcome.sender_id is not None
    _handle_keyword(
        session,
        contact=session.get_one(Contact, outcome.contact_id, populate_existing=True),
        sender=session.get_one(Sender, outcome.sender_id),
        kind=item.keyword.kind,
        twilio_handled=item.keyword.reported_by_twilio,
        now=now,
    )
    log.info("inbound.keyword", message_id=outcome.message_id, keyword=item.keyword.kind.value)
    return outcome


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
