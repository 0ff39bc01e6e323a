"""The filters every analytics query takes, checked once: a bad one is a clear 4xx."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session

from campaigns.communities import get_community
from campaigns.errors import InvalidInput
from campaigns.languages import LANGUAGES
from campaigns.outreach.editing import get_campaign
from campaigns.topics import TOPICS

MAX_RANGE_DAYS = 366
DEFAULT_RANGE_DAYS = 30


@dataclass(frozen=True)
class Filters:
    """A validated filter: days ``start``..``end`` inclusive (UTC), and optional dimensions."""

    start: dt.date
    end: dt.date
    community_id: int | None = None
    campaign_id: int | None = None
    topic: str | None = None
    language: str | None = None

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def make_filters(
    session: Session,
    *,
    today: dt.date,
    start: dt.date | None = None,
    end: dt.date | None = None,
    community_id: int | None = None,
    campaign_id: int | None = None,
    topic: str | None = None,
    language: str | None = None,
) -> Filters:
    """Check the filters against the caller's organization (the session's scope).

    Defaults: ``end`` today, ``start`` 29 days before ``end``.  Raises ``InvalidInput`` (422)
    for a reversed range, a range over 366 days, an unknown topic or language, and
    ``NotFound`` (404) for a community or campaign the organization does not own.
    """
    end = end or today
    for name, day in (("start", start), ("end", end)):
        # Faro has no data before 2000 or far ahead; such dates are typos (and year 1 minus
        # 29 days would not even be a date).
        if day is not None and not dt.date(2000, 1, 1) <= day <= dt.date(2100, 12, 31):
            raise InvalidInput(f"{name} {day} is outside 2000-01-01 … 2100-12-31", field=name)
    start = start or end - dt.timedelta(days=DEFAULT_RANGE_DAYS - 1)
    if start > end:
        raise InvalidInput(f"start {start} is after end {end}", field="start")
    if (end - start).days + 1 > MAX_RANGE_DAYS:
        raise InvalidInput(
            f"the date range covers {(end - start).days + 1} days: at most {MAX_RANGE_DAYS}",
            field="end",
        )
    if topic is not None and topic not in TOPICS:
        raise InvalidInput(f"unknown topic {topic[:40]!r}: see TOPICS.md", field="topic")
    if language is not None and language not in LANGUAGES:
        raise InvalidInput(
            f"unknown language {language[:10]!r}: use one of {', '.join(LANGUAGES)}",
            field="language",
        )
    if community_id is not None:
        get_community(session, community_id)
    if campaign_id is not None:
        get_campaign(session, campaign_id)
    return Filters(
        start=start,
        end=end,
        community_id=community_id,
        campaign_id=campaign_id,
        topic=topic,
        language=language,
    )
