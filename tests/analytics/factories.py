"""Seeding what the rollups read: deliveries and their messages, Twilio status callbacks (through
the real ``record_status``), inbound messages, assistant turns, feedback, handovers, clicks.

The planner and the assistant are not run here (they have their own tests): their output rows
are written as they write them.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.assistant.models import Feedback, Handover, HandoverStatus, Turn
from campaigns.communities import Community
from campaigns.contacts.models import Contact
from campaigns.crypto import AddressCipher
from campaigns.messaging.models import Direction, Message, MessageStatus, Purpose
from campaigns.messaging.status import record_status
from campaigns.organizations.models import Organization, Role, User
from campaigns.outreach.engagement import LinkClick, PollResponse, TrackedLink
from campaigns.outreach.models import (
    Campaign,
    CampaignDelivery,
    CampaignKind,
    CampaignRun,
    DeliveryStatus,
    RunStatus,
)
from tests.campaigns_engine.factories import make_campaign
from tests.factories import (
    make_community,
    make_contact,
    make_organization,
    make_user,
    random_mobile,
)

DAY = dt.date(2026, 11, 20)
T0 = dt.datetime(2026, 11, 20, 15, 0, tzinfo=dt.UTC)

_seq = itertools.count(1)
_used: set[str] = set()


def make_person(
    db: Session,
    *,
    org: Organization,
    cipher: AddressCipher,
    community: Community,
    language: str | None = None,
) -> Contact:
    """A contact of ``community`` with a number no other test contact has."""
    phone = random_mobile(org.country)
    while phone in _used:
        phone = random_mobile(org.country)
    _used.add(phone)
    return make_contact(
        db, org=org, cipher=cipher, phone=phone, communities=[community], language=language
    )


@dataclass
class World:
    org: Organization
    admin: User
    community: Community
    contacts: list[Contact]
    campaign: Campaign
    other_community: Community
    others: list[Contact] = field(default_factory=list)


def make_world(
    db: Session,
    *,
    cipher: AddressCipher,
    contacts: int = 6,
    others: int = 0,
    kind: CampaignKind = CampaignKind.announcement,
    name: str | None = None,
) -> World:
    org = make_organization(db)
    admin = make_user(db, org=org, role=Role.admin)
    community = make_community(db, org=org, name=name or f"Pueblo {next(_seq)}")
    other = make_community(db, org=org, name=f"Otro {next(_seq)}")
    people = [make_person(db, org=org, cipher=cipher, community=community) for _ in range(contacts)]
    outside = [make_person(db, org=org, cipher=cipher, community=other) for _ in range(others)]
    campaign = make_campaign(db, org=org, author=admin, communities=[community, other], kind=kind)
    return World(org, admin, community, people, campaign, other, outside)


def deliver(
    db: Session,
    *,
    campaign: Campaign,
    community: Community,
    contact: Contact,
    at: dt.datetime = T0,
    language: str = "es",
) -> Message:
    """One planned delivery and its outbound campaign message, as dispatch leaves them."""
    run = db.scalar(
        select(CampaignRun).where(
            CampaignRun.campaign_id == campaign.id,
            CampaignRun.community_id == community.id,
            CampaignRun.scheduled_for == at,
        )
    )
    if run is None:
        run = CampaignRun(
            organization_id=campaign.organization_id,
            campaign_id=campaign.id,
            community_id=community.id,
            scheduled_for=at,
            due_at=at,
            status=RunStatus.dispatching,
            campaign_version=campaign.version,
        )
        db.add(run)
        db.flush()
    message = Message(
        organization_id=campaign.organization_id,
        contact_id=contact.id,
        direction=Direction.outbound,
        channel=contact.channel,
        status=MessageStatus.queued,
        status_rank=MessageStatus.queued.rank,
        purpose=Purpose.campaign,
        campaign_id=campaign.id,
        twilio_sid="SM" + uuid.uuid4().hex,
        segments=1,
        created_at=at,
    )
    db.add(message)
    db.flush()
    db.add(
        CampaignDelivery(
            organization_id=campaign.organization_id,
            run_id=run.id,
            campaign_id=campaign.id,
            community_id=community.id,
            contact_id=contact.id,
            occurrence_key=at.isoformat()[:16],
            message_id=message.id,
            status=DeliveryStatus.queued,
            language=language,
            send_after=at,
            created_at=at,
        )
    )
    db.flush()
    return message


def callback(
    db: Session, message: Message, status: str, *, at: dt.datetime, error_code: int | None = None
) -> None:
    """Twilio's status callback, through the real ingestion."""
    form = {"MessageSid": message.twilio_sid or "", "MessageStatus": status}
    if error_code is not None:
        form["ErrorCode"] = str(error_code)
    assert record_status(db, form=form, now=at).known


def inbound(db: Session, *, contact: Contact, at: dt.datetime, body: str = "hola") -> Message:
    message = Message(
        organization_id=contact.organization_id,
        contact_id=contact.id,
        direction=Direction.inbound,
        channel=contact.channel,
        status=MessageStatus.received,
        status_rank=MessageStatus.received.rank,
        twilio_sid="SM" + uuid.uuid4().hex,
        body=body,
        created_at=at,
    )
    db.add(message)
    db.flush()
    return message


def turn(
    db: Session,
    *,
    contact: Contact,
    community: Community | None,
    topic: str | None,
    at: dt.datetime,
    answered: bool = True,
    language: str = "es",
    useful: bool | None = None,
) -> Turn:
    """An inbound message the assistant handled (and, with ``useful``, feedback on it)."""
    message = inbound(db, contact=contact, at=at)
    row = Turn(
        organization_id=contact.organization_id,
        message_id=message.id,
        community_id=community.id if community else None,
        language=language,
        intent=topic,
        topic=topic,
        answered=answered,
        source="rasa",
        created_at=at,
    )
    db.add(row)
    if useful is not None and topic is not None:
        db.add(
            Feedback(
                organization_id=contact.organization_id,
                message_id=message.id,
                community_id=community.id if community else None,
                topic=topic,
                language=language,
                useful=useful,
                created_at=at,
            )
        )
    db.flush()
    return row


def handover(
    db: Session,
    *,
    contact: Contact,
    community: Community,
    opened: dt.datetime,
    closed: dt.datetime | None = None,
) -> Handover:
    row = Handover(
        organization_id=contact.organization_id,
        contact_id=contact.id,
        community_id=community.id,
        language="es",
        opened_at=opened,
        status=HandoverStatus.closed if closed else HandoverStatus.open,
        closed_at=closed,
    )
    db.add(row)
    db.flush()
    return row


def click(
    db: Session,
    *,
    campaign: Campaign,
    community: Community,
    at: dt.datetime,
    family: str = "android",
) -> None:
    link = db.scalar(
        select(TrackedLink).where(
            TrackedLink.campaign_id == campaign.id, TrackedLink.community_id == community.id
        )
    )
    if link is None:
        link = TrackedLink(
            organization_id=campaign.organization_id,
            code=uuid.uuid4().hex[:8],
            campaign_id=campaign.id,
            community_id=community.id,
            url="https://www.gob.mx/inm",
        )
        db.add(link)
        db.flush()
    db.add(LinkClick(link_id=link.id, clicked_at=at, user_agent_family=family))
    db.flush()


def answer_poll(
    db: Session,
    *,
    campaign: Campaign,
    community: Community,
    contact: Contact,
    option: int,
    at: dt.datetime,
) -> None:
    """A poll answer as ``record_poll_reply`` stores it: a later one replaces the earlier."""
    message = inbound(db, contact=contact, at=at, body=str(option))
    row = db.scalar(
        select(PollResponse).where(
            PollResponse.campaign_id == campaign.id, PollResponse.contact_id == contact.id
        )
    )
    if row is None:
        db.add(
            PollResponse(
                organization_id=campaign.organization_id,
                campaign_id=campaign.id,
                option_number=option,
                contact_id=contact.id,
                community_id=community.id,
                language=contact.language,
                message_id=message.id,
                created_at=at,
            )
        )
    else:
        row.option_number = option
        row.message_id = message.id
        row.created_at = at
    db.flush()
