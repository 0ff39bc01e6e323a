"""Knowledge entries: create, edit, deactivate, their history, and the answer to a question.

An entry's identity is (organization, topic, language, country); to move an answer to another
country or language, create a new entry and deactivate the old one.  Its content (body, source,
review dates, whether it is active) changes by new versions, each appended to the history.
Nothing is cached: ``find_answer`` reads the table, so an edit is answered at once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.communities import validate_language
from campaigns.db import get_or_404, utcnow
from campaigns.errors import Conflict
from campaigns.knowledge.models import KnowledgeEntry, KnowledgeRevision
from campaigns.knowledge.validation import (
    require_org,
    review_dates,
    validate_body,
    validate_source_url,
)
from campaigns.pagination import decode_cursor, encode_cursor
from campaigns.phones import normalize_country
from campaigns.topics import validate_topic


def _append_revision(
    session: Session, entry: KnowledgeEntry, *, user_id: int | None, now: dt.datetime
) -> None:
    session.add(
        KnowledgeRevision(
            organization_id=entry.organization_id,
            entry_id=entry.id,
            version=entry.version,
            body=entry.body,
            source_url=entry.source_url,
            reviewed_on=entry.reviewed_on,
            review_due=entry.review_due,
            is_active=entry.is_active,
            edited_by_user_id=user_id,
            created_at=now,
        )
    )


def find_entry(
    session: Session, *, organization_id: int, topic: str, language: str, country: str | None
) -> KnowledgeEntry | None:
    """The entry with exactly this identity, active or not."""
    return session.scalar(
        select(KnowledgeEntry).where(
            KnowledgeEntry.organization_id == organization_id,
            KnowledgeEntry.topic == topic,
            KnowledgeEntry.language == language,
            KnowledgeEntry.country_key == (country or ""),
        )
    )


def create_entry(
    session: Session,
    *,
    topic: str,
    language: str,
    country: str | None,
    body: str,
    source_url: str,
    reviewed_on: dt.date,
    review_due: dt.date | None = None,
    is_active: bool = True,
    user_id: int | None = None,
    organization_id: int | None = None,
    now: dt.datetime | None = None,
) -> KnowledgeEntry:
    """A new entry at version 1, with its first revision.  ``country`` None: regional default."""
    org_id = require_org(session, organization_id)
    now = now or utcnow()
    topic = validate_topic(topic)
    language = validate_language(language)
    country = normalize_country(country) if country is not None else None
    reviewed_on, review_due = review_dates(reviewed_on, review_due)
    if find_entry(session, organization_id=org_id, topic=topic, language=language, country=country):
        where = country or "the regional default"
        raise Conflict(
            f"an entry for {topic} in {language} for {where} exists already: edit it instead",
            field="topic",
        )
    entry = KnowledgeEntry(
        organization_id=org_id,
        topic=topic,
        language=language,
        country=country,
        country_key=country or "",
        body=validate_body(body),
        source_url=validate_source_url(source_url),
        reviewed_on=reviewed_on,
        review_due=review_due,
        version=1,
        is_active=is_active,
        updated_by_user_id=user_id,
        created_at=now,
        updated_at=now,
    )
    session.add(entry)
    session.flush()
    _append_revision(session, entry, user_id=user_id, now=now)
    session.flush()
    return entry


def get_entry(session: Session, entry_id: int) -> KnowledgeEntry:
    return get_or_404(session, KnowledgeEntry, entry_id, "knowledge entry")


def update_entry(
    session: Session,
    *,
    entry_id: int,
    body: str | None = None,
    source_url: str | None = None,
    reviewed_on: dt.date | None = None,
    review_due: dt.date | None = None,
    is_active: bool | None = None,
    user_id: int | None = None,
    now: dt.datetime | None = None,
) -> KnowledgeEntry:
    """Save a new version of an entry; arguments left None keep their value.

    A new ``reviewed_on`` without a ``review_due`` moves the due date to 180 days after it.
    Saving what is already there creates no version.
    """
    entry = get_entry(session, entry_id)
    now = now or utcnow()
    changes: dict[str, object] = {}
    if body is not None:
        changes["body"] = validate_body(body)
    if source_url is not None:
        changes["source_url"] = validate_source_url(source_url)
    if reviewed_on is not None or review_due is not None:
        changes["reviewed_on"], changes["review_due"] = review_dates(
            reviewed_on or entry.reviewed_on, review_due
        )
    if is_active is not None:
        changes["is_active"] = is_active
    changes = {k: v for k, v in changes.items() if getattr(entry, k) != v}
    if not changes:
        return entry
    for key, value in changes.items():
        setattr(entry, key, value)
    entry.version += 1
    entry.updated_by_user_id = user_id
    entry.updated_at = now
    _append_revision(session, entry, user_id=user_id, now=now)
    session.flush()
    return entry


def deactivate_entry(
    session: Session, *, entry_id: int, user_id: int | None = None, now: dt.datetime | None = None
) -> KnowledgeEntry:
    """Stop answering with this entry (a new version); its history stays."""
    return update_entry(session, entry_id=entry_id, is_active=False, user_id=user_id, now=now)


def history(session: Session, *, entry_id: int) -> list[KnowledgeRevision]:
    """Every saved version of an entry, oldest first."""
    entry = get_entry(session, entry_id)
    return list(
        session.scalars(
            select(KnowledgeRevision)
            .where(KnowledgeRevision.entry_id == entry.id)
            .order_by(KnowledgeRevision.version)
        )
    )


def find_answer(
    session: Session, *, organization_id: int, topic: str, language: str, country: str | None
) -> KnowledgeEntry | None:
    """The active entry to answer ``topic`` in ``language`` for someone in ``country``.

    The country's own entry first, then the regional default (``country`` NULL), else None.
    ``country`` may be None or a code with no entries; both fall back to the regional default.
    Raises ``InvalidInput`` for a topic or language that does not exist.
    """
    topic = validate_topic(topic)
    language = validate_language(language)
    keys = [""]
    if country and country.strip():
        keys.insert(0, country.strip().upper())
    rows = {
        e.country_key: e
        for e in session.scalars(
            select(KnowledgeEntry)
            .where(
                KnowledgeEntry.organization_id == organization_id,
                KnowledgeEntry.topic == topic,
                KnowledgeEntry.language == language,
                KnowledgeEntry.country_key.in_(keys),
                KnowledgeEntry.is_active.is_(True),
            )
            # A long-lived session still sees the latest edit, never a copy it loaded earlier.
            .execution_options(populate_existing=True)
        )
    }
    for key in keys:
        if key in rows:
            return rows[key]
    return None


def stale_entries(
    session: Session, *, today: dt.date, organization_id: int | None = None
) -> list[KnowledgeEntry]:
    """Active entries whose review is overdue (``review_due`` before ``today``), oldest first."""
    stmt = select(KnowledgeEntry).where(
        KnowledgeEntry.review_due < today, KnowledgeEntry.is_active.is_(True)
    )
    if organization_id is not None:
        stmt = stmt.where(KnowledgeEntry.organization_id == organization_id)
    return list(session.scalars(stmt.order_by(KnowledgeEntry.review_due, KnowledgeEntry.id)))


@dataclass(frozen=True)
class EntryFilter:
    topic: str | None = None
    language: str | None = None
    country: str | None = None
    stale: bool | None = None
    is_active: bool | None = None


def list_entries(
    session: Session,
    *,
    filters: EntryFilter,
    today: dt.date,
    limit: int,
    cursor: str | None = None,
) -> tuple[list[KnowledgeEntry], str | None]:
    """A page of entries in id order; the cursor of the next page, or None at the end."""
    stmt = select(KnowledgeEntry).order_by(KnowledgeEntry.id).limit(limit + 1)
    if cursor:
        stmt = stmt.where(KnowledgeEntry.id > decode_cursor(cursor))
    if filters.topic is not None:
        stmt = stmt.where(KnowledgeEntry.topic == validate_topic(filters.topic))
    if filters.language is not None:
        stmt = stmt.where(KnowledgeEntry.language == validate_language(filters.language))
    if filters.country is not None:
        stmt = stmt.where(KnowledgeEntry.country == normalize_country(filters.country))
    if filters.stale is True:
        stmt = stmt.where(KnowledgeEntry.review_due < today)
    elif filters.stale is False:
        stmt = stmt.where(KnowledgeEntry.review_due >= today)
    if filters.is_active is not None:
        stmt = stmt.where(KnowledgeEntry.is_active.is_(filters.is_active))
    rows = list(session.scalars(stmt))
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor
