"""Rollup steps of the campaign tables: targeted, the message funnel, failures, opt-outs,
clicks and poll answers."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from campaigns.analytics.rollup.base import (
    CAMPAIGN_KEY,
    COMMUNITY_KEY,
    RollupReport,
    Sql,
    add,
    claim_range,
    run_sql,
)

OPT_OUT_WINDOW_HOURS = 72

IMPLIED = (
    "implied(status, stage) AS (VALUES ('sent', 'sent'), ('simulated', 'sent'), "
    "('delivered', 'sent'), ('delivered', 'delivered'), ('read', 'sent'), "
    "('read', 'delivered'), ('read', 'read'), ('failed', 'failed'), "
    "('undelivered', 'failed'))"
)


def deliveries(
    session: Session, sql: Sql, report: RollupReport, now: dt.datetime, settle: float
) -> None:
    lo, hi = report.ranges["deliveries"] = claim_range(
        session,
        "campaign_delivery",
        "SELECT max(id) FROM campaign_delivery",
        now=now,
        settle=settle,
    )
    run_sql(
        session,
        add(
            "analytics_campaign_day",
            CAMPAIGN_KEY,
            ("targeted",),
            f"SELECT d.organization_id, d.campaign_id, d.community_id, d.language, "
            f"{sql.day('d.created_at')}, count(*) FROM campaign_delivery d "
            f"WHERE d.id > :lo AND d.id <= :hi GROUP BY 1, 2, 3, 4, 5",
        ),
        lo,
        hi,
    )


def statuses(
    session: Session, sql: Sql, report: RollupReport, now: dt.datetime, settle: float
) -> None:
    lo, hi = report.ranges["statuses"] = claim_range(
        session,
        "message_status_event",
        "SELECT max(id) FROM message_status_event",
        now=now,
        settle=settle,
    )
    run_sql(
        session,
        f"WITH {IMPLIED} "
        "INSERT INTO analytics_message_status (message_id, stage, event_id, organization_id, "
        "campaign_id, community_id, language, day, error_code) "
        f"SELECT e.message_id, i.stage, min(e.id), d.organization_id, d.campaign_id, "
        f"d.community_id, d.language, {sql.day('min(e.received_at)')}, max(e.error_code) "
        "FROM message_status_event e JOIN implied i ON i.status = e.status "
        "JOIN campaign_delivery d ON d.message_id = e.message_id "
        "WHERE e.id > :lo AND e.id <= :hi "
        "GROUP BY e.message_id, i.stage, d.organization_id, d.campaign_id, d.community_id, "
        "d.language ON CONFLICT (message_id, stage) DO NOTHING",
        lo,
        hi,
    )
    # The stages first reached in this pass are exactly those whose first event is in range.
    run_sql(
        session,
        add(
            "analytics_campaign_day",
            CAMPAIGN_KEY,
            ("sent", "delivered", "read", "failed", "segments", "cost"),
            "SELECT s.organization_id, s.campaign_id, s.community_id, s.language, s.day, "
            "sum(CASE WHEN s.stage = 'sent' THEN 1 ELSE 0 END), "
            "sum(CASE WHEN s.stage = 'delivered' THEN 1 ELSE 0 END), "
            "sum(CASE WHEN s.stage = 'read' THEN 1 ELSE 0 END), "
            "sum(CASE WHEN s.stage = 'failed' THEN 1 ELSE 0 END), "
            "sum(coalesce(m.segments, 0)), sum(abs(coalesce(m.price, 0))) "
            "FROM analytics_message_status s "
            "LEFT JOIN message m ON m.id = s.message_id AND s.stage = 'sent' "
            "WHERE s.event_id > :lo AND s.event_id <= :hi GROUP BY 1, 2, 3, 4, 5",
        ),
        lo,
        hi,
    )
    run_sql(
        session,
        add(
            "analytics_campaign_failure",
            (*CAMPAIGN_KEY, "error_code"),
            ("failed",),
            "SELECT organization_id, campaign_id, community_id, language, day, "
            "coalesce(error_code, 0), count(*) FROM analytics_message_status "
            "WHERE event_id > :lo AND event_id <= :hi AND stage = 'failed' "
            "GROUP BY 1, 2, 3, 4, 5, 6",
        ),
        lo,
        hi,
    )


def consent(
    session: Session, sql: Sql, report: RollupReport, now: dt.datetime, settle: float
) -> None:
    lo, hi = report.ranges["consent"] = claim_range(
        session, "consent_event", "SELECT max(id) FROM consent_event", now=now, settle=settle
    )
    run_sql(
        session,
        add(
            "analytics_community_day",
            COMMUNITY_KEY,
            ("opted_out",),
            f"SELECT e.organization_id, cc.community_id, {sql.day('e.created_at')}, count(*) "
            "FROM consent_event e JOIN contact_community cc ON cc.contact_id = e.contact_id "
            "WHERE e.id > :lo AND e.id <= :hi AND e.state = 'opted_out' GROUP BY 1, 2, 3",
        ),
        lo,
        hi,
    )
    # Attributed to the campaign of the contact's latest delivery at most 72 h before.
    run_sql(
        session,
        add(
            "analytics_campaign_day",
            CAMPAIGN_KEY,
            ("opt_outs",),
            "SELECT organization_id, campaign_id, community_id, language, day, count(*) FROM ("
            "SELECT d.organization_id, d.campaign_id, d.community_id, d.language, "
            f"{sql.day('e.created_at')} AS day, row_number() OVER "
            "(PARTITION BY e.id ORDER BY dm.created_at DESC, d.id DESC) AS rn "
            "FROM consent_event e JOIN campaign_delivery d ON d.contact_id = e.contact_id "
            "JOIN message dm ON dm.id = d.message_id "
            "WHERE e.id > :lo AND e.id <= :hi AND e.state = 'opted_out' "
            f"AND {sql.within('dm.created_at', 'e.created_at', OPT_OUT_WINDOW_HOURS)}"
            ") x WHERE rn = 1 GROUP BY 1, 2, 3, 4, 5",
        ),
        lo,
        hi,
    )


def clicks(
    session: Session, sql: Sql, report: RollupReport, now: dt.datetime, settle: float
) -> None:
    lo, hi = report.ranges["clicks"] = claim_range(
        session, "link_click", "SELECT max(id) FROM link_click", now=now, settle=settle
    )
    run_sql(
        session,
        add(
            "analytics_campaign_day",
            CAMPAIGN_KEY,
            ("clicks",),
            "SELECT l.organization_id, l.campaign_id, l.community_id, '', "
            f"{sql.day('c.clicked_at')}, count(*) FROM link_click c "
            "JOIN tracked_link l ON l.id = c.link_id "
            "WHERE c.id > :lo AND c.id <= :hi AND c.user_agent_family <> 'preview' "
            "GROUP BY 1, 2, 3, 4, 5",
        ),
        lo,
        hi,
    )


def polls(
    session: Session, sql: Sql, report: RollupReport, now: dt.datetime, settle: float
) -> None:
    # A poll answer is replaced in place when the contact corrects it, with the new message's
    # id: that id (always growing) is the mark.
    lo, hi = report.ranges["polls"] = claim_range(
        session,
        "poll_response",
        "SELECT max(message_id) FROM poll_response",
        now=now,
        settle=settle,
    )
    key = (*CAMPAIGN_KEY, "option_number")
    # 1. take changed answers out of the bucket they were counted in …
    run_sql(
        session,
        add(
            "analytics_poll_day",
            key,
            ("answers",),
            "SELECT a.organization_id, a.campaign_id, a.community_id, a.language, a.day, "
            "a.option_number, -count(*) FROM analytics_poll_answer a "
            "JOIN poll_response p ON p.campaign_id = a.campaign_id "
            "AND p.contact_id = a.contact_id "
            "WHERE p.message_id > :lo AND p.message_id <= :hi GROUP BY 1, 2, 3, 4, 5, 6",
        ),
        lo,
        hi,
    )
    # 2. … remember the bucket of each answer as it is now …
    fields = ("organization_id", "community_id", "language", "day", "option_number", "message_id")
    run_sql(
        session,
        "INSERT INTO analytics_poll_answer (campaign_id, contact_id, organization_id, "
        "community_id, language, day, option_number, message_id) "
        "SELECT p.campaign_id, p.contact_id, p.organization_id, coalesce(p.community_id, 0), "
        f"p.language, {sql.day('p.created_at')}, p.option_number, p.message_id "
        "FROM poll_response p WHERE p.message_id > :lo AND p.message_id <= :hi "
        "ON CONFLICT (campaign_id, contact_id) DO UPDATE SET "
        + ", ".join(f"{f} = excluded.{f}" for f in fields),
        lo,
        hi,
    )
    # 3. … and count them there.
    run_sql(
        session,
        add(
            "analytics_poll_day",
            key,
            ("answers",),
            "SELECT organization_id, campaign_id, community_id, language, day, option_number, "
            "count(*) FROM analytics_poll_answer WHERE message_id > :lo AND message_id <= :hi "
            "GROUP BY 1, 2, 3, 4, 5, 6",
        ),
        lo,
        hi,
    )
