"""Rollup steps of the community and topic tables: active contacts and replies (from inbound
messages), turns and conversations, feedback, new contacts, handovers."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from campaigns.analytics.models import HandoverClose
from campaigns.analytics.rollup.base import (
    CAMPAIGN_KEY,
    COMMUNITY_KEY,
    TOPIC_KEY,
    TOPIC_TOTAL_KEY,
    RollupReport,
    Sql,
    add,
    claim_range,
    run_sql,
)
from campaigns.assistant.models import Handover, HandoverStatus

REPLY_WINDOW_HOURS = 72


def _contact_days(session: Session, kind: str, column: str, lo: int, hi: int) -> None:
    """Add the contacts first counted in this pass (``kind``) to ``analytics_community_day``."""
    run_sql(
        session,
        add(
            "analytics_community_day",
            COMMUNITY_KEY,
            (column,),
            "SELECT organization_id, community_id, day, count(*) FROM analytics_contact_day "
            f"WHERE source_id > :lo AND source_id <= :hi AND kind = '{kind}' GROUP BY 1, 2, 3",
        ),
        lo,
        hi,
    )


def inbound(
    session: Session, sql: Sql, report: RollupReport, now: dt.datetime, settle: float
) -> None:
    lo, hi = report.ranges["inbound"] = claim_range(
        session, "message", "SELECT max(id) FROM message", now=now, settle=settle
    )
    run_sql(
        session,
        "INSERT INTO analytics_contact_day (kind, community_id, day, contact_id, source_id, "
        f"organization_id) SELECT 'active', cc.community_id, {sql.day('m.created_at')}, "
        "m.contact_id, min(m.id), m.organization_id "
        "FROM message m JOIN contact_community cc ON cc.contact_id = m.contact_id "
        "WHERE m.id > :lo AND m.id <= :hi AND m.direction = 'inbound' "
        "GROUP BY 2, 3, 4, 6 ON CONFLICT DO NOTHING",
        lo,
        hi,
    )
    _contact_days(session, "active", "active_contacts", lo, hi)
    run_sql(
        session,
        "INSERT INTO analytics_reply (delivery_id, source_id, organization_id, campaign_id, "
        "community_id, language, day) "
        "SELECT d.id, min(m.id), d.organization_id, d.campaign_id, d.community_id, d.language, "
        f"{sql.day('min(m.created_at)')} "
        "FROM message m JOIN campaign_delivery d ON d.contact_id = m.contact_id "
        "JOIN message dm ON dm.id = d.message_id "
        "WHERE m.id > :lo AND m.id <= :hi AND m.direction = 'inbound' "
        f"AND {sql.within('dm.created_at', 'm.created_at', REPLY_WINDOW_HOURS)} "
        "GROUP BY d.id, d.organization_id, d.campaign_id, d.community_id, d.language "
        "ON CONFLICT (delivery_id) DO NOTHING",
        lo,
        hi,
    )
    run_sql(
        session,
        add(
            "analytics_campaign_day",
            CAMPAIGN_KEY,
            ("replies",),
            "SELECT organization_id, campaign_id, community_id, language, day, count(*) "
            "FROM analytics_reply WHERE source_id > :lo AND source_id <= :hi "
            "GROUP BY 1, 2, 3, 4, 5",
        ),
        lo,
        hi,
    )


def turns(
    session: Session, sql: Sql, report: RollupReport, now: dt.datetime, settle: float
) -> None:
    lo, hi = report.ranges["turns"] = claim_range(
        session, "assistant_turn", "SELECT max(id) FROM assistant_turn", now=now, settle=settle
    )
    unanswered = "sum(CASE WHEN t.answered THEN 0 ELSE 1 END)"
    run_sql(
        session,
        add(
            "analytics_community_day",
            COMMUNITY_KEY,
            ("turns", "unanswered"),
            f"SELECT t.organization_id, coalesce(t.community_id, 0), {sql.day('t.created_at')}, "
            f"count(*), {unanswered} FROM assistant_turn t "
            "WHERE t.id > :lo AND t.id <= :hi GROUP BY 1, 2, 3",
        ),
        lo,
        hi,
    )
    run_sql(
        session,
        add(
            "analytics_topic_day",
            TOPIC_KEY,
            ("questions", "unanswered"),
            f"SELECT t.organization_id, coalesce(t.community_id, 0), {sql.day('t.created_at')}, "
            f"t.topic, t.language, count(*), {unanswered} FROM assistant_turn t "
            "WHERE t.id > :lo AND t.id <= :hi AND t.topic IS NOT NULL GROUP BY 1, 2, 3, 4, 5",
        ),
        lo,
        hi,
    )
    run_sql(
        session,
        add(
            "analytics_topic_total_day",
            TOPIC_TOTAL_KEY,
            ("questions", "unanswered"),
            f"SELECT t.organization_id, coalesce(t.community_id, 0), {sql.day('t.created_at')}, "
            f"t.topic, count(*), {unanswered} FROM assistant_turn t "
            "WHERE t.id > :lo AND t.id <= :hi AND t.topic IS NOT NULL GROUP BY 1, 2, 3, 4",
        ),
        lo,
        hi,
    )
    run_sql(
        session,
        "INSERT INTO analytics_contact_day (kind, community_id, day, contact_id, source_id, "
        f"organization_id) SELECT 'conversation', coalesce(t.community_id, 0), "
        f"{sql.day('t.created_at')}, m.contact_id, min(t.id), t.organization_id "
        "FROM assistant_turn t JOIN message m ON m.id = t.message_id "
        "WHERE t.id > :lo AND t.id <= :hi AND m.contact_id IS NOT NULL "
        "GROUP BY 2, 3, 4, 6 ON CONFLICT DO NOTHING",
        lo,
        hi,
    )
    _contact_days(session, "conversation", "conversations", lo, hi)


def feedback(
    session: Session, sql: Sql, report: RollupReport, now: dt.datetime, settle: float
) -> None:
    lo, hi = report.ranges["feedback"] = claim_range(
        session,
        "assistant_feedback",
        "SELECT max(id) FROM assistant_feedback",
        now=now,
        settle=settle,
    )
    run_sql(
        session,
        add(
            "analytics_topic_day",
            TOPIC_KEY,
            ("feedback_yes", "feedback_no"),
            f"SELECT f.organization_id, coalesce(f.community_id, 0), {sql.day('f.created_at')}, "
            "f.topic, f.language, sum(CASE WHEN f.useful THEN 1 ELSE 0 END), "
            "sum(CASE WHEN f.useful THEN 0 ELSE 1 END) FROM assistant_feedback f "
            "WHERE f.id > :lo AND f.id <= :hi GROUP BY 1, 2, 3, 4, 5",
        ),
        lo,
        hi,
    )
    run_sql(
        session,
        add(
            "analytics_topic_total_day",
            TOPIC_TOTAL_KEY,
            ("feedback_yes", "feedback_no"),
            f"SELECT f.organization_id, coalesce(f.community_id, 0), {sql.day('f.created_at')}, "
            "f.topic, sum(CASE WHEN f.useful THEN 1 ELSE 0 END), "
            "sum(CASE WHEN f.useful THEN 0 ELSE 1 END) FROM assistant_feedback f "
            "WHERE f.id > :lo AND f.id <= :hi GROUP BY 1, 2, 3, 4",
        ),
        lo,
        hi,
    )


def contacts(
    session: Session, sql: Sql, report: RollupReport, now: dt.datetime, settle: float
) -> None:
    lo, hi = report.ranges["contacts"] = claim_range(
        session, "contact", "SELECT max(id) FROM contact", now=now, settle=settle
    )
    run_sql(
        session,
        add(
            "analytics_community_day",
            COMMUNITY_KEY,
            ("new_contacts",),
            f"SELECT c.organization_id, cc.community_id, {sql.day('c.created_at')}, count(*) "
            "FROM contact c JOIN contact_community cc ON cc.contact_id = c.id "
            "WHERE c.id > :lo AND c.id <= :hi GROUP BY 1, 2, 3",
        ),
        lo,
        hi,
    )


def handovers(
    session: Session, sql: Sql, report: RollupReport, now: dt.datetime, settle: float
) -> None:
    lo, hi = report.ranges["handovers"] = claim_range(
        session, "handover", "SELECT max(id) FROM handover", now=now, settle=settle
    )
    run_sql(
        session,
        add(
            "analytics_community_day",
            COMMUNITY_KEY,
            ("handovers_opened",),
            f"SELECT h.organization_id, coalesce(h.community_id, 0), {sql.day('h.opened_at')}, "
            "count(*) FROM handover h WHERE h.id > :lo AND h.id <= :hi GROUP BY 1, 2, 3",
        ),
        lo,
        hi,
    )
    # Closing is an update, not an insert: closed handovers not yet kept are found directly
    # (there are few), and the primary key of analytics_handover_close keeps each one once.
    closed = session.execute(
        select(
            Handover.id,
            Handover.organization_id,
            Handover.community_id,
            Handover.opened_at,
            Handover.closed_at,
        )
        .where(
            Handover.status == HandoverStatus.closed,
            Handover.closed_at.is_not(None),
            ~select(HandoverClose.handover_id)
            .where(HandoverClose.handover_id == Handover.id)
            .exists(),
        )
        .execution_options(skip_org_scope=True)
    ).all()
    per_day: Counter[tuple[int, int, dt.date]] = Counter()
    for handover_id, org_id, community_id, opened_at, closed_at in closed:
        assert closed_at is not None
        day = closed_at.astimezone(dt.UTC).date()
        session.add(
            HandoverClose(
                handover_id=handover_id,
                organization_id=org_id,
                community_id=community_id or 0,
                day=day,
                seconds=max(0, int((closed_at - opened_at).total_seconds())),
            )
        )
        per_day[(org_id, community_id or 0, day)] += 1
    session.flush()
    statement = add(
        "analytics_community_day",
        COMMUNITY_KEY,
        ("handovers_closed",),
        "SELECT :org, :community, :day, :n WHERE true",
    )
    for (org_id, community_id, day), n in per_day.items():
        session.execute(
            text(statement), {"org": org_id, "community": community_id, "day": day, "n": n}
        )
    report.handovers_closed = len(closed)
