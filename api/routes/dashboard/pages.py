"""The dashboard's pages: overview, campaigns, communities, polls, knowledge staleness.

Every number comes from the analytics query functions (``campaigns.analytics``), called with
the signed-in user's organization (the session's scope) and ``exact`` only for admins, so a page
shows what the JSON API shows the same user, ``"<5"`` included.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from api.deps import SessionDep
from api.routes.analytics import pass_cache
from api.routes.dashboard import web
from api.routes.dashboard.view import (
    CHART_ROWS,
    PAGE_ROWS,
    day_series,
    filters_from,
    guarded,
    language_mix,
    query_of,
    ratio,
)
from campaigns.analytics import insights
from campaigns.analytics.queries import (
    campaign_failures,
    campaign_metrics,
    community_metrics,
    poll_metrics,
    topic_metrics,
)
from campaigns.communities import Community, get_community
from campaigns.outreach.editing import get_campaign, list_campaigns
from campaigns.web_auth.sessions import SignedIn

router = APIRouter(prefix="/dashboard")

FUNNEL = ("targeted", "sent", "delivered", "read", "replies", "clicks")


def _communities(session: SessionDep) -> list[Community]:
    return list(session.scalars(select(Community).order_by(Community.name, Community.id)))


@router.get("", response_class=HTMLResponse)
def overview(request: Request, session: SessionDep) -> Response:
    cache = pass_cache(request)

    def build(signed: SignedIn) -> tuple[str, dict[str, Any]]:
        exact = web.is_admin(signed)
        filters = filters_from(request, session)
        return "overview.html", {
            "title": "Overview",
            "section": "overview",
            "filters": filters,
            "query": query_of(filters),
            "communities": _communities(session),
            "o": insights.overview(session, filters, exact=exact, today=web.today(), cache=cache),
            "by_community": community_metrics(
                session, filters, exact=exact, limit=PAGE_ROWS, cache=cache
            ),
        }

    return guarded(request, session, build)


@router.get("/campaigns", response_class=HTMLResponse)
def campaigns(request: Request, session: SessionDep) -> Response:
    def build(signed: SignedIn) -> tuple[str, dict[str, Any]]:
        return "campaigns.html", {
            "title": "Campaigns",
            "section": "campaigns",
            "campaigns": list_campaigns(session),
        }

    return guarded(request, session, build)


@router.get("/campaigns/{campaign_id}", response_class=HTMLResponse)
def campaign(campaign_id: int, request: Request, session: SessionDep) -> Response:
    def build(signed: SignedIn) -> tuple[str, dict[str, Any]]:
        exact = web.is_admin(signed)
        item = get_campaign(session, campaign_id)
        filters = filters_from(request, session, campaign_id=campaign_id)
        table = campaign_metrics(session, filters, exact=exact, limit=PAGE_ROWS)
        totals = table.totals or {}
        funnel = [
            {
                "stage": stage,
                "value": totals.get(stage),
                "ratio": ratio(totals.get(stage), totals.get("targeted")),
            }
            for stage in FUNNEL
        ]
        return "campaign.html", {
            "title": item.name,
            "section": "campaigns",
            "campaign": item,
            "filters": filters,
            "query": query_of(filters),
            "table": table,
            "funnel": funnel,
            "failures": campaign_failures(session, filters, exact=exact, limit=PAGE_ROWS),
            "polls": poll_metrics(session, filters, exact=exact, limit=PAGE_ROWS),
        }

    return guarded(request, session, build)


@router.get("/communities", response_class=HTMLResponse)
def communities(request: Request, session: SessionDep) -> Response:
    def build(signed: SignedIn) -> tuple[str, dict[str, Any]]:
        return "communities.html", {
            "title": "Communities",
            "section": "communities",
            "communities": _communities(session),
        }

    return guarded(request, session, build)


@router.get("/communities/{community_id}", response_class=HTMLResponse)
def community(community_id: int, request: Request, session: SessionDep) -> Response:
    def build(signed: SignedIn) -> tuple[str, dict[str, Any]]:
        exact = web.is_admin(signed)
        item = get_community(session, community_id)
        filters = filters_from(request, session, community_id=community_id)
        by_day = topic_metrics(session, filters, exact=exact, by_day=True, limit=CHART_ROWS)
        return "community.html", {
            "title": item.name,
            "section": "communities",
            "community": item,
            "filters": filters,
            "query": query_of(filters),
            "metrics": community_metrics(session, filters, exact=exact, limit=1),
            "topics": topic_metrics(session, filters, exact=exact, limit=PAGE_ROWS),
            "chart": day_series(
                by_day, key="topic", value="questions", start=filters.start, end=filters.end
            ),
            "languages": language_mix(session, filters, exact=exact),
            "questions": insights.unanswered_questions(session, filters, exact=exact),
            "alerts": insights.spike_alerts(
                session, today=web.today(), community_id=community_id, exact=exact
            ),
        }

    return guarded(request, session, build)


@router.get("/polls", response_class=HTMLResponse)
def polls(request: Request, session: SessionDep) -> Response:
    def build(signed: SignedIn) -> tuple[str, dict[str, Any]]:
        exact = web.is_admin(signed)
        filters = filters_from(request, session)
        table = poll_metrics(session, filters, exact=exact, limit=PAGE_ROWS)
        groups: dict[Any, list[dict[str, Any]]] = {}
        for row in table.rows:
            groups.setdefault((row["campaign_id"], row["campaign"]), []).append(row)
        return "polls.html", {
            "title": "Poll results",
            "section": "polls",
            "filters": filters,
            "query": query_of(filters),
            "communities": _communities(session),
            "table": table,
            "groups": groups,
        }

    return guarded(request, session, build)


@router.get("/knowledge", response_class=HTMLResponse)
def knowledge(request: Request, session: SessionDep) -> Response:
    def build(signed: SignedIn) -> tuple[str, dict[str, Any]]:
        today = web.today()
        filters = filters_from(request, session)
        return "knowledge.html", {
            "title": "Knowledge reviews",
            "section": "knowledge",
            "entries": insights.stale_entries(session, today=today),
            "today": today,
            "filters": filters,
            "weak_topics": insights.lowest_feedback_topics(session, filters),
        }

    return guarded(request, session, build)
