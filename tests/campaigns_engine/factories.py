"""Typed factories for campaigns, writing through the real services."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from campaigns.communities import Community, create_community
from campaigns.organizations.models import Organization, Role, User
from campaigns.outreach import editing, lifecycle
from campaigns.outreach.models import Campaign, CampaignKind
from campaigns.outreach.validation import ContentInput, OptionInput
from tests.factories import make_user

SID = "HX" + "0123456789abcdef" * 2
NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
ONCE = {"type": "once", "local": "2026-12-01T09:00"}

YES_NO = [
    OptionInput(
        number=1,
        labels={"es": "Sí", "ht": "Wi", "en": "Yes", "fr": "Oui"},
        aliases={"es": ["si", "uno", "la primera"], "ht": ["wi"], "fr": ["oui"]},
    ),
    OptionInput(
        number=2,
        labels={"es": "No", "ht": "Non", "en": "No", "fr": "Non"},
        aliases={"es": ["dos", "la segunda"], "ht": ["non"], "fr": ["non"]},
    ),
]


def make_place(
    db: Session,
    *,
    org: Organization,
    name: str,
    timezone: str,
    country: str = "MX",
    language: str = "es",
    quiet: tuple[dt.time, dt.time] | None = None,
) -> Community:
    return create_community(
        db,
        organization_id=org.id,
        name=name,
        country=country,
        timezone=timezone,
        default_language=language,
        quiet_start=quiet[0] if quiet else None,
        quiet_end=quiet[1] if quiet else None,
    )


def make_campaign(
    db: Session,
    *,
    org: Organization,
    author: User,
    communities: Sequence[Community] = (),
    kind: CampaignKind = CampaignKind.announcement,
    schedule: dict[str, Any] | None = None,
    contents: Sequence[ContentInput] | None = None,
    options: Sequence[OptionInput] | None = None,
    fallback_language: str = "es",
    filters: dict[str, Any] | None = None,
    name: str | None = None,
    now: dt.datetime = NOW,
) -> Campaign:
    """A complete draft: targets, content (Spanish SMS + template by default), poll options."""
    if schedule is None:
        schedule = {"type": "drip", "local_time": "10:00"} if kind == CampaignKind.drip else ONCE
    campaign = editing.create_campaign(
        db,
        name=name or f"Campaña {kind.value}",
        topic="scams_fraud",
        kind=kind,
        user_id=author.id,
        organization_id=org.id,
        fallback_language=fallback_language,
        filters=filters,
        schedule=schedule,
        community_ids=[c.id for c in communities],
        now=now,
    )
    if contents is None:
        contents = [
            ContentInput(
                language="es",
                sms_text="Nadie cobra por una cita migratoria. Denuncia al 089.",
                whatsapp_content_sid=SID,
                whatsapp_variables={"1": "089"},
                whatsapp_text="Nadie cobra por una cita migratoria. Denuncia al {{1}}.",
            )
        ]
    editing.set_contents(db, campaign.id, user_id=author.id, rows=contents, now=now)
    if kind == CampaignKind.poll:
        editing.set_options(db, campaign.id, user_id=author.id, options=options or YES_NO, now=now)
    return campaign


def approved(db: Session, campaign: Campaign, *, org: Organization, now: dt.datetime = NOW) -> User:
    """Submit (by its author) and approve (by another manager); returns the approver."""
    assert campaign.created_by_user_id is not None
    lifecycle.submit_campaign(db, campaign.id, user_id=campaign.created_by_user_id, now=now)
    approver = make_user(db, org=org, role=Role.manager)
    lifecycle.approve_campaign(db, campaign.id, user_id=approver.id, now=now)
    return approver
