"""The simulator channel: chat with Faro as a migrant would, without Twilio and without a network.

A person picks a simulated contact (or makes up a new one) and a simulated sender of an
organization, and writes.  ``simulate_inbound`` builds the very form Twilio would post and hands
it to ``campaigns.messaging.inbound.receive``, so consent keywords, storage and the assistant work
exactly as on WhatsApp or SMS.  Replies are stored and marked ``simulated`` by the send task,
whose gateway never calls Twilio for a simulated sender or contact.

The simulator only ever touches simulated rows: a real sender or a real contact is refused with
``PermissionDenied`` before anything is written.  Simulated numbers are not people, so they are
shown decrypted here.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import phonenumbers
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.communities import Community, validate_language
from campaigns.contacts.models import Channel, Contact, ContactCommunity
from campaigns.contacts.service import create_contact
from campaigns.crypto import AddressCipher
from campaigns.db import get_or_404, utcnow
from campaigns.errors import InvalidInput, NotFound, PermissionDenied
from campaigns.messaging import inbound
from campaigns.messaging.models import Direction, Message, Sender
from campaigns.messaging.senders import create_sender
from campaigns.phones import normalize_country, parse_mobile

# Twilio's documented test numbers are +1 500 555 xxxx (+15005550006 is its "valid" From); no
# real line has them, so a simulated sender can never be mistaken for, or collide with, a real one.
TEST_PREFIX = "+1500555"
# Not Twilio's: any AccountSid that cannot be a real account, so a simulated form is recognisable.
SIMULATED_ACCOUNT_SID = "AC" + "0" * 32
MAX_CONVERSATION = 500
MAX_LISTED_CONTACTS = 200
_IDENTITY_ATTEMPTS = 200

_rng = random.SystemRandom()


@dataclass(frozen=True)
class SimulatedContact:
    id: int
    phone: str
    channel: str
    country: str
    language: str
    consent: str
    community_ids: list[int]
    community_names: list[str]
    last_inbound_at: dt.datetime | None


@dataclass(frozen=True)
class ConversationMessage:
    id: int
    direction: str
    body: str | None
    status: str
    kind: str
    purpose: str | None
    # Inbound: the assistant (or a keyword) has dealt with it.
    handled: bool
    created_at: dt.datetime


@dataclass(frozen=True)
class SimulatedInbound:
    message_id: int | None
    contact_id: int
    keyword: str | None
    duplicate: bool


def _sender_addresses(organization_id: int, channel: Channel) -> Iterator[str]:
    """Deterministic test numbers for one organization's simulated sender on ``channel``.

    WhatsApp takes the odd slot and SMS the even one (organization 3: …0005 and …0006).  Should
    a slot be taken (someone registered it by hand), one more digit gives further candidates;
    those are not dialable numbers at all, which is just as safe.
    """
    slot = organization_id * 2 - (1 if channel == Channel.whatsapp else 0)
    base = f"{TEST_PREFIX}{slot:04d}"
    yield base
    for extra in range(10):
        candidate = f"{base}{extra}"
        if len(candidate) <= 16:
            yield candidate


def ensure_demo_senders(session: Session, organization_id: int) -> list[Sender]:
    """The organization's simulated WhatsApp and SMS senders, created if missing.  Idempotent."""
    senders: list[Sender] = []
    for channel in (Channel.whatsapp, Channel.sms):
        existing = session.scalar(
            select(Sender)
            .where(
                Sender.organization_id == organization_id,
                Sender.channel == channel,
                Sender.is_simulated.is_(True),
            )
            .order_by(Sender.id)
            .limit(1)
        )
        if existing is None:
            address = next(
                (
                    a
                    for a in _sender_addresses(organization_id, channel)
                    if session.scalar(
                        select(Sender.id)
                        .where(Sender.channel == channel, Sender.address == a)
                        .execution_options(skip_org_scope=True)
                    )
                    is None
                ),
                None,
            )
            if address is None:
                raise InvalidInput(
                    "no free test number for a simulated sender", field="organization_id"
                )
            existing = create_sender(
                session,
                organization_id=organization_id,
                channel=channel.value,
                address=address,
                is_simulated=True,
            )
        senders.append(existing)
    return senders


def simulated_senders(session: Session, *, organization_id: int) -> list[Sender]:
    return list(
        session.scalars(
            select(Sender)
            .where(Sender.organization_id == organization_id, Sender.is_simulated.is_(True))
            .order_by(Sender.id)
        )
    )


def new_identity(country: str, *, rng: random.Random | None = None) -> str:
    """A valid mobile number of ``country`` in E.164, random on each call.

    Built from the country's example mobile number with random last digits, and checked with
    the same parser the inbound webhook uses, so the simulator never offers a number Faro would
    refuse.  ``InvalidInput`` for an unknown country or one without a usable mobile plan.
    """
    code = normalize_country(country)
    rng = rng or _rng
    example = phonenumbers.example_number_for_type(code, phonenumbers.PhoneNumberType.MOBILE)
    if example is None:
        raise InvalidInput(f"no mobile numbers are known for {code}", field="country")
    # With its leading zeros (Benin's 01…, Côte d'Ivoire's 01…), which ``national_number`` drops.
    national = phonenumbers.national_significant_number(example)
    keep = max(len(national) - 4, 1)
    for _ in range(_IDENTITY_ATTEMPTS):
        tail = "".join(str(rng.randrange(10)) for _ in range(len(national) - keep))
        candidate = f"+{example.country_code}{national[:keep]}{tail}"
        try:
            parsed = parse_mobile(candidate)
        except InvalidInput:
            continue
        # Åland shares Finland's numbers: such a number is Finnish to the parser, and valid here.
        if parsed.country == code or phonenumbers.is_valid_number_for_region(
            phonenumbers.parse(parsed.e164), code
        ):
            return parsed.e164
    raise InvalidInput(f"could not make up a mobile number for {code}", field="country")


def _simulated_sender(session: Session, sender_id: int) -> Sender:
    sender = get_or_404(session, Sender, sender_id, "sender")
    if not sender.is_simulated:
        raise PermissionDenied(
            "the simulator only writes through simulated senders", field="sender_id"
        )
    return sender


def _contact_for(
    session: Session, *, cipher: AddressCipher, sender: Sender, e164: str
) -> Contact | None:
    """The contact ``receive`` would pick for this number, refused if it is a real person."""
    contact = session.scalar(
        select(Contact).where(
            Contact.organization_id == sender.organization_id,
            Contact.channel == sender.channel,
            Contact.address_hash == cipher.lookup_hash(sender.channel.value, e164),
        )
    )
    if contact is not None and not contact.is_simulated:
        raise PermissionDenied(
            "this number belongs to a real contact: the simulator never writes as one",
            field="phone",
        )
    return contact


def simulate_inbound(
    session: Session,
    *,
    cipher: AddressCipher,
    sender_id: int,
    phone: str,
    body: str,
    community_id: int | None = None,
    language: str | None = None,
    profile_name: str | None = None,
    now: dt.datetime | None = None,
) -> SimulatedInbound:
    """A simulated contact writes ``body`` to a simulated sender, through the real pipeline.

    ``community_id`` and ``language`` apply to a contact's first message only, as a real person's
    community and language are set once and then changed by managers: the contact is created
    with them just before ``receive``, so even a first STOP is confirmed in the chosen language.
    Without them ``receive`` creates the contact as it would for a real number.
    """
    now = now or utcnow()
    sender = _simulated_sender(session, sender_id)
    e164 = parse_mobile(phone).e164
    if not body.strip():
        raise InvalidInput("a message needs a body", field="body")
    if len(body) > inbound.MAX_BODY:
        raise InvalidInput(f"body is longer than {inbound.MAX_BODY} characters", field="body")
    if "\x00" in body:
        raise InvalidInput("body contains a NUL character", field="body")
    chosen_language = validate_language(language) if language is not None else None
    community: Community | None = None
    if community_id is not None:
        community = session.get(Community, community_id)
        if community is None or community.organization_id != sender.organization_id:
            raise NotFound(f"community {community_id} not found", field="community_id")

    contact = _contact_for(session, cipher=cipher, sender=sender, e164=e164)
    if contact is None and (community is not None or chosen_language is not None):
        contact = create_contact(
            session,
            cipher=cipher,
            organization_id=sender.organization_id,
            channel=sender.channel.value,
            phone=e164,
            language=chosen_language,
            community_ids=[community.id] if community is not None else [],
            is_simulated=True,
            now=now,
        )

    prefix = "whatsapp:" if sender.channel == Channel.whatsapp else ""
    form = {
        "MessageSid": "SM" + uuid.uuid4().hex,
        "AccountSid": SIMULATED_ACCOUNT_SID,
        "From": prefix + e164,
        "To": prefix + sender.address,
        "Body": body,
        "NumMedia": "0",
        "ApiVersion": "2010-04-01",
    }
    if profile_name and profile_name.strip() and sender.channel == Channel.whatsapp:
        form["ProfileName"] = profile_name.strip()
    result = inbound.receive(session, cipher=cipher, form=form, now=now)
    contact = contact or _contact_for(session, cipher=cipher, sender=sender, e164=e164)
    if contact is None:  # pragma: no cover - receive always leaves a contact for the number
        raise NotFound("the simulated contact could not be found", field="phone")
    return SimulatedInbound(
        message_id=result.message_id,
        contact_id=contact.id,
        keyword=result.keyword.value if result.keyword is not None else None,
        duplicate=result.duplicate,
    )


def conversation(
    session: Session,
    *,
    cipher: AddressCipher,
    sender_id: int,
    phone: str,
    after_id: int = 0,
    limit: int = 200,
) -> list[ConversationMessage]:
    """The simulated contact's messages with this sender, in and out, in id order.

    Empty for a number that has not written yet.  ``after_id`` lets the page poll for what is new.
    """
    if not 1 <= limit <= MAX_CONVERSATION:
        raise InvalidInput(f"limit must be between 1 and {MAX_CONVERSATION}", field="limit")
    if after_id < 0:
        raise InvalidInput("after_id must not be negative", field="after_id")
    sender = _simulated_sender(session, sender_id)
    contact = _contact_for(session, cipher=cipher, sender=sender, e164=parse_mobile(phone).e164)
    if contact is None:
        return []
    rows = session.scalars(
        select(Message)
        .where(
            Message.contact_id == contact.id,
            Message.sender_id == sender.id,
            Message.id > after_id,
        )
        .order_by(Message.id)
        .limit(limit)
    )
    return [
        ConversationMessage(
            id=m.id,
            direction=m.direction.value,
            body=m.body,
            status=m.status.value,
            kind=m.kind,
            purpose=m.purpose.value if m.purpose is not None else None,
            handled=m.direction == Direction.inbound and m.handled_at is not None,
            created_at=m.created_at,
        )
        for m in rows
    ]


def _communities_of(session: Session, contact_ids: Sequence[int]) -> dict[int, list[Community]]:
    result: dict[int, list[Community]] = {cid: [] for cid in contact_ids}
    if not contact_ids:
        return result
    rows = session.execute(
        select(ContactCommunity.contact_id, Community)
        .join(Community, Community.id == ContactCommunity.community_id)
        .where(ContactCommunity.contact_id.in_(contact_ids))
        .order_by(ContactCommunity.contact_id, Community.name)
    )
    for contact_id, community in rows:
        result[contact_id].append(community)
    return result


def simulated_contacts(
    session: Session, *, cipher: AddressCipher, organization_id: int
) -> list[SimulatedContact]:
    """The organization's simulated contacts that still have a number, newest first."""
    contacts = list(
        session.scalars(
            select(Contact)
            .where(
                Contact.organization_id == organization_id,
                Contact.is_simulated.is_(True),
                Contact.erased.is_(False),
                Contact.address_ciphertext.is_not(None),
            )
            .order_by(Contact.id.desc())
            .limit(MAX_LISTED_CONTACTS)
        )
    )
    communities = _communities_of(session, [c.id for c in contacts])
    return [
        SimulatedContact(
            id=c.id,
            phone=cipher.decrypt(c.address_ciphertext or b""),
            channel=c.channel.value,
            country=c.country,
            language=c.language,
            consent=c.consent.value,
            community_ids=[k.id for k in communities[c.id]],
            community_names=[k.name for k in communities[c.id]],
            last_inbound_at=c.last_inbound_at,
        )
        for c in contacts
    ]
