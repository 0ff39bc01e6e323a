from __future__ import annotations

import datetime as dt
import tempfile
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from api.deps import AdminDep, CipherDep, ManagerDep, SessionDep, SettingsDep
from campaigns.contacts import service
from campaigns.contacts.importer import import_contacts
from campaigns.contacts.models import Contact
from campaigns.errors import InvalidInput, NotFound, TooLarge
from campaigns.organizations.service import current_org
from campaigns.phones import normalize_country

router = APIRouter(prefix="/v1/contacts", tags=["contacts"])

SPOOL_BYTES = 1_000_000


class ContactOut(BaseModel):
    """A contact without their number: the number is never listed, only revealed to an admin."""

    id: int
    channel: str
    country: str
    language: str
    consent: str
    community_ids: list[int]
    last_inbound_at: dt.datetime | None
    is_simulated: bool
    erased: bool
    created_at: dt.datetime

    @classmethod
    def of(cls, c: Contact, community_ids: list[int]) -> ContactOut:
        return cls(
            id=c.id,
            channel=c.channel.value,
            country=c.country,
            language=c.language,
            consent=c.consent.value,
            community_ids=community_ids,
            last_inbound_at=c.last_inbound_at,
            is_simulated=c.is_simulated,
            erased=c.erased,
            created_at=c.created_at,
        )


def _out(session: Session, contact: Contact) -> ContactOut:
    return ContactOut.of(contact, service.community_ids_of(session, [contact.id])[contact.id])


class ContactPage(BaseModel):
    items: list[ContactOut]
    next_cursor: str | None


class ContactCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone: str = Field(min_length=1, max_length=40, description="E.164, e.g. +5215512345678")
    channel: str = Field(default="whatsapp", description="whatsapp or sms")
    language: str | None = Field(default=None, max_length=2)
    community_ids: list[int] = Field(default_factory=list, max_length=100)
    consent: bool | None = Field(default=None, description="true: opted in; false: opted out")


class ContactUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    language: str | None = Field(default=None, max_length=2)
    community_ids: list[int] | None = Field(default=None, max_length=100)


class ContactLookup(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone: str = Field(min_length=1, max_length=40)
    channel: str = "whatsapp"


class RevealedAddress(BaseModel):
    id: int
    channel: str
    phone: str


@router.get("")
def list_contacts(
    session: SessionDep,
    principal: ManagerDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, description="page size, at most FARO_PAGE_SIZE_MAX")] = 100,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    community_id: int | None = None,
    language: Annotated[str | None, Query(max_length=2)] = None,
    channel: Annotated[str | None, Query(max_length=10)] = None,
    country: Annotated[str | None, Query(max_length=2)] = None,
    consent: Annotated[str | None, Query(max_length=20)] = None,
    erased: bool | None = None,
) -> ContactPage:
    if limit > settings.page_size_max:
        raise InvalidInput(f"limit must be at most {settings.page_size_max}", field="limit")
    rows, nxt = service.list_contacts(
        session,
        filters=service.ContactFilter(
            community_id=community_id,
            language=language,
            channel=channel,
            country=country,
            consent=consent,
            erased=erased,
        ),
        limit=limit,
        cursor=cursor,
    )
    memberships = service.community_ids_of(session, [c.id for c in rows])
    return ContactPage(items=[ContactOut.of(c, memberships[c.id]) for c in rows], next_cursor=nxt)


@router.post("", status_code=status.HTTP_201_CREATED)
def create(
    body: ContactCreate, session: SessionDep, principal: ManagerDep, cipher: CipherDep
) -> ContactOut:
    contact = service.create_contact(
        session,
        cipher=cipher,
        channel=body.channel,
        phone=body.phone,
        language=body.language,
        community_ids=body.community_ids,
        consent=body.consent,
    )
    return _out(session, contact)


@router.post("/lookup")
def lookup(
    body: ContactLookup, session: SessionDep, principal: ManagerDep, cipher: CipherDep
) -> ContactOut:
    """Find a contact by number (in the body, so it never lands in a URL or access log)."""
    contact = service.find_by_address(
        session, cipher=cipher, channel=body.channel, phone=body.phone
    )
    if contact is None:
        raise NotFound("no contact with this number and channel")
    return _out(session, contact)


@router.post("/import")
async def import_csv(
    request: Request,
    session: SessionDep,
    principal: ManagerDep,
    cipher: CipherDep,
    settings: SettingsDep,
    channel: Annotated[str, Query(max_length=10)] = "whatsapp",
    community_id: int | None = None,
    default_country: Annotated[str | None, Query(max_length=2)] = None,
    strict: bool = False,
) -> dict[str, Any]:
    """Import contacts from a UTF-8 CSV sent as the request body (``Content-Type: text/csv``).

    Columns: ``phone`` (required), and optionally ``language``, ``community`` (a community
    name), ``consent`` (yes/no), ``channel``.  Returns a report with every rejected row and
    why.  ``strict=true`` imports nothing if any row is rejected.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ("text/csv", "application/csv", "text/plain"):
        raise InvalidInput("send the file as the body with Content-Type: text/csv", field="body")
    country = (
        normalize_country(default_country, field="default_country") if default_country else None
    )
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > settings.max_import_bytes:
                raise TooLarge(
                    f"the file is larger than {settings.max_import_bytes} bytes", field="body"
                )
            spool.write(chunk)
        spool.seek(0)
        report = await run_in_threadpool(
            import_contacts,
            session,
            cipher=cipher,
            organization_id=current_org(session),
            stream=spool,
            channel=channel,
            community_id=community_id,
            default_country=country,
            strict=strict,
            max_rows=settings.max_import_rows,
        )
    return report.as_dict()


@router.get("/{contact_id}")
def get(contact_id: int, session: SessionDep, principal: ManagerDep) -> ContactOut:
    return _out(session, service.get_contact(session, contact_id))


@router.patch("/{contact_id}")
def update(
    contact_id: int, body: ContactUpdate, session: SessionDep, principal: ManagerDep
) -> ContactOut:
    contact = service.update_contact(
        session,
        contact=service.get_contact(session, contact_id),
        language=body.language,
        community_ids=body.community_ids,
    )
    return _out(session, contact)


@router.post("/{contact_id}/erase")
def erase(contact_id: int, session: SessionDep, principal: ManagerDep) -> ContactOut:
    """Forget this person's number, profile name and message bodies; counts stay."""
    contact = service.erase_contact(session, contact=service.get_contact(session, contact_id))
    return _out(session, contact)


@router.post("/{contact_id}/reveal")
def reveal(
    contact_id: int, session: SessionDep, principal: AdminDep, cipher: CipherDep
) -> RevealedAddress:
    """Admins only: this one contact's number in plain text.  The read is audit-logged."""
    contact = service.get_contact(session, contact_id)
    phone = service.reveal_address(session, cipher=cipher, contact=contact)
    return RevealedAddress(id=contact.id, channel=contact.channel.value, phone=phone)
