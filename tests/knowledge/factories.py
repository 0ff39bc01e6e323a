"""Typed factories for the knowledge base, writing through the real services."""

from __future__ import annotations

import datetime as dt
import itertools

from sqlalchemy.orm import Session

from campaigns.communities import Community
from campaigns.knowledge.entries import create_entry
from campaigns.knowledge.hotlines import create_hotline
from campaigns.knowledge.hubs import create_hub
from campaigns.knowledge.models import Hotline, InfoHub, KnowledgeEntry
from campaigns.organizations.models import Organization

SOURCE = "https://www.gob.mx/comar"
NAMES = {
    "es": "Línea de prueba",
    "en": "Test line",
    "ht": "Liy tès",
    "fr": "Ligne de test",
}

_seq = itertools.count(1)


def make_entry(
    db: Session,
    *,
    org: Organization,
    topic: str = "asylum_protection",
    language: str = "es",
    country: str | None = None,
    body: str | None = None,
    reviewed_on: dt.date = dt.date(2026, 11, 1),
    review_due: dt.date | None = None,
    is_active: bool = True,
) -> KnowledgeEntry:
    return create_entry(
        db,
        organization_id=org.id,
        topic=topic,
        language=language,
        country=country,
        body=body or f"Respuesta de prueba {next(_seq)}",
        source_url=SOURCE,
        reviewed_on=reviewed_on,
        review_due=review_due,
        is_active=is_active,
    )


def make_hotline(
    db: Session,
    *,
    org: Organization,
    country: str = "MX",
    number: str | None = None,
    topics: list[str] | None = None,
    is_active: bool = True,
) -> Hotline:
    return create_hotline(
        db,
        organization_id=org.id,
        country=country,
        number=number or f"800 {next(_seq):03d} 0000",
        names=NAMES,
        topics=topics or ["human_trafficking"],
        source_url=SOURCE,
        reviewed_on=dt.date(2026, 11, 1),
        is_active=is_active,
    )


def make_hub(
    db: Session, *, community: Community, name: str | None = None, is_active: bool = True
) -> InfoHub:
    return create_hub(
        db,
        organization_id=community.organization_id,
        community_id=community.id,
        name=name or f"Punto de información {next(_seq)}",
        address="Calle de prueba 1",
        opening_hours="Lunes a viernes, 9:00-15:00",
        services=["Orientación"],
        is_active=is_active,
    )
