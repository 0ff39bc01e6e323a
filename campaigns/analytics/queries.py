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
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from campaigns.analytics.cache import PassCache, cached
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
# Pages up to this many rows are kept by a PassCache (the API's maximum page size is 500).
CACHED_ROWS = 1000
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


@dataclass
class _Cut:
    """One page of a table, and what suppression decided over the whole table."""

    n: int
    totals: dict[str, int | float]
    page: Sequence[Any]
    hidden: dict[str, set[int]]  # per count column: indexes into ``page``
    hidden_totals: dict[str, bool]


def _ordering(columns: Any, order: tuple[tuple[str, bool], ...]) -> list[Any]:
    """ORDER BY terms for ``(column, descending)`` pairs, from a statement's or a subquery's
    columns."""
    return [columns[k].desc() if d else columns[k] for k, d in order]


def _cut_in_python(
    session: Session,
    cells: Select[*tuple[Any, ...]],
    order: Sequence[Any],
    *,
    counts: tuple[str, ...],
    summed: tuple[str, ...],
    exact: bool,
    offset: int,
    limit: int,
) -> _Cut:
    # Every cell comes back (grouped tables: at most a few thousand rows), suppressed by
    # ``hidden_cells``; then the page is cut.
    raw = session.execute(cells.order_by(*order)).all()
    if raw:
        # One C-level transpose instead of a getattr per cell.
        fields = list(raw[0]._fields)
        transposed = list(zip(*raw, strict=True))
        columns = [[int(v or 0) for v in transposed[fields.index(k)]] for k in counts]
        values = [[v or 0 for v in transposed[fields.index(k)]] for k in summed]
    else:
        columns, values = [[] for _ in counts], [[] for _ in summed]
    sums = [sum(column) for column in columns]
    hidden_rows, hidden_totals = (
        ([set() for _ in counts], [False for _ in counts]) if exact else hidden_cells(columns, sums)
    )
    end = min(offset + limit, len(raw))
    return _Cut(
        n=len(raw),
        totals={
            **dict(zip(counts, sums, strict=True)),
            **{k: sum(v) for k, v in zip(summed, values, strict=True)},
        },
        page=raw[offset:end],
        hidden={
            k: {i - offset for i in hidden_rows[c] if offset <= i < end}
            for c, k in enumerate(counts)
        },
        hidden_totals=dict(zip(counts, hidden_totals, strict=True)),
    )


def _cut_in_sql(
    session: Session,
    cells: Select[*tuple[Any, ...]],
    order: tuple[tuple[str, bool], ...],
    *,
    counts: tuple[str, ...],
    summed: tuple[str, ...],
    exact: bool,
    offset: int,
    limit: int,
) -> _Cut:
    # One aggregate over every cell: the row count, the totals, and per count column how many
    # cells are small and the smallest count ≥ 5; then the page alone is fetched.  The rule
    # of ``hidden_cells`` needs nothing else, except for a column with exactly one small cell:
    # its complement is the first cell (in table order) holding that smallest count.
    c = cells.subquery("cells").c
    head = session.execute(
        select(
            func.count().label("n"),
            *(func.sum(c[k]).label(f"total_{k}") for k in (*counts, *summed)),
            *(
                func.count().filter(c[k].between(1, SUPPRESS_BELOW - 1)).label(f"small_{k}")
                for k in counts
            ),
            *(func.min(c[k]).filter(c[k] >= SUPPRESS_BELOW).label(f"floor_{k}") for k in counts),
        )
    ).one()
    n = int(head.n)
    page = (
        session.execute(
            cells.order_by(*_ordering(cells.selected_columns, order)).offset(offset).limit(limit)
        ).all()
        if offset < n
        else []
    )
    totals = {k: getattr(head, f"total_{k}") or 0 for k in (*counts, *summed)}
    hidden_totals = dict.fromkeys(counts, False)
    complements: dict[str, tuple[Any, ...]] = {}
    for k in () if exact else counts:
        if 0 < totals[k] < SUPPRESS_BELOW:
            hidden_totals[k] = True
        elif getattr(head, f"small_{k}") == 1:
            floor = getattr(head, f"floor_{k}")
            if floor is None:
                hidden_totals[k] = True
            else:
                first = select(*(c[key] for key, _ in order)).where(c[k] == floor)
                first = first.order_by(*_ordering(c, order))
                complements[k] = tuple(session.execute(first.limit(1)).one())
    hidden: dict[str, set[int]] = {k: set() for k in counts}
    if not exact:
        for i, r in enumerate(page):
            key = tuple(getattr(r, name) for name, _ in order)
            for k in counts:
                if 0 < int(getattr(r, k) or 0) < SUPPRESS_BELOW or complements.get(k) == key:
                    hidden[k].add(i)
    return _Cut(n=n, totals=totals, page=page, hidden=hidden, hidden_totals=hidden_totals)


def _build(
    session: Session,
    name: str,
    cells: Select[*tuple[Any, ...]],
    *,
    order: tuple[tuple[str, bool], ...],
    key_columns: tuple[str, ...],
    count_columns: tuple[str, ...],
    label: Callable[[Sequence[Any]], Callable[[Any], dict[str, Cell]]],
    exact: bool,
    cursor: str | None,
    limit: int,
    value_columns: tuple[str, ...] = (),
    summed_values: tuple[str, ...] = (),
    large: bool = False,
    filters: Filters,
    cache: PassCache | None = None,
) -> Table:
    """A table from a SELECT of cells (one row per cell, counts labelled like ``count_columns``).

    Suppression is decided over the whole table (its totals cover every row), so every page
    of a table hides the same cells and carries the same totals.  ``order`` is the table's row
    order, ``(column, descending)`` pairs.  A ``large`` table (a row per day: tens of thousands
    of rows) is summarised and paged in SQL and only its page is fetched; a small one is
    fetched whole and suppressed in Python.  Both apply the rule of ``hidden_cells``.
    ``label(page)`` returns the function that turns one page row into its key and value cells
    (names are looked up for the page's rows only, and per request: a ``cache`` keeps the
    numbers only, see ``analytics.cache``).  ``summed_values`` are value columns whose
    totals are their plain sums (not people: never suppressed).
    """
    offset = _offset(cursor)
    kw: dict[str, Any] = {
        "counts": count_columns,
        "summed": summed_values,
        "exact": exact,
        "offset": offset,
        "limit": limit,
    }

    def compute() -> _Cut:
        if large:
            return _cut_in_sql(session, cells, order, **kw)
        return _cut_in_python(session, cells, _ordering(cells.selected_columns, order), **kw)

    # A whole-table CSV export is not kept: one request, and possibly large.
    keep = cache if limit <= CACHED_ROWS else None
    cut = cached(keep, session, (name, filters, exact, offset, limit), compute)
    to_row = label(cut.page)
    rows: list[dict[str, Cell]] = []
    for i, r in enumerate(cut.page):
        row = to_row(r)
        for k in count_columns:
            row[k] = SUPPRESSED if i in cut.hidden[k] else int(getattr(r, k) or 0)
        rows.append({k: row.get(k) for k in (*key_columns, *count_columns, *value_columns)})
    totals: dict[str, Cell] = {
        k: SUPPRESSED if cut.hidden_totals[k] else int(cut.totals[k]) for k in count_columns
    }
    totals.update({k: cut.totals[k] for k in summed_values})
    return Table(
        name=name,
        key_columns=key_columns,
        count_columns=count_columns,
        value_columns=value_columns,
        rows=rows,
        totals=totals,
        suppressed=not exact,
        total_rows=cut.n,
        next_cursor=encode_cursor(offset + limit) if offset + limit < cut.n else None,
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
    cache: PassCache | None = None,
) -> Table:
    """Per campaign x community x language over the range: the funnel and its outcomes.

    Columns: campaign_id, campaign, community_id, community, language (``null`` for link
    clicks, which have no language), then the counts ``targeted sent delivered read failed
    replies clicks opt_outs``, then ``segments`` and ``cost`` (not suppressed: not people).
    """
    keys = (CampaignDay.campaign_id, CampaignDay.community_id, CampaignDay.language)
    sums = [func.sum(getattr(CampaignDay, c)).label(c) for c in CAMPAIGN_COUNTS]
    stmt = select(
        *keys,
        *sums,
        func.sum(CampaignDay.segments).label("segments"),
        func.sum(CampaignDay.cost).label("cost"),
    ).group_by(*keys)
    stmt = _campaign_where(stmt, CampaignDay, filters)

    def label(page: Sequence[Any]) -> Callable[[Any], dict[str, Cell]]:
        campaigns = _names(session, Campaign, {r.campaign_id for r in page})
        communities = _names(session, Community, {r.community_id for r in page})
        return lambda r: {
            "campaign_id": r.campaign_id,
            "campaign": campaigns.get(r.campaign_id),
            "community_id": r.community_id or None,
            "community": communities.get(r.community_id),
            "language": r.language or None,
            "segments": int(r.segments or 0),
            "cost": float(r.cost or 0),
        }

    table = _build(
        session,
        "campaigns",
        stmt,
        order=(("campaign_id", True), ("community_id", False), ("language", False)),
        key_columns=("campaign_id", "campaign", "community_id", "community", "language"),
        count_columns=CAMPAIGN_COUNTS,
        value_columns=("segments", "cost"),
        summed_values=("segments", "cost"),
        label=label,
        exact=exact,
        cursor=cursor,
        limit=limit,
        filters=filters,
        cache=cache,
    )
    totals = table.totals or {}
    totals["segments"] = int(totals["segments"] or 0)
    totals["cost"] = round(float(totals["cost"] or 0), 5)
    return table


def campaign_failures(
    session: Session,
    filters: Filters,
    *,
    exact: bool,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
    cache: PassCache | None = None,
) -> Table:
    """Failed campaign messages per campaign and Twilio error code (0: no code given)."""
    stmt = select(
        CampaignFailure.campaign_id,
        CampaignFailure.error_code,
        func.sum(CampaignFailure.failed).label("failed"),
    ).group_by(CampaignFailure.campaign_id, CampaignFailure.error_code)
    stmt = _campaign_where(stmt, CampaignFailure, filters)

    def label(page: Sequence[Any]) -> Callable[[Any], dict[str, Cell]]:
        campaigns = _names(session, Campaign, {r.campaign_id for r in page})
        return lambda r: {
            "campaign_id": r.campaign_id,
            "campaign": campaigns.get(r.campaign_id),
            "error_code": r.error_code,
        }

    return _build(
        session,
        "campaign_failures",
        stmt,
        order=(("campaign_id", True), ("error_code", False)),
        key_columns=("campaign_id", "campaign", "error_code"),
        count_columns=("failed",),
        label=label,
        exact=exact,
        cursor=cursor,
        limit=limit,
        filters=filters,
        cache=cache,
    )


def _median_close(
    session: Session, filters: Filters, *, by_day: bool, community_ids: set[int]
) -> dict[tuple[int, dt.date | None], tuple[int, float]]:
    """Closed handovers and their median seconds to close, per community (and day)."""
    if not community_ids:
        return {}
    stmt = select(HandoverClose.community_id, HandoverClose.day, HandoverClose.seconds).where(
        HandoverClose.day >= filters.start,
        HandoverClose.day <= filters.end,
        HandoverClose.community_id.in_(community_ids),
    )
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
    cache: PassCache | None = None,
) -> Table:
    """Per community (and per day with ``by_day``): contacts, conversations, handovers.

    ``median_close_seconds`` is the median time from opening to closing of the handovers closed
    in the bucket; hidden (``"<5"``) when fewer than 5 closed, unless ``exact``.  The topic,
    language and campaign filters do not apply here (these counts have no such dimension).
    """
    if by_day:
        # (community, day) is the table's key: its rows are the cells, nothing to group.
        keys: tuple[str, ...] = ("community_id", "day")
        stmt = select(
            CommunityDay.community_id,
            CommunityDay.day,
            *(getattr(CommunityDay, c).label(c) for c in COMMUNITY_COUNTS),
        )
    else:
        keys = ("community_id",)
        stmt = select(
            CommunityDay.community_id,
            *(func.sum(getattr(CommunityDay, c)).label(c) for c in COMMUNITY_COUNTS),
        ).group_by(CommunityDay.community_id)
    stmt = stmt.where(CommunityDay.day >= filters.start, CommunityDay.day <= filters.end)
    if filters.community_id is not None:
        stmt = stmt.where(CommunityDay.community_id == filters.community_id)

    def label(page: Sequence[Any]) -> Callable[[Any], dict[str, Cell]]:
        ids = {r.community_id for r in page}
        communities = _names(session, Community, ids)
        medians = _median_close(session, filters, by_day=by_day, community_ids=ids)

        def one(r: Any) -> dict[str, Cell]:
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

        return one

    return _build(
        session,
        "communities_by_day" if by_day else "communities",
        stmt,
        order=tuple((k, False) for k in keys),
        large=by_day,
        key_columns=("community_id", "community", *(("day",) if by_day else ())),
        count_columns=COMMUNITY_COUNTS,
        value_columns=("median_close_seconds",),
        label=label,
        exact=exact,
        cursor=cursor,
        limit=limit,
        filters=filters,
        cache=cache,
    )


def topic_metrics(
    session: Session,
    filters: Filters,
    *,
    exact: bool,
    by_day: bool = False,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
    cache: PassCache | None = None,
) -> Table:
    """Per community x topic (and day with ``by_day``): questions, unanswered, feedback."""
    # Without a language filter, the table already summed over languages (fewer rows).
    model: Any = TopicDay if filters.language is not None else TopicTotalDay
    if by_day:
        # (community, day, topic) is the key of the total table, and of the per-language one
        # once a language is chosen: its rows are the cells, nothing to group.
        keys: tuple[str, ...] = ("community_id", "topic", "day")
        stmt = select(
            model.community_id,
            model.topic,
            model.day,
            *(getattr(model, c).label(c) for c in TOPIC_COUNTS),
        )
    else:
        keys = ("community_id", "topic")
        stmt = select(
            model.community_id,
            model.topic,
            *(func.sum(getattr(model, c)).label(c) for c in TOPIC_COUNTS),
        ).group_by(model.community_id, model.topic)
    stmt = stmt.where(model.day >= filters.start, model.day <= filters.end)
    if filters.community_id is not None:
        stmt = stmt.where(model.community_id == filters.community_id)
    if filters.topic is not None:
        stmt = stmt.where(model.topic == filters.topic)
    if filters.language is not None:
        stmt = stmt.where(TopicDay.language == filters.language)

    def label(page: Sequence[Any]) -> Callable[[Any], dict[str, Cell]]:
        communities = _names(session, Community, {r.community_id for r in page})
        return lambda r: {
            "community_id": r.community_id or None,
            "community": communities.get(r.community_id),
            "topic": r.topic,
            "day": r.day.isoformat() if by_day else None,
        }

    return _build(
        session,
        "topics_by_day" if by_day else "topics",
        stmt,
        order=tuple((k, False) for k in keys),
        large=by_day,
        key_columns=("community_id", "community", "topic", *(("day",) if by_day else ())),
        count_columns=TOPIC_COUNTS,
        label=label,
        exact=exact,
        cursor=cursor,
        limit=limit,
        filters=filters,
        cache=cache,
    )


def poll_metrics(
    session: Session,
    filters: Filters,
    *,
    exact: bool,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
    cache: PassCache | None = None,
) -> Table:
    """Poll answers per campaign x community x option (a changed answer counts once, last)."""
    answers = func.sum(PollDay.answers)
    stmt = (
        select(
            PollDay.campaign_id,
            PollDay.community_id,
            PollDay.option_number,
            answers.label("answers"),
        )
        .group_by(PollDay.campaign_id, PollDay.community_id, PollDay.option_number)
        # A bucket whose answers all moved to another option is no row.
        .having(func.coalesce(answers, 0) != 0)
    )
    stmt = _campaign_where(stmt, PollDay, filters)

    def label(page: Sequence[Any]) -> Callable[[Any], dict[str, Cell]]:
        campaign_ids = {r.campaign_id for r in page}
        campaigns = _names(session, Campaign, campaign_ids)
        communities = _names(session, Community, {r.community_id for r in page})
        labels: dict[tuple[int, int], str] = {}
        if campaign_ids:
            fallback = dict(
                session.execute(
                    select(Campaign.id, Campaign.fallback_language).where(
                        Campaign.id.in_(campaign_ids)
                    )
                ).all()
            )
            for option in session.scalars(
                select(PollOption).where(PollOption.campaign_id.in_(campaign_ids))
            ):
                language = fallback.get(option.campaign_id, "es")
                labels[(option.campaign_id, option.number)] = option.labels.get(
                    language, next(iter(option.labels.values()), "")
                )
        return lambda r: {
            "campaign_id": r.campaign_id,
            "campaign": campaigns.get(r.campaign_id),
            "community_id": r.community_id or None,
            "community": communities.get(r.community_id),
            "option": r.option_number,
            "label": labels.get((r.campaign_id, r.option_number)),
        }

    return _build(
        session,
        "polls",
        stmt,
        order=(("campaign_id", True), ("community_id", False), ("option_number", False)),
        key_columns=("campaign_id", "campaign", "community_id", "community", "option", "label"),
        count_columns=("answers",),
        label=label,
        exact=exact,
        cursor=cursor,
        limit=limit,
        filters=filters,
        cache=cache,
    )
