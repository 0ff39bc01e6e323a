"""Verified hotlines: the number the assistant gives first on a safety topic (``SAFETY_TOPICS``).

A number is kept as its official source writes it, never reformatted: people dial what they read,
and short codes (``911``, ``*4636``) are not E.164 numbers.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.db import get_or_404, utcnow
from campaigns.errors import Conflict, InvalidInput
from campaigns.knowledge.models import Hotline
from campaigns.knowledge.validation import (
    plain_text,
    require_org,
    review_dates,
    validate_source_url,
)
from campaigns.languages import LANGUAGES
from campaigns.phones import normalize_country
from campaigns.topics import SAFETY_TOPICS, validate_topic

MAX_NUMBER = 40
MAX_NAME = 300
_NUMBER = re.compile(r"[0-9+*#().\-/ ]+")


def validate_number(value: str, *, field: str = "number") -> str:
    number = value.strip()
    if not number:
        raise InvalidInput("number must not be empty", field=field)
    if len(number) > MAX_NUMBER:
        raise InvalidInput(f"number has more than {MAX_NUMBER} characters", field=field)
    if not _NUMBER.fullmatch(number) or not any(c.isdigit() for c in number):
        raise InvalidInput("number may hold only digits, spaces and + - ( ) * # . /", field=field)
    return number


def validate_names(names: Mapping[str, str], *, field: str = "names") -> dict[str, str]:
    """The hotline's name in every language: es, en, ht and fr, no more and no fewer."""
    if not isinstance(names, Mapping):
        raise InvalidInput("names must map each language to a name", field=field)
    unknown = sorted(set(names) - set(LANGUAGES))
    if unknown:
        raise InvalidInput(f"unknown language {unknown[0]!r} in names", field=field)
    missing = [lang for lang in LANGUAGES if lang not in names]
    if missing:
        raise InvalidInput(f"names needs a name in {', '.join(missing)}", field=field)
    return {
        lang: plain_text(str(names[lang]), field=f"{field}.{lang}", max_length=MAX_NAME)
        for lang in LANGUAGES
    }


def validate_hotline_topics(topics: Sequence[str], *, field: str = "topics") -> list[str]:
    if isinstance(topics, str) or not topics:
        raise InvalidInput("topics needs at least one safety topic", field=field)
    result: list[str] = []
    for raw in topics:
        topic = validate_topic(str(raw), field=field)
        if topic not in SAFETY_TOPICS:
            raise InvalidInput(
                f"{topic} is not a safety topic: use {', '.join(sorted(SAFETY_TOPICS))}",
                field=field,
            )
        if topic not in result:
            result.append(topic)
    return result


def find_hotline(
    session: Session, *, organization_id: int, country: str, number: str
) -> Hotline | None:
    return session.scalar(
        select(Hotline).where(
            Hotline.organization_id == organization_id,
            Hotline.country == country,
            Hotline.number == number,
        )
    )


def _check_unique(
    session: Session, *, organization_id: int, country: str, number: str, exclude: int | None
) -> None:
    found = find_hotline(session, organization_id=organization_id, country=country, number=number)
    if found is not None and found.id != exclude:
        raise Conflict(f"hotline {number} of {country} exists already", field="number")


def create_hotline(
    session: Session,
    *,
    country: str,
    number: str,
    names: Mapping[str, str],
    topics: Sequence[str],
    source_url: str,
    reviewed_on: dt.date,
    review_due: dt.date | None = None,
    is_active: bool = True,
    organization_id: int | None = None,
    now: dt.datetime | None = None,
) -> Hotline:
    org_id = require_org(session, organization_id)
    now = now or utcnow()
    country = normalize_country(country)
    number = validate_number(number)
    reviewed_on, review_due = review_dates(reviewed_on, review_due)
    hotline = Hotline(
        organization_id=org_id,
        country=country,
        number=number,
        names=validate_names(names),
        topics=validate_hotline_topics(topics),
        source_url=validate_source_url(source_url),
        reviewed_on=reviewed_on,
        review_due=review_due,
        is_active=is_active,
        created_at=now,
        updated_at=now,
    )
    _check_unique(session, organization_id=org_id, country=country, number=number, exclude=None)
    session.add(hotline)
    session.flush()
    return hotline


def get_hotline(session: Session, hotline_id: int) -> Hotline:
    return get_or_404(session, Hotline, hotline_id, "hotline")


def update_hotline(
    session: Session,
    *,
    hotline_id: int,
    country: str | None = None,
    number: str | None = None,
    names: Mapping[str, str] | None = None,
    topics: Sequence[str] | None = None,
    source_url: str | None = None,
    reviewed_on: dt.date | None = None,
    review_due: dt.date | None = None,
    is_active: bool | None = None,
    now: dt.datetime | None = None,
) -> Hotline:
    """Change a hotline; arguments left None keep their value.

    A new ``reviewed_on`` without a ``review_due`` moves the due date to 180 days after it.
    """
    hotline = get_hotline(session, hotline_id)
    new_country = normalize_country(country) if country is not None else hotline.country
    new_number = validate_number(number) if number is not None else hotline.number
    if (new_country, new_number) != (hotline.country, hotline.number):
        _check_unique(
            session,
            organization_id=hotline.organization_id,
            country=new_country,
            number=new_number,
            exclude=hotline.id,
        )
    changes: dict[str, object] = {"country": new_country, "number": new_number}
    if names is not None:
        changes["names"] = validate_names(names)
    if topics is not None:
        changes["topics"] = validate_hotline_topics(topics)
    if source_url is not None:
        changes["source_url"] = validate_source_url(source_url)
    if reviewed_on is not None or review_due is not None:
        changes["reviewed_on"], changes["review_due"] = review_dates(
            reviewed_on or hotline.reviewed_on, review_due
        )
    if is_active is not None:
        changes["is_active"] = is_active
    changes = {k: v for k, v in changes.items() if getattr(hotline, k) != v}
    if changes:
        for key, value in changes.items():
            setattr(hotline, key, value)
        hotline.updated_at = now or utcnow()
        session.flush()
    return hotline


def deactivate_hotline(
    session: Session, *, hotline_id: int, now: dt.datetime | None = None
) -> Hotline:
    return update_hotline(session, hotline_id=hotline_id, is_active=False, now=now)


def list_hotlines(
    session: Session,
    *,
    country: str | None = None,
    topic: str | None = None,
    is_active: bool | None = None,
) -> list[Hotline]:
    """The session organization's hotlines in id order (a handful per country)."""
    stmt = select(Hotline).order_by(Hotline.id)
    if country is not None:
        stmt = stmt.where(Hotline.country == normalize_country(country))
    if is_active is not None:
        stmt = stmt.where(Hotline.is_active.is_(is_active))
    rows = list(session.scalars(stmt))
    if topic is not None:
        wanted = validate_topic(topic)
        rows = [h for h in rows if wanted in h.topics]
    return rows


def hotlines_for(
    session: Session, *, organization_id: int, country: str | None, topic: str
) -> list[Hotline]:
    """The active hotlines of ``country`` that serve ``topic``, in the order they were added.

    Empty for a topic that is not a safety topic, or when the country is unknown.
    """
    topic = validate_topic(topic)
    if not country or topic not in SAFETY_TOPICS:
        return []
    rows = session.scalars(
        select(Hotline)
        .where(
            Hotline.organization_id == organization_id,
            Hotline.country == country.strip().upper(),
            Hotline.is_active.is_(True),
        )
        .order_by(Hotline.id)
        .execution_options(populate_existing=True)
    )
    # Topics are a JSON list; a country has a handful of hotlines, so filter here on every backend.
    return [h for h in rows if topic in h.topics]
