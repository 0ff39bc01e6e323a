"""Turning the analytics tables into what a page shows: filters from the query string, cells,
chart series.  No SQL here: every number comes from ``campaigns.analytics``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from api.routes.dashboard import web
from campaigns.analytics.filters import Filters, make_filters
from campaigns.analytics.queries import topic_metrics
from campaigns.analytics.suppression import SUPPRESSED, Cell, Table, suppress
from campaigns.errors import FaroError, InvalidInput
from campaigns.languages import LANGUAGES
from campaigns.web_auth.sessions import SignedIn

# Rows fetched for one page's table or chart: enough for a year of one community's topics.
PAGE_ROWS = 500
CHART_ROWS = 20_000
CHART_SERIES = 6


def _date(value: str | None, field: str) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{field} must be a date like 2026-11-28", field=field) from None


def _int(value: str | None, field: str) -> int | None:
    if not value:
        return None
    if not value.isdigit() or len(value) > 18:
        raise InvalidInput(f"{field} must be a whole number", field=field)
    return int(value)


def filters_from(
    request: Request,
    session: Session,
    *,
    community_id: int | None = None,
    campaign_id: int | None = None,
) -> Filters:
    """The page's filters from its query string, checked like the JSON API checks them."""
    q = request.query_params
    language = q.get("language") or None
    return make_filters(
        session,
        today=web.today(),
        start=_date(q.get("start"), "start"),
        end=_date(q.get("end"), "end"),
        community_id=community_id
        if community_id is not None
        else _int(q.get("community_id"), "community_id"),
        campaign_id=campaign_id,
        language=language,
    )


def query_of(filters: Filters) -> str:
    """The query string that reproduces ``filters`` (for export links)."""
    parts = [f"start={filters.start.isoformat()}", f"end={filters.end.isoformat()}"]
    if filters.community_id is not None:
        parts.append(f"community_id={filters.community_id}")
    if filters.language is not None:
        parts.append(f"language={filters.language}")
    return "&".join(parts)


def show(value: Cell) -> str:
    """A cell as the page shows it: counts with thousands separators, "<5" as is."""
    if value is None:
        return "\u2013"  # an en dash: no value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def label(value: Cell) -> str:
    """A key cell (a name, a language, an error code, an option number) as it is."""
    return "\u2013" if value is None else str(value)


def ratio(part: Cell, whole: Cell) -> float | None:
    """``part / whole`` when both are known numbers (never for a "<5" cell)."""
    if isinstance(part, int | float) and isinstance(whole, int | float) and whole > 0:
        return min(1.0, part / whole)
    return None


def day_series(
    table: Table, *, key: str, value: str, start: dt.date, end: dt.date, limit: int = CHART_SERIES
) -> dict[str, Any]:
    """Chart data: one line per ``key`` (the largest ``limit``), a point per day.

    A day without a row is 0; a "<5" cell is ``null`` (a gap, not a made-up number).
    """
    days = [(start + dt.timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]
    index = {d: i for i, d in enumerate(days)}
    lines: dict[str, list[int | None]] = {}
    weight: dict[str, int] = {}
    for row in table.rows:
        name = str(row.get(key))
        day = str(row.get("day"))
        if day not in index:
            continue
        values = lines.setdefault(name, [0] * len(days))
        cell = row.get(value)
        values[index[day]] = cell if isinstance(cell, int) else None
        weight[name] = weight.get(name, 0) + (cell if isinstance(cell, int) else 1)
    chosen = sorted(lines, key=lambda n: (-weight[n], n))[:limit]
    return {"x": days, "series": [{"label": n, "values": lines[n]} for n in chosen]}


def language_mix(session: Session, filters: Filters, *, exact: bool) -> Table:
    """Questions per language over the range, suppressed as one table with its total."""
    rows: list[dict[str, Cell]] = []
    for language in LANGUAGES:
        table = topic_metrics(session, replace(filters, language=language), exact=True, limit=1)
        questions = int((table.totals or {}).get("questions") or 0)
        rows.append({"language": language, "questions": questions})
    mix = Table(
        name="languages",
        key_columns=("language",),
        count_columns=("questions",),
        rows=rows,
        totals={"questions": sum(int(r["questions"] or 0) for r in rows)},
        total_rows=len(rows),
    )
    return mix if exact else suppress(mix)


def guarded(
    request: Request,
    session: Session,
    build: Callable[[SignedIn], tuple[str, Mapping[str, Any]]],
) -> Response:
    """Sign-in check, then the page; a domain error becomes an error page with its status."""
    signed = web.current(request, session)
    if signed is None:
        return web.to_login(request)
    try:
        template, context = build(signed)
    except FaroError as exc:
        return web.error_page(request, exc, signed)
    return web.render(request, template, context, signed=signed)


web.templates.env.filters["show"] = show
web.templates.env.filters["label"] = label

__all__ = ["SUPPRESSED", "filters_from", "guarded", "query_of", "ratio", "show"]
