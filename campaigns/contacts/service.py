"""Contacts: create, find, list, update, record consent, reveal and erase."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session

from campaigns import audit
from campaigns.communities import Community, validate_language
from campaigns.contacts.models import (
    Channel,
    ConsentEvent,
    ConsentSource,
    ConsentState,
    Contact,
    ContactCommunity,
)
from campaigns.crypto import AddressCipher
from campaigns.db import get_or_404, session_org, utcnow
from campaigns.errors import Conflict, InvalidInput, NotFound
from campaigns.languages import default_language_for_country
from campaigns.messaging.models import Message
from campaigns.pagination import decode_cursor, encode_cursor
from campaigns.phones import parse_mobile


def _channel(value: str) -> Channel:
    try:
        return Channel(value.strip().lower())
    except ValueError as exc:
        raise InvalidInput(
            f"unknown channel {value!r}: use whatsapp or sms", field="channel"
        ) from exc


def _communities(session: Session, ids: Sequence[int]) -> list[Community]:
    wanted = sorted(set(ids))
    if not wanted:
        return []
    found = list(session.scalars(select(Community).where(Community.id.in_(wanted))))
    missing = set(wanted) - {c.id for c in found}
    if missing:
        raise InvalidInput(f"unknown community {sorted(missing)[0]}", field="community_ids")
    return found


def find_by_address(
    session: Session, *, cipher: AddressCipher, channel: str, phone: str
) -> Contact | None:
    parsed = parse_mobile(phone)
    ch = _channel(channel)
    return session.scalar(
        select(Contact).where(
            Contact.channel == ch,
            Contact.address_hash == cipher.lookup_hash(ch.value, parsed.e164),
        )
    )


def create_contact(
    session: Session,
    *,
    cipher: AddressCipher,
    channel: str,
    phone: str,
    language: str | None = None,
    community_ids: Sequence[int] = (),
    consent: bool | None = None,
    consent_source: ConsentSource = ConsentSource.api,
    is_simulated: bool = False,
    default_country: str | None = None,
    organization_id: int | None = None,
    now: dt.datetime | None = None,
) -> Contact:
    org_id = organization_id or session_org(session)
    if org_id is None:
        raise InvalidInput("organization is required", field="organization_id")
    now = now or utcnow()
    ch = _channel(channel)
    parsed = parse_mobile(phone, default_country=default_country)
    communities = _communities(session, community_ids)
    address_hash = cipher.lookup_hash(ch.value, parsed.e164)
    if session.scalar(
        select(Contact.id).where(
            Contact.organization_id == org_id,
            Contact.channel == ch,
            Contact.address_hash == address_hash,
        )
    ):
        raise Conflict("a contact with this number and channel exists already", field="phone")
    if language is None:
        language = (
            communities[0].default_language
            if communities
            else default_language_for_country(parsed.country)
        )
    contact = Contact(
        organization_id=org_id,
        channel=ch,
        address_ciphertext=cipher.encrypt(parsed.e164),
        address_hash=address_hash,
        country=parsed.country,
        language=validate_language(language),
        is_simulated=is_simulated,
        created_at=now,
        updated_at=now,
    )
    session.add(contact)
    session.flush()
    for community in communities:
        session.add(
            ContactCommunity(contact_id=contact.id, community_id=community.id, joined_at=now)
        )
    if consent is not None:
        set_consent(
            session,
            contact=contact,
            state=ConsentState.opted_in if consent else ConsentState.opted_out,
            source=consent_source,
            now=now,
        )
    session.flush()
    return contact


def set_consent(
    session: Session,
    *,
    contact: Contact,
    state: ConsentState,
    source: ConsentSource,
    detail: str = "",
    now: dt.datetime | None = None,
) -> bool:
    """Move the contact to ``state`` and append the event; returns False if already there."""
    if contact.consent == state:
        return False
    now = now or utcnow()
    contact.consent = state
    contact.consent_changed_at = now
    session.add(
        ConsentEvent(
            organization_id=contact.organization_id,
            contact_id=contact.id,
            state=state,
            source=source,
            detail=detail,
            created_at=now,
        )
    )
    return True


def get_contact(session: Session, contact_id: int) -> Contact:
    contact = get_or_404(session, Contact, contact_id, "contact")
    return contact


def community_ids_of(session: Session, contact_ids: Sequence[int]) -> dict[int, list[int]]:
    result: dict[int, list[int]] = {cid: [] for cid in contact_ids}
    if not contact_ids:
        return result
    rows = session.execute(
        select(ContactCommunity.contact_id, ContactCommunity.community_id)
        .where(ContactCommunity.contact_id.in_(contact_ids))
        .order_by(ContactCommunity.contact_id, ContactCommunity.community_id)
    )
    for contact_id, community_id in rows:
        result[contact_id].append(community_id)
    return result


@dataclass(frozen=True)
class ContactFilter:
    community_id: int | None = None
    language: str | None = None
    channel: str | None = None
    country: str | None = None
    consent: str | None = None
    erased: bool | None = None


def list_contacts(
    session: Session, *, filters: ContactFilter, limit: int, cursor: str | None
) -> tuple[list[Contact], str | None]:
    """A page of contacts in id order; the cursor of the next page, or None at the end."""
    stmt = select(Contact).order_by(Contact.id).limit(limit + 1)
    if cursor:
        stmt = stmt.where(Contact.id > decode_cursor(cursor))
    if filters.community_id is not None:
        stmt = stmt.where(
            exists().where(
                ContactCommunity.contact_id == Contact.id,
                ContactCommunity.community_id == filters.community_id,
            )
        )
    if filters.language is not None:
        stmt = stmt.where(Contact.language == validate_language(filters.language))
    if filters.channel is not None:
        stmt = stmt.where(Contact.channel == _channel(filters.channel))
    if filters.country is not None:
        stmt = stmt.where(Contact.country == filters.country.upper())
    if filters.consent is not None:
        try:
            state = ConsentState(filters.consent)
        except ValueError as exc:
            raise InvalidInput(
                f"unknown consent state {filters.consent!r}", field="consent"
            ) from exc
        stmt = stmt.where(Contact.consent == state)
    if filters.erased is not None:
        stmt = stmt.where(Contact.erased.is_(filters.erased))
    rows = list(session.scalars(stmt))
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor


def update_contact(
    session: Session,
    *,
    contact: Contact,
    language: str | None = None,
    community_ids: Sequence[int] | None = None,
    now: dt.datetime | None = None,
) -> Contact:
    if contact.erased:
        raise Conflict("this contact was erased", field="id")
    now = now or utcnow()
    if language is not None:
        contact.language = validate_language(language)
    if community_ids is not None:
        wanted = {c.id for c in _communities(session, community_ids)}
        current = set(
            session.scalars(
                select(ContactCommunity.community_id).where(
                    ContactCommunity.contact_id == contact.id
                )
            )
        )
        if current - wanted:
            session.execute(
                delete(ContactCommunity).where(
                    ContactCommunity.contact_id == contact.id,
                    ContactCommunity.community_id.in_(current - wanted),
                )
            )
        for community_id in sorted(wanted - current):
            session.add(
                ContactCommunity(contact_id=contact.id, community_id=community_id, joined_at=now)
            )
        if current != wanted:
            audit.record(
                session,
                action="contact.communities_changed",
                object_type="contact",
                object_id=contact.id,
                organization_id=contact.organization_id,
                before={"community_ids": sorted(current)},
                after={"community_ids": sorted(wanted)},
            )
    contact.updated_at = now
    session.flush()
    return contact


def reveal_address(session: Session, *, cipher: AddressCipher, contact: Contact) -> str:
    """The plain number, for an admin who asks for this one contact; the read is audited."""
    if contact.address_ciphertext is None:
        raise NotFound("this contact's number was erased")
    audit.record(
        session,
        action="contact.address_revealed",
        object_type="contact",
        object_id=contact.id,
        organization_id=contact.organization_id,
    )
    return cipher.decrypt(contact.address_ciphertext)


def erase_contact(
    session: Session,
    *,
    contact: Contact,
    now: dt.datetime | None = None,
    keep_address: bool = False,
) -> Contact:
    """Forget the person: number, profile name and message bodies go; anonymous counts stay.

    Idempotent.  The contact row stays (erased, without address) so counts remain right.
    ``keep_address`` erases everything but the number, for the moment between a person's
    BORRAR and the confirmation leaving (the sender completes the erasure).
    """
    if contact.erased:
        return contact
    now = now or utcnow()
    contact.profile_name_ciphertext = None
    contact.updated_at = now
    if not keep_address:
        contact.address_ciphertext = None
        contact.address_hash = None
        contact.erased = True
        contact.erased_at = now
    session.execute(
        update(Message)
        .where(Message.contact_id == contact.id, Message.body.is_not(None))
        .values(body=None)
        .execution_options(synchronize_session=False)
    )
    # The redacted copy of what they asked the assistant and it could not answer goes too.
    from campaigns.assistant.models import UnansweredQuestion

    session.execute(
        update(UnansweredQuestion)
        .where(
            UnansweredQuestion.message_id.in_(
                select(Message.id).where(Message.contact_id == contact.id)
            ),
            UnansweredQuestion.text_redacted != "",
        )
        .values(text_redacted="")
        .execution_options(synchronize_session=False)
    )
    session.flush()
    return contact
