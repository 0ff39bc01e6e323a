"""``/v1/analytics``: engagement metrics, insights and CSV exports (every role may read).

Each route parses the filters, calls one query of ``campaigns.analytics``, and returns JSON or,
with ``format=csv``, the same table as a formula-safe CSV file (every row, no paging).
Small counts are ``"<5"`` unless the caller is an admin.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from api.deps import PrincipalDep, SessionDep, SettingsDep
from campaigns.analytics import insights, queries
from campaigns.analytics.cache import PassCache
from campaigns.analytics.export import table_csv
from campaigns.analytics.filters import Filters, make_filters
from campaigns.analytics.suppression import Table
from campaigns.db import utcnow
from campaigns.errors import InvalidInput
from campaigns.organizations.models import Role
from campaigns.organizations.service import Principal

router = APIRouter(prefix="/v1/analytics", tags=["analytics"])

Format = Literal["json", "csv"]
# Every row of a table goes into its CSV file; the date range (≤ 366 days) bounds it.
CSV_ROWS = 1_000_000


def _filters(
    session: SessionDep,
    principal: PrincipalDep,
    start: Annotated[dt.date | None, Query(description="first day (UTC), default end-29")] = None,
    end: Annotated[dt.date | None, Query(description="last day (UTC), default today")] = None,
    community_id: int | None = None,
    campaign_id: int | None = None,
    topic: Annotated[str | None, Query(max_length=60)] = None,
    language: Annotated[str | None, Query(max_length=10)] = None,
) -> Filters:
    return make_filters(
        session,
        today=utcnow().date(),
        start=start,
        end=end,
        community_id=community_id,
        campaign_id=campaign_id,
        topic=topic,
        language=language,
    )


FiltersDep = Annotated[Filters, Depends(_filters)]


def _limit(settings: SettingsDep, limit: Annotated[int, Query(ge=1)] = 100) -> int:
    if limit > settings.page_size_max:
        raise InvalidInput(
            f"limit {limit} is over the maximum page size {settings.page_size_max}",
            field="limit",
        )
    return limit


LimitDep = Annotated[int, Depends(_limit)]
Cursor = Annotated[str | None, Query(max_length=100)]


def pass_cache(request: Request) -> PassCache:
    """The app's analytics results, each kept until the next rollup pass (``analytics.cache``)."""
    state = request.app.state
    cache = getattr(state, "analytics_cache", None)
    if cache is None:
        # Two first requests may race here: one of the two caches is dropped, nothing else.
        cache = state.analytics_cache = PassCache()
    return cache


CacheDep = Annotated[PassCache, Depends(pass_cache)]


def _exact(principal: Principal) -> bool:
    return principal.role == Role.admin


def _csv(name: str, body: str) -> Response:
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


def _table(
    query: Callable[..., Table],
    session: SessionDep,
    principal: Principal,
    filters: Filters,
    *,
    limit: int,
    cursor: str | None,
    format: Format,
    cache: PassCache,
    **extra: Any,
) -> Any:
    exact = _exact(principal)
    if format == "csv":
        table = query(session, filters, exact=exact, limit=CSV_ROWS, **extra)
        return _csv(table.name, table_csv(table))
    table = query(session, filters, exact=exact, cursor=cursor, limit=limit, cache=cache, **extra)
    return table.as_json()


def _records(name: str, items: Sequence[Any], format: Format) -> Any:
    rows = [dataclasses.asdict(i) for i in items]
    if format == "csv":
        columns = tuple(f.name for f in dataclasses.fields(items[0])) if items else ("empty",)
        for row in rows:
            for key, value in row.items():
                if isinstance(value, dt.date | dt.datetime):
                    row[key] = value.isoformat()
        table = Table(name=name, key_columns=columns, count_columns=(), rows=rows)
        return _csv(name, table_csv(table))
    return {"items": rows}


@router.get("/campaigns")
def campaigns(
    session: SessionDep,
    principal: PrincipalDep,
    filters: FiltersDep,
    limit: LimitDep,
    cache: CacheDep,
    cursor: Cursor = None,
    format: Format = "json",
) -> Any:
    """Per campaign x community x language: targeted → sent → delivered → read, failed,
    replies, clicks, opt-outs, segments, cost."""
    return _table(
        queries.campaign_metrics,
        session,
        principal,
        filters,
        limit=limit,
        cursor=cursor,
        format=format,
        cache=cache,
    )


@router.get("/campaigns/failures")
def campaign_failures(
    session: SessionDep,
    principal: PrincipalDep,
    filters: FiltersDep,
    limit: LimitDep,
    cache: CacheDep,
    cursor: Cursor = None,
    format: Format = "json",
) -> Any:
    """Failed campaign messages per campaign and Twilio error code."""
    return _table(
        queries.campaign_failures,
        session,
        principal,
        filters,
        limit=limit,
        cursor=cursor,
        format=format,
        cache=cache,
    )


@router.get("/communities")
def communities(
    session: SessionDep,
    principal: PrincipalDep,
    filters: FiltersDep,
    limit: LimitDep,
    cache: CacheDep,
    cursor: Cursor = None,
    by: Literal["total", "day"] = "total",
    format: Format = "json",
) -> Any:
    """Per community (or community x day): contacts, conversations, handovers."""
    return _table(
        queries.community_metrics,
        session,
        principal,
        filters,
        limit=limit,
        cursor=cursor,
        format=format,
        cache=cache,
        by_day=by == "day",
    )


@router.get("/topics")
def topics(
    session: SessionDep,
    principal: PrincipalDep,
    filters: FiltersDep,
    limit: LimitDep,
    cache: CacheDep,
    cursor: Cursor = None,
    by: Literal["total", "day"] = "total",
    format: Format = "json",
) -> Any:
    """Per community x topic (or x day): questions, unanswered, feedback yes / no."""
    return _table(
        queries.topic_metrics,
        session,
        principal,
        filters,
        limit=limit,
        cursor=cursor,
        format=format,
        cache=cache,
        by_day=by == "day",
    )


@router.get("/polls")
def polls(
    session: SessionDep,
    principal: PrincipalDep,
    filters: FiltersDep,
    limit: LimitDep,
    cache: CacheDep,
    cursor: Cursor = None,
    format: Format = "json",
) -> Any:
    """Poll answers per campaign x community x option."""
    return _table(
        queries.poll_metrics,
        session,
        principal,
        filters,
        limit=limit,
        cursor=cursor,
        format=format,
        cache=cache,
    )


@router.get("/overview")
def overview(
    session: SessionDep, principal: PrincipalDep, filters: FiltersDep, cache: CacheDep
) -> Any:
    """Reach, engagement, opt-outs and this week's spike alerts."""
    result = insights.overview(
        session, filters, exact=_exact(principal), today=utcnow().date(), cache=cache
    )
    return dataclasses.asdict(result)


@router.get("/unanswered")
def unanswered(
    session: SessionDep,
    principal: PrincipalDep,
    filters: FiltersDep,
    limit: LimitDep,
    format: Format = "json",
) -> Any:
    """The most frequent unanswered questions (redacted), grouped by similarity."""
    groups = insights.unanswered_questions(session, filters, exact=_exact(principal), limit=limit)
    return _records("unanswered_questions", groups, format)


@router.get("/alerts")
def alerts(
    session: SessionDep,
    principal: PrincipalDep,
    filters: FiltersDep,
    cache: CacheDep,
    format: Format = "json",
) -> Any:
    """Topics rising in a community: this week ≥ 10 and ≥ 3x the four-week weekly mean
    (the week ends on ``end``)."""
    found = insights.spike_alerts(
        session,
        today=filters.end,
        community_id=filters.community_id,
        exact=_exact(principal),
        cache=cache,
    )
    if filters.topic is not None:
        found = [a for a in found if a.topic == filters.topic]
    return _records("spike_alerts", found, format)


@router.get("/stale-knowledge")
def stale_knowledge(
    session: SessionDep,
    principal: PrincipalDep,
    limit: LimitDep,
    format: Format = "json",
) -> Any:
    """Active knowledge entries past their review date, most overdue first."""
    entries = insights.stale_entries(session, today=utcnow().date(), limit=limit)
    return _records("stale_knowledge", entries, format)


@router.get("/feedback")
def feedback(
    session: SessionDep,
    principal: PrincipalDep,
    filters: FiltersDep,
    limit: LimitDep,
    cache: CacheDep,
    format: Format = "json",
) -> Any:
    """Topics with the lowest share of "useful" feedback (topics with ≥ 5 answers)."""
    found = insights.lowest_feedback_topics(
        session, filters, limit=limit, exact=_exact(principal), cache=cache
    )
    return _records("lowest_feedback_topics", found, format)
