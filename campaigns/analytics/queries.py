"""Metrics tables, read from the rollups only (never from the raw event tables).

Every function takes the request's session (scoped to the caller's organization, so the ORM
adds ``organization_id = :caller`` to every query), a validated ``Filters`` and ``exact``
(True for admins: no small-cell suppression), and returns a ``Table``.  Over a date range,
per-day counts are summed: ``active_contacts`` over a week is contact-days, not distinct people.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from campaigns.analytics.filters import Filters
from campaigns.analytics.models import (
    CampaignDay,
    CampaignFailure,
    CommunityDay,
    HandoverClose,
    PollDay,
    TopicDay,
    TopicTotalDay,
)
from campaigns.analytics.suppression import SUPPRESS_BELOW, SUPPRESSED, Cell, Table, hidden_cells
from campaigns.communities import Community
from campaigns.errors import InvalidInput
from campaigns.outreach.models import Campaign, PollOption
from campaigns.pagination import decode_cursor, encode_cursor

DEFAULT_LIMIT = 100
_S = TypeVar("_S", bound="Select[*tuple[Any, ...]]")

CAMPAIGN_COUNTS = (
    "targeted",
    "sent",
    "delivered",
    "read",
    "failed",
    "replies",
    "clicks",
    "opt_outs",
)
COMMUNITY_COUNTS = (
    "active_contacts",
    "new_contacts",
    "opted_out",
    "conversations",
    "turns",
    "unanswered",
    "handovers_opened",
    "handovers_closed",
)
TOPIC_COUNTS = ("questions", "unanswered", "feedback_yes", "feedback_no")


def _offset(cursor: str | None) -> int:
    offset = decode_cursor(cursor) if cursor else 0
    if offset < 0:
        raise InvalidInput("malformed cursor", field="cursor")
    return offset


def _build(
    name: str,
    raw: Sequence[Any],
    *,
    key_columns: tuple[str, ...],
    count_columns: tuple[str, ...],
    label: Callable[[Any], dict[str, Cell]],
    exact: bool,
    cursor: str | None,
    limit: int,
    value_columns: tuple[str, ...] = (),
    extra_totals: dict[str, Cell] | None = None,
) -> Table:
    """A table from SQL rows (attributes named like ``count_columns``): suppressed over every
    row (totals cover them all), then one page cut, whose rows only are turned into dicts by
    ``label`` (keys and values) — tables of tens of thousands of rows stay cheap."""
    if raw:
        # One C-level transpose instead of a getattr per cell.
        fields = list(raw[0]._fields)
        transposed = list(zip(*raw, strict=True))
        columns = [[int(v or 0) for v in transposed[fields.index(c)]] for c in count_columns]
    else:
        columns = [[] for _ in count_columns]
    totals = [sum(col) for col in columns]
    if exact:
        hidden_rows: list[set[int]] = [set() for _ in count_columns]
        hidden_totals = [False for _ in count_columns]
    else:
        hidden_rows, hidden_totals = hidden_cells(columns, totals)
    offset = _offset(cursor)
    rows: list[dict[str, Cell]] = []
    for i in range(offset, min(offset + limit, len(raw))):
        row = label(raw[i])
        for c, column in enumerate(count_columns):
            row[column] = SUPPRESSED if i in hidden_rows[c] else columns[c][i]
        rows.append({k: row.get(k) for k in (*key_columns, *count_columns, *value_columns)})
    total_cells: dict[str, Cell] = {
        column: SUPPRESSED if hidden_totals[c] else totals[c]
        for c, column in enumerate(count_columns)
    }
    return Table(
        name=name,
        key_columns=key_columns,
        count_columns=count_columns,
        value_columns=value_columns,
        rows=rows,
        totals={**total_cells, **(extra_totals or {})},
        suppressed=not exact,
        total_rows=len(raw),
        next_cursor=encode_cursor(offset + limit) if offset + limit < len(raw) else None,
    )


def _names(session: Session, model: Any, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return dict(session.execute(select(model.id, model.name).where(model.id.in_(ids))).all())


def _campaign_where(stmt: _S, model: Any, filters: Filters) -> _S:
    stmt = stmt.where(model.day >= filters.start, model.day <= filters.end)
    if filters.campaign_id is not None:
        stmt = stmt.where(model.campaign_id == filters.campaign_id)
    if filters.community_id is not None:
        stmt = stmt.where(model.community_id == filters.community_id)
    if filters.language is not None:
        stmt = stmt.where(model.language == filters.language)
    if filters.topic is not None:
        stmt = stmt.where(
            model.campaign_id.in_(select(Campaign.id).where(Campaign.topic == filters.topic))
        )
    return stmt


def campaign_metrics(
    session: Session,
    filters: Filters,
    *,
    exact: bool,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Table:
    """Per campaign x community x language over the range: the funnel and its outcomes.

    Columns: campaign_id, campaign, community_id, community, language (``null`` for link
    clicks, which have no language), then the counts ``targeted sent delivered read failed
    replies clicks opt_outs``, then ``segments`` and ``cost`` (not suppressed: not people).
    """
    sums = [func.sum(getattr(CampaignDay, c)).label(c) for c in CAMPAIGN_COUNTS]
    stmt = select(
        CampaignDay.campaign_id,
        CampaignDay.community_id,
        CampaignDay.language,
        *sums,
        func.sum(CampaignDay.segments).label("segments"),
        func.sum(CampaignDay.cost).label("cost"),
    ).group_by(CampaignDay.campaign_id, CampaignDay.community_id, CampaignDay.language)
    stmt = _campaign_where(stmt, CampaignDay, filters).order_by(
        CampaignDay.campaign_id.desc(), CampaignDay.community_id, CampaignDay.language
    )
    raw = session.execute(stmt).all()
    campaigns = _names(session, Campaign, {r.campaign_id for r in raw})
    communities = _names(session, Community, {r.community_id for r in raw})

    def label(r: Any) -> dict[str, Cell]:
        return {
            "campaign_id": r.campaign_id,
            "campaign": campaigns.get(r.campaign_id),
            "community_id": r.community_id or None,
            "community": communities.get(r.community_id),
            "language": r.language or None,
            "segments": int(r.segments or 0),
            "cost": float(r.cost or 0),
        }

    return _build(
        "campaigns",
        raw,
        key_columns=("campaign_id", "campaign", "community_id", "community", "language"),
        count_columns=CAMPAIGN_COUNTS,
        value_columns=("segments", "cost"),
        label=label,
        exact=exact,
        cursor=cursor,
        limit=limit,
        extra_totals={
            "segments": sum(int(r.segments or 0) for r in raw),
            "cost": round(sum(float(r.cost or 0) for r in raw), 5),
        },
    )


def campaign_failures(
    session: Session,
    filters: Filters,
    *,
    exact: bool,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Table:
    """Failed campaign messages per campaign and Twilio error code (0: no code given)."""
    stmt = select(
        CampaignFailure.campaign_id,
        CampaignFailure.error_code,
        func.sum(CampaignFailure.failed).label("failed"),
    ).group_by(CampaignFailure.campaign_id, CampaignFailure.error_code)
    stmt = _campaign_where(stmt, CampaignFailure, filters).order_by(
        CampaignFailure.campaign_id.desc(), CampaignFailure.error_code
    )
    raw = session.execute(stmt).all()
    campaigns = _names(session, Campaign, {r.campaign_id for r in raw})
    return _build(
        "campaign_failures",
        raw,
        key_columns=("campaign_id", "campaign", "error_code"),
        count_columns=("failed",),
        label=lambda r: {
            "campaign_id": r.campaign_id,
            "campaign": campaigns.get(r.campaign_id),
            "error_code": r.error_code,
        },
        exact=exact,
        cursor=cursor,
        limit=limit,
    )


def _median_close(
    session: Session, filters: Filters, *, by_day: bool
) -> dict[tuple[int, dt.date | None], tuple[int, float]]:
    stmt = select(HandoverClose.community_id, HandoverClose.day, HandoverClose.seconds).where(
        HandoverClose.day >= filters.start, HandoverClose.day <= filters.end
    )
    if filters.community_id is not None:
        stmt = stmt.where(HandoverClose.community_id == filters.community_id)
    groups: dict[tuple[int, dt.date | None], list[int]] = {}
    for community_id, day, seconds in session.execute(stmt):
        groups.setdefault((community_id, day if by_day else None), []).append(seconds)
    return {k: (len(v), statistics.median(v)) for k, v in groups.items()}


def community_metrics(
    session: Session,
    filters: Filters,
    *,
    exact: bool,
    by_day: bool = False,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Table:
    """Per community (and per day with ``by_day``): contacts, conversations, handovers.

    ``median_close_seconds`` is the median time from opening to closing of the handovers closed
    in the bucket; hidden (``"<5"``) when fewer than 5 closed, unless ``exact``.  The topic,
    language and campaign filters do not apply here (these counts have no such dimension).
    """
    keys: list[Any] = [CommunityDay.community_id]
    if by_day:
        keys.append(CommunityDay.day)
    sums = [func.sum(getattr(CommunityDay, c)).label(c) for c in COMMUNITY_COUNTS]
    stmt = (
        select(*keys, *sums)
        .where(CommunityDay.day >= filters.start, CommunityDay.day <= filters.end)
        .group_by(*keys)
        .order_by(*keys)
    )
    if filters.community_id is not None:
        stmt = stmt.where(CommunityDay.community_id == filters.community_id)
    raw = session.execute(stmt).all()
    communities = _names(session, Community, {r.community_id for r in raw})
    medians = _median_close(session, filters, by_day=by_day)

    def label(r: Any) -> dict[str, Cell]:
        row: dict[str, Cell] = {
            "community_id": r.community_id or None,
            "community": communities.get(r.community_id),
            "day": r.day.isoformat() if by_day else None,
        }
        count, median = medians.get((r.community_id, r.day if by_day else None), (0, 0.0))
        if count == 0:
            row["median_close_seconds"] = None
        elif count < SUPPRESS_BELOW and not exact:
            row["median_close_seconds"] = SUPPRESSED
        else:
            row["median_close_seconds"] = round(median)
        return row

    return _build(
        "communities_by_day" if by_day else "communities",
        raw,
        key_columns=("community_id", "community", *(("day",) if by_day else ())),
        count_columns=COMMUNITY_COUNTS,
        value_columns=("median_close_seconds",),
        label=label,
        exact=exact,
        cursor=cursor,
        limit=limit,
    )


def topic_metrics(
    session: Session,
    filters: Filters,
    *,
    exact: bool,
    by_day: bool = False,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Table:
    """Per community x topic (and day with ``by_day``): questions, unanswered, feedback."""
    # Without a language filter, the table already summed over languages (fewer rows).
    model: Any = TopicDay if filters.language is not None else TopicTotalDay
    keys: list[Any] = [model.community_id, model.topic]
    if by_day:
        keys.append(model.day)
    sums = [func.sum(getattr(model, c)).label(c) for c in TOPIC_COUNTS]
    stmt = (
        select(*keys, *sums)
        .where(model.day >= filters.start, model.day <= filters.end)
        .group_by(*keys)
        .order_by(*keys)
    )
    if filters.community_id is not None:
        stmt = stmt.where(model.community_id == filters.community_id)
    if filters.topic is not None:
        stmt = stmt.where(model.topic == filters.topic)
    if filters.language is not None:
        stmt = stmt.where(TopicDay.language == filters.language)
    raw = session.execute(stmt).all()
    communities = _names(session, Community, {r.community_id for r in raw})
    return _build(
        "topics_by_day" if by_day else "topics",
        raw,
        key_columns=("community_id", "community", "topic", *(("day",) if by_day else ())),
        count_columns=TOPIC_COUNTS,
        label=lambda r: {
            "community_id": r.community_id or None,
            "community": communities.get(r.community_id),
            "topic": r.topic,
            "day": r.day.isoformat() if by_day else None,
        },
        exact=exact,
        cursor=cursor,
        limit=limit,
    )


def poll_metrics(
    session: Session,
    filters: Filters,
    *,
    exact: bool,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Table:
    """Poll answers per campaign x community x option (a changed answer counts once, last)."""
    stmt = select(
        PollDay.campaign_id,
        PollDay.community_id,
        PollDay.option_number,
        func.sum(PollDay.answers).label("answers"),
    ).group_by(PollDay.campaign_id, PollDay.community_id, PollDay.option_number)
    stmt = _campaign_where(stmt, PollDay, filters).order_by(
        PollDay.campaign_id.desc(), PollDay.community_id, PollDay.option_number
    )
    raw = session.execute(stmt).all()
    campaign_ids = {r.campaign_id for r in raw}
    campaigns = _names(session, Campaign, campaign_ids)
    communities = _names(session, Community, {r.community_id for r in raw})
    labels: dict[tuple[int, int], str] = {}
    if campaign_ids:
        fallback = dict(
            session.execute(
                select(Campaign.id, Campaign.fallback_language).where(Campaign.id.in_(campaign_ids))
            ).all()
        )
        for option in session.scalars(
            select(PollOption).where(PollOption.campaign_id.in_(campaign_ids))
        ):
            language = fallback.get(option.campaign_id, "es")
            labels[(option.campaign_id, option.number)] = option.labels.get(
                language, next(iter(option.labels.values()), "")
            )
    return _build(
        "polls",
        [r for r in raw if r.answers],
        key_columns=("campaign_id", "campaign", "community_id", "community", "option", "label"),
        count_columns=("answers",),
        label=lambda r: {
            "campaign_id": r.campaign_id,
            "campaign": campaigns.get(r.campaign_id),
            "community_id": r.community_id or None,
            "community": communities.get(r.community_id),
            "option": r.option_number,
            "label": labels.get((r.campaign_id, r.option_number)),
        },
        exact=exact,
        cursor=cursor,
        limit=limit,
    )
