"""CSV downloads of every dashboard table, with the page's filters and the same suppression.

Cells are written by ``campaigns.analytics.export`` (safe against formula injection).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from api.deps import SessionDep
from api.routes.dashboard import web
from api.routes.dashboard.view import PAGE_ROWS, filters_from, language_mix
from campaigns.analytics import insights
from campaigns.analytics.export import table_csv
from campaigns.analytics.filters import Filters
from campaigns.analytics.queries import (
    campaign_failures,
    campaign_metrics,
    community_metrics,
    poll_metrics,
    topic_metrics,
)
from campaigns.analytics.suppression import Cell, Table
from campaigns.errors import FaroError, NotFound

router = APIRouter(prefix="/dashboard")

# Exports are whole tables: up to this many rows (the page shows the first PAGE_ROWS).
EXPORT_ROWS = 100_000

TableFn = Callable[[Session, Filters, bool], Table]

TABLES: dict[str, TableFn] = {
    "communities": lambda s, f, exact: community_metrics(s, f, exact=exact, limit=EXPORT_ROWS),
    "communities_by_day": lambda s, f, exact: community_metrics(
        s, f, exact=exact, by_day=True, limit=EXPORT_ROWS
    ),
    "campaigns": lambda s, f, exact: campaign_metrics(s, f, exact=exact, limit=EXPORT_ROWS),
    "campaign_failures": lambda s, f, exact: campaign_failures(
        s, f, exact=exact, limit=EXPORT_ROWS
    ),
    "topics": lambda s, f, exact: topic_metrics(s, f, exact=exact, limit=EXPORT_ROWS),
    "topics_by_day": lambda s, f, exact: topic_metrics(
        s, f, exact=exact, by_day=True, limit=EXPORT_ROWS
    ),
    "polls": lambda s, f, exact: poll_metrics(s, f, exact=exact, limit=EXPORT_ROWS),
    "languages": lambda s, f, exact: language_mix(s, f, exact=exact),
}


def _csv(request: Request, filename: str, text: str) -> Response:
    headers = web.security_headers(web.settings_of(request))
    headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return Response(text, media_type="text/csv; charset=utf-8", headers=headers)


def _rows_csv(header: list[str], rows: list[list[Cell]]) -> str:
    """Records (no counts to suppress here: the query did) through the same CSV writer."""
    table = Table(
        name="records",
        key_columns=tuple(header),
        count_columns=(),
        rows=[dict(zip(header, row, strict=True)) for row in rows],
    )
    return table_csv(table)


@router.get("/export/{name}.csv")
def export(name: str, request: Request, session: SessionDep) -> Response:
    signed = web.current(request, session)
    if signed is None:
        return web.to_login(request)
    exact = web.is_admin(signed)
    try:
        if name == "knowledge":
            entries = insights.stale_entries(session, today=web.today(), limit=EXPORT_ROWS)
            text = _rows_csv(
                ["entry_id", "topic", "language", "country", "review_due", "days_overdue"],
                [
                    [e.id, e.topic, e.language, e.country, e.review_due.isoformat(), e.days_overdue]
                    for e in entries
                ],
            )
        elif name == "questions":
            filters = filters_from(request, session)
            groups = insights.unanswered_questions(session, filters, exact=exact, limit=PAGE_ROWS)
            text = _rows_csv(
                ["community_id", "language", "count", "last_seen", "example"],
                [
                    [g.community_id, g.language, g.count, g.last_seen.isoformat(), g.example]
                    for g in groups
                ],
            )
        elif name == "feedback":
            topics = insights.lowest_feedback_topics(
                session, filters_from(request, session), limit=PAGE_ROWS
            )
            text = _rows_csv(
                ["topic", "useful", "not_useful", "useful_share"],
                [[t.topic, t.useful, t.not_useful, t.useful_share] for t in topics],
            )
        elif name == "alerts":
            filters = filters_from(request, session)
            alerts = insights.spike_alerts(
                session, today=web.today(), community_id=filters.community_id, exact=exact
            )
            text = _rows_csv(
                [
                    "community_id",
                    "community",
                    "topic",
                    "this_week",
                    "baseline_weekly_mean",
                    "ratio",
                    "priority",
                ],
                [
                    [
                        a.community_id,
                        a.community,
                        a.topic,
                        a.this_week,
                        a.baseline_weekly_mean,
                        a.ratio,
                        a.priority,
                    ]
                    for a in alerts
                ],
            )
        elif name in TABLES:
            q = request.query_params
            campaign_id = q.get("campaign_id")
            filters = filters_from(
                request,
                session,
                campaign_id=int(campaign_id) if campaign_id and campaign_id.isdigit() else None,
            )
            text = table_csv(TABLES[name](session, filters, exact))
        else:
            raise NotFound(
                f"no table {name[:40]!r} to export: use one of "
                + ", ".join(sorted([*TABLES, "alerts", "feedback", "knowledge", "questions"]))
            )
    except FaroError as exc:
        return web.error_page(request, exc, signed)
    return _csv(request, f"faro-{name}.csv", text)
