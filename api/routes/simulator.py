"""The simulator: a page at ``/simulator`` and its JSON API under ``/simulator/api``.

A development tool for simulated data only.  It is off in production (every route answers 404,
as if it did not exist) and, wherever it is on, it reads and writes nothing but simulated
senders and contacts (``campaigns.simulator`` refuses the rest with 403).  It needs no token:
the organization comes from the request's ``organization_id``, and the session is confined to
that organization, as a principal's would be.

Messages go through the same pipeline as the Twilio webhook; the assistant's replies come from
the workers after the commit, so the page polls ``GET /simulator/api/messages``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from api.deps import CipherDep, SessionDep, SettingsDep
from campaigns import simulator
from campaigns.communities import Community
from campaigns.db import scope_session
from campaigns.errors import NotFound
from campaigns.languages import LANGUAGES
from campaigns.messaging.inbound import MAX_BODY
from campaigns.organizations.models import Organization
from campaigns.settings import Settings

PAGE = Path(__file__).resolve().parent.parent / "web" / "simulator.html"


def simulator_enabled(settings: Settings) -> bool:
    """Everywhere but production: there, simulated conversations have no business."""
    return settings.env != "production"


def _require_enabled(settings: SettingsDep) -> None:
    if not simulator_enabled(settings):
        raise NotFound("not found")


router = APIRouter(
    prefix="/simulator",
    tags=["simulator"],
    include_in_schema=False,
    dependencies=[Depends(_require_enabled)],
)


class CommunityOut(BaseModel):
    id: int
    name: str
    country: str
    default_language: str


class SenderOut(BaseModel):
    id: int
    channel: str
    address: str


class ContactOut(BaseModel):
    id: int
    phone: str
    channel: str
    country: str
    language: str
    consent: str
    community_ids: list[int]
    community_names: list[str]
    last_inbound_at: dt.datetime | None


class OrganizationSetup(BaseModel):
    id: int
    name: str
    country: str
    communities: list[CommunityOut]
    senders: list[SenderOut]
    contacts: list[ContactOut]


class Setup(BaseModel):
    languages: list[str]
    organizations: list[OrganizationSetup]


class IdentityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    country: str = Field(min_length=2, max_length=2, description="ISO 3166-1 alpha-2")


class IdentityOut(BaseModel):
    phone: str
    country: str


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    organization_id: int
    sender_id: int
    phone: str = Field(min_length=1, max_length=40, description="E.164, e.g. +5215512345678")
    body: str = Field(min_length=1, max_length=MAX_BODY)
    community_id: int | None = Field(default=None, description="joined on the first message")
    language: str | None = Field(default=None, max_length=2, description="set on the first message")
    profile_name: str | None = Field(default=None, max_length=200, description="WhatsApp only")


class MessageAccepted(BaseModel):
    message_id: int | None
    contact_id: int
    keyword: str | None
    duplicate: bool


class MessageOut(BaseModel):
    id: int
    direction: str
    body: str | None
    status: str
    kind: str
    purpose: str | None
    handled: bool
    created_at: dt.datetime


class Conversation(BaseModel):
    messages: list[MessageOut]


@lru_cache(maxsize=1)
def _page() -> tuple[str, str]:
    """The page and its Content-Security-Policy: only its own inline script and style may run."""
    html = PAGE.read_text(encoding="utf-8")

    def hashes(tag: str) -> str:
        blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.DOTALL)
        return " ".join(
            "'sha256-" + base64.b64encode(hashlib.sha256(b.encode()).digest()).decode() + "'"
            for b in blocks
        )

    policy = (
        "default-src 'none'; "
        f"script-src {hashes('script')}; style-src {hashes('style')}; "
        "connect-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return html, policy


@router.get("", response_class=HTMLResponse)
def page() -> HTMLResponse:
    html, policy = _page()
    return HTMLResponse(
        html,
        headers={
            "Content-Security-Policy": policy,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        },
    )


@router.get("/api/setup")
def setup(
    session: SessionDep,
    cipher: CipherDep,
    organization_id: int | None = None,
) -> Setup:
    """Every organization (or one) with its communities, simulated senders and contacts.

    Makes the organization's simulated WhatsApp and SMS senders if it has none yet.
    """
    stmt = select(Organization).order_by(Organization.id)
    if organization_id is not None:
        stmt = stmt.where(Organization.id == organization_id)
    orgs = list(session.scalars(stmt))
    if organization_id is not None and not orgs:
        raise NotFound(f"organization {organization_id} not found", field="organization_id")
    result: list[OrganizationSetup] = []
    for org in orgs:
        simulator.ensure_demo_senders(session, org.id)
        communities = session.scalars(
            select(Community).where(Community.organization_id == org.id).order_by(Community.name)
        )
        result.append(
            OrganizationSetup(
                id=org.id,
                name=org.name,
                country=org.country,
                communities=[
                    CommunityOut(
                        id=c.id, name=c.name, country=c.country, default_language=c.default_language
                    )
                    for c in communities
                ],
                senders=[
                    SenderOut(id=s.id, channel=s.channel.value, address=s.address)
                    for s in simulator.simulated_senders(session, organization_id=org.id)
                ],
                contacts=[
                    ContactOut.model_validate(c, from_attributes=True)
                    for c in simulator.simulated_contacts(
                        session, cipher=cipher, organization_id=org.id
                    )
                ],
            )
        )
    return Setup(languages=list(LANGUAGES), organizations=result)


@router.post("/api/identities", status_code=status.HTTP_201_CREATED)
def identity(body: IdentityIn) -> IdentityOut:
    """A new random mobile number of the country, one Faro would accept from Twilio."""
    phone = simulator.new_identity(body.country)
    return IdentityOut(phone=phone, country=body.country.upper())


@router.post("/api/messages", status_code=status.HTTP_201_CREATED)
def send(body: MessageIn, session: SessionDep, cipher: CipherDep) -> MessageAccepted:
    """The simulated contact writes to the simulated sender; answered later by the workers."""
    scope_session(session, body.organization_id)
    result = simulator.simulate_inbound(
        session,
        cipher=cipher,
        sender_id=body.sender_id,
        phone=body.phone,
        body=body.body,
        community_id=body.community_id,
        language=body.language,
        profile_name=body.profile_name,
    )
    return MessageAccepted.model_validate(result, from_attributes=True)


@router.get("/api/messages")
def messages(
    session: SessionDep,
    cipher: CipherDep,
    organization_id: int,
    sender_id: int,
    phone: Annotated[str, Query(min_length=1, max_length=40)],
    after_id: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=simulator.MAX_CONVERSATION)] = 200,
) -> Conversation:
    """The conversation of a simulated contact with a simulated sender, after ``after_id``."""
    scope_session(session, organization_id)
    rows = simulator.conversation(
        session, cipher=cipher, sender_id=sender_id, phone=phone, after_id=after_id, limit=limit
    )
    return Conversation(messages=[MessageOut.model_validate(m, from_attributes=True) for m in rows])
