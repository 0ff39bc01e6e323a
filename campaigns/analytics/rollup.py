"""The incremental rollup pass: event tables → analytics tables, exactly once.

One pass, in one transaction (a savepoint inside the caller's)::

    for each source table (ids only grow):
        (lo, hi] = (last rolled id, highest id seen ≥ settle seconds ago]
        INSERT … SELECT … WHERE id > lo AND id <= hi
            ON CONFLICT DO UPDATE SET n = n + excluded.n      -- deltas, per day of the event
        watermark.last_id = hi

A crash or an exception anywhere rolls the whole pass back, marks included; the next pass redoes
it from the same marks, so no event is counted twice or lost.  Twilio's duplicated and reordered
callbacks are counted once per message and stage through ``analytics_message_status``'s primary
key; distinct contacts per day through ``analytics_contact_day``'s.  The SQL runs on PostgreSQL
and on SQLite (both have ``INSERT … ON CONFLICT DO UPDATE`` and window functions); only day and
interval arithmetic differ.  See docs/analytics.md.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from campaigns.analytics.models import Watermark
from campaigns.db import utcnow
from campaigns.logging import get_logger

log = get_logger(__name__)

DEFAULT_SETTLE_SECONDS = 10.0
ANALYZE_AFTER_ROWS = 100_000
REPLY_WINDOW_HOURS = 72
OPT_OUT_WINDOW_HOURS = 72

STEPS = (
    "deliveries",
    "statuses",
    "inbound",
    "turns",
    "feedback",
    "consent",
    "clicks",
    "contacts",
    "handovers",
    "polls",
)


_ANALYZED = (
    "analytics_message_status",
    "analytics_contact_day",
    "analytics_reply",
    "analytics_poll_answer",
    "analytics_campaign_day",
    "analytics_community_day",
    "analytics_topic_day",
    "analytics_topic_total_day",
)


class RollupInterrupted(RuntimeError):
    """Raised on purpose by ``run_rollup(fail_after=step)``: a crash in the middle of a pass."""


@dataclass
class RollupReport:
    """What one pass read: per source, the id range ``(lo, hi]`` it rolled up."""

    ranges: dict[str, tuple[int, int]] = field(default_factory=dict)
    handovers_closed: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def rows_read(self) -> int:
        return sum(hi - lo for lo, hi in self.ranges.values())


class _Sql:
    """The few expressions that differ between PostgreSQL and SQLite."""

    def __init__(self, dialect: str) -> None:
        self.pg = dialect == "postgresql"

    def day(self, column: str) -> str:
        return f"CAST(({column} AT TIME ZONE 'UTC') AS DATE)" if self.pg else f"date({column})"

    def within(self, earlier: str, later: str, hours: int) -> str:
        """``earlier <= later <= earlier + hours``."""
        if self.pg:
            return f"{earlier} <= {later} AND {later} <= {earlier} + interval '{hours} hours'"
        return (
            f"julianday({earlier}) <= julianday({later}) "
            f"AND julianday({later}) - julianday({earlier}) <= {hours / 24.0}"
        )


def _add(table: str, key: tuple[str, ...], counts: tuple[str, ...], select_sql: str) -> str:
    """``INSERT INTO table (key…, counts…) <select> ON CONFLICT (key) DO UPDATE SET n = n + …``.

    ``organization_id`` is part of every insert (not of the conflict key: the key's own ids
    belong to exactly one organization).
    """
    conflict = [k for k in key if k != "organization_id"]
    sets = ", ".join(f'"{c}" = {table}."{c}" + excluded."{c}"' for c in counts)
    columns = ", ".join(f'"{c}"' for c in (*key, *counts))
    return (
        f"INSERT INTO {table} ({columns}) {select_sql} "
        f"ON CONFLICT ({', '.join(conflict)}) DO UPDATE SET {sets}"
    )


_CAMPAIGN_KEY = ("organization_id", "campaign_id", "community_id", "language", "day")
_COMMUNITY_KEY = ("organization_id", "community_id", "day")
_TOPIC_KEY = ("organization_id", "community_id", "day", "topic", "language")
_TOPIC_TOTAL_KEY = ("organization_id", "community_id", "day", "topic")

_IMPLIED = (
    "implied(status, stage) AS (VALUES ('sent', 'sent'), ('simulated', 'sent'), "
    "('delivered', 'sent'), ('delivered', 'delivered'), ('read', 'sent'), "
    "('read', 'delivered'), ('read', 'read'), ('failed', 'failed'), "
    "('undelivered', 'failed'))"
)


def _range(
    session: Session, source: str, max_sql: str, *, now: dt.datetime, settle: float
) -> tuple[int, int]:
    """The id range this pass may roll up for ``source``, moving its watermark (see Watermark)."""
    mark = session.get(Watermark, source)
    if mark is None:
        mark = Watermark(source=source, last_id=0, seen_id=0, seen_at=None)
        session.add(mark)
    current = int(session.execute(text(max_sql)).scalar() or 0)
    lo = mark.last_id
    if settle <= 0:
        hi = current
        mark.seen_id, mark.seen_at = current, now
    elif mark.seen_at is not None and mark.seen_at <= now - dt.timedelta(seconds=settle):
        hi = mark.seen_id
        mark.seen_id, mark.seen_at = current, now
    else:
        hi = lo
        if mark.seen_at is None:
            mark.seen_id, mark.seen_at = current, now
    hi = max(hi, lo)
    mark.last_id = hi
    session.flush()
    return lo, hi


def run_rollup(
    session: Session,
    *,
    now: dt.datetime | None = None,
    settle_seconds: float = DEFAULT_SETTLE_SECONDS,
    fail_after: str | None = None,
) -> RollupReport:
    """Roll every new event up, exactly once.  Never commits: the task's unit of work does.

    ``fail_after`` names a step of ``STEPS`` after which ``RollupInterrupted`` is raised (for
    tests of the all-or-nothing guarantee); the pass's savepoint is rolled back first.
    """
    if fail_after is not None and fail_after not in STEPS:
        raise ValueError(f"unknown step {fail_after!r}")
    now = now or utcnow()
    sql = _Sql(session.get_bind().dialect.name)
    report = RollupReport()
    with session.begin_nested():
        if sql.pg:
            # A second pass (a second beat, a manual run) waits here instead of double-reading.
            session.execute(text("SELECT pg_advisory_xact_lock(hashtext('faro.analytics.rollup'))"))
        session.expire_all()
        for step in STEPS:
            started = time.perf_counter()
            _STEP_FUNCS[step](session, sql, report, now, settle_seconds)
            report.seconds[step] = round(time.perf_counter() - started, 3)
            if step == fail_after:
                raise RollupInterrupted(f"interrupted after {step}")
        if sql.pg and report.rows_read >= ANALYZE_AFTER_ROWS:
            # After a big catch-up the planner still believes these tables small (autovacuum
            # has not run yet) and would scan them whole in the next, small, pass.
            for table in _ANALYZED:
                session.execute(text(f"ANALYZE {table}"))
    log.info(
        "analytics.rolled_up",
        rows_read=report.rows_read,
        handovers_closed=report.handovers_closed,
    )
    return report


_Step = Callable[[Session, _Sql, RollupReport, dt.datetime, float], None]


def _exec(session: Session, statement: str, lo: int, hi: int) -> None:
    if hi > lo:
        session.execute(text(statement), {"lo": lo, "hi": hi})


def _deliveries(
    session: Session, sql: _Sql, report: RollupReport, now: dt.datetime, settle: float
) -> None:
    lo, hi = report.ranges["deliveries"] = _range(
        session,
        "campaign_delivery",
        "SELECT max(id) FROM campaign_delivery",
        now=now,
        settle=settle,
    )
    _exec(
        session,
        _add(
            "analytics_campaign_day",
            _CAMPAIGN_KEY,
            ("targeted",),
            f"SELECT d.organization_id, d.campaign_id, d.community_id, d.language, "
            f"{sql.day('d.created_at')}, count(*) FROM campaign_delivery d "
            f"WHERE d.id > :lo AND d.id <= :hi GROUP BY 1, 2, 3, 4, 5",
        ),
        lo,
        hi,
    )


def _statuses(
    session: Session, sql: _Sql, report: RollupReport, now: dt.datetime, settle: float
) -> None:
    lo, hi = report.ranges["statuses"] = _range(
        session,
        "message_status_event",
        "SELECT max(id) FROM message_status_event",
        now=now,
        settle=settle,
    )
    _exec(
        session,
        f"WITH {_IMPLIED} "
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
    _exec(
        session,
        _add(
            "analytics_campaign_day",
            _CAMPAIGN_KEY,
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
    _exec(
        session,
        _add(
            "analytics_campaign_failure",
            (*_CAMPAIGN_KEY, "error_code"),
            ("failed",),
            "SELECT organization_id, campaign_id, community_id, language, day, "
            "coalesce(error_code, 0), count(*) FROM analytics_message_status "
            "WHERE event_id > :lo AND event_id <= :hi AND stage = 'failed' "
            "GROUP BY 1, 2, 3, 4, 5, 6",
        ),
        lo,
        hi,
    )


def _contact_days(session: Session, kind: str, column: str, lo: int, hi: int) -> None:
    """Add the contacts first counted in this pass (``kind``) to ``analytics_community_day``."""
    _exec(
        session,
        _add(
            "analytics_community_day",
            _COMMUNITY_KEY,
            (column,),
            "SELECT organization_id, community_id, day, count(*) FROM analytics_contact_day "
            f"WHERE source_id > :lo AND source_id <= :hi AND kind = '{kind}' GROUP BY 1, 2, 3",
        ),
        lo,
        hi,
    )


def _inbound(
    session: Session, sql: _Sql, report: RollupReport, now: dt.datetime, settle: float
) -> None:
    lo, hi = report.ranges["inbound"] = _range(
        session, "message", "SELECT max(id) FROM message", now=now, settle=settle
    )
    _exec(
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
    _exec(
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
    _exec(
        session,
        _add(
            "analytics_campaign_day",
            _CAMPAIGN_KEY,
            ("replies",),
            "SELECT organization_id, campaign_id, community_id, language, day, count(*) "
            "FROM analytics_reply WHERE source_id > :lo AND source_id <= :hi "
            "GROUP BY 1, 2, 3, 4, 5",
        ),
        lo,
        hi,
    )


def _turns(
    session: Session, sql: _Sql, report: RollupReport, now: dt.datetime, settle: float
) -> None:
    lo, hi = report.ranges["turns"] = _range(
        session, "assistant_turn", "SELECT max(id) FROM assistant_turn", now=now, settle=settle
    )
    unanswered = "sum(CASE WHEN t.answered THEN 0 ELSE 1 END)"
    _exec(
        session,
        _add(
            "analytics_community_day",
            _COMMUNITY_KEY,
            ("turns", "unanswered"),
            f"SELECT t.organization_id, coalesce(t.community_id, 0), {sql.day('t.created_at')}, "
            f"count(*), {unanswered} FROM assistant_turn t "
            "WHERE t.id > :lo AND t.id <= :hi GROUP BY 1, 2, 3",
        ),
        lo,
        hi,
    )
    _exec(
        session,
        _add(
            "analytics_topic_day",
            _TOPIC_KEY,
            ("questions", "unanswered"),
            f"SELECT t.organization_id, coalesce(t.community_id, 0), {sql.day('t.created_at')}, "
            f"t.topic, t.language, count(*), {unanswered} FROM assistant_turn t "
            "WHERE t.id > :lo AND t.id <= :hi AND t.topic IS NOT NULL GROUP BY 1, 2, 3, 4, 5",
        ),
        lo,
        hi,
    )
    _exec(
        session,
        _add(
            "analytics_topic_total_day",
            _TOPIC_TOTAL_KEY,
            ("questions", "unanswered"),
            f"SELECT t.organization_id, coalesce(t.community_id, 0), {sql.day('t.created_at')}, "
            f"t.topic, count(*), {unanswered} FROM assistant_turn t "
            "WHERE t.id > :lo AND t.id <= :hi AND t.topic IS NOT NULL GROUP BY 1, 2, 3, 4",
        ),
        lo,
        hi,
    )
    _exec(
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


def _feedback(
    session: Session, sql: _Sql, report: RollupReport, now: dt.datetime, settle: float
) -> None:
    lo, hi = report.ranges["feedback"] = _range(
        session,
        "assistant_feedback",
        "SELECT max(id) FROM assistant_feedback",
        now=now,
        settle=settle,
    )
    _exec(
        session,
        _add(
            "analytics_topic_day",
            _TOPIC_KEY,
            ("feedback_yes", "feedback_no"),
            f"SELECT f.organization_id, coalesce(f.community_id, 0), {sql.day('f.created_at')}, "
            "f.topic, f.language, sum(CASE WHEN f.useful THEN 1 ELSE 0 END), "
            "sum(CASE WHEN f.useful THEN 0 ELSE 1 END) FROM assistant_feedback f "
            "WHERE f.id > :lo AND f.id <= :hi GROUP BY 1, 2, 3, 4, 5",
        ),
        lo,
        hi,
    )
    _exec(
        session,
        _add(
            "analytics_topic_total_day",
            _TOPIC_TOTAL_KEY,
            ("feedback_yes", "feedback_no"),
            f"SELECT f.organization_id, coalesce(f.community_id, 0), {sql.day('f.created_at')}, "
            "f.topic, sum(CASE WHEN f.useful THEN 1 ELSE 0 END), "
            "sum(CASE WHEN f.useful THEN 0 ELSE 1 END) FROM assistant_feedback f "
            "WHERE f.id > :lo AND f.id <= :hi GROUP BY 1, 2, 3, 4",
        ),
        lo,
        hi,
    )


def _consent(
    session: Session, sql: _Sql, report: RollupReport, now: dt.datetime, settle: float
) -> None:
    lo, hi = report.ranges["consent"] = _range(
        session, "consent_event", "SELECT max(id) FROM consent_event", now=now, settle=settle
    )
    _exec(
        session,
        _add(
            "analytics_community_day",
            _COMMUNITY_KEY,
            ("opted_out",),
            f"SELECT e.organization_id, cc.community_id, {sql.day('e.created_at')}, count(*) "
            "FROM consent_event e JOIN contact_community cc ON cc.contact_id = e.contact_id "
            "WHERE e.id > :lo AND e.id <= :hi AND e.state = 'opted_out' GROUP BY 1, 2, 3",
        ),
        lo,
        hi,
    )
    # Attributed to the campaign of the contact's latest delivery at most 72 h before.
    _exec(
        session,
        _add(
            "analytics_campaign_day",
            _CAMPAIGN_KEY,
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


def _clicks(
    session: Session, sql: _Sql, report: RollupReport, now: dt.datetime, settle: float
) -> None:
    lo, hi = report.ranges["clicks"] = _range(
        session, "link_click", "SELECT max(id) FROM link_click", now=now, settle=settle
    )
    _exec(
        session,
        _add(
            "analytics_campaign_day",
            _CAMPAIGN_KEY,
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


def _contacts(
    session: Session, sql: _Sql, report: RollupReport, now: dt.datetime, settle: float
) -> None:
    lo, hi = report.ranges["contacts"] = _range(
        session, "contact", "SELECT max(id) FROM contact", now=now, settle=settle
    )
    _exec(
        session,
        _add(
            "analytics_community_day",
            _COMMUNITY_KEY,
            ("new_contacts",),
            f"SELECT c.organization_id, cc.community_id, {sql.day('c.created_at')}, count(*) "
            "FROM contact c JOIN contact_community cc ON cc.contact_id = c.id "
            "WHERE c.id > :lo AND c.id <= :hi GROUP BY 1, 2, 3",
        ),
        lo,
        hi,
    )


def _handovers(
    session: Session, sql: _Sql, report: RollupReport, now: dt.datetime, settle: float
) -> None:
    lo, hi = report.ranges["handovers"] = _range(
        session, "handover", "SELECT max(id) FROM handover", now=now, settle=settle
    )
    _exec(
        session,
        _add(
            "analytics_community_day",
            _COMMUNITY_KEY,
            ("handovers_opened",),
            f"SELECT h.organization_id, coalesce(h.community_id, 0), {sql.day('h.opened_at')}, "
            "count(*) FROM handover h WHERE h.id > :lo AND h.id <= :hi GROUP BY 1, 2, 3",
        ),
        lo,
        hi,
    )
    # Closing is an update, not an insert: closed handovers not yet kept are found directly
    # (there are few), and the primary key of analytics_handover_close keeps each one once.
    from campaigns.analytics.models import HandoverClose
    from campaigns.assistant.models import Handover, HandoverStatus

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
    statement = _add(
        "analytics_community_day",
        _COMMUNITY_KEY,
        ("handovers_closed",),
        "SELECT :org, :community, :day, :n WHERE true",
    )
    for (org_id, community_id, day), n in per_day.items():
        session.execute(
            text(statement), {"org": org_id, "community": community_id, "day": day, "n": n}
        )
    report.handovers_closed = len(closed)


def _polls(
    session: Session, sql: _Sql, report: RollupReport, now: dt.datetime, settle: float
) -> None:
    # A poll answer is replaced in place when the contact corrects it, with the new message's
    # id: that id (always growing) is the mark.
    lo, hi = report.ranges["polls"] = _range(
        session,
        "poll_response",
        "SELECT max(message_id) FROM poll_response",
        now=now,
        settle=settle,
    )
    key = (*_CAMPAIGN_KEY, "option_number")
    # 1. take changed answers out of the bucket they were counted in …
    _exec(
        session,
        _add(
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
    _exec(
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
    _exec(
        session,
        _add(
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


_STEP_FUNCS: dict[str, _Step] = {
    "deliveries": _deliveries,
    "statuses": _statuses,
    "inbound": _inbound,
    "turns": _turns,
    "feedback": _feedback,
    "consent": _consent,
    "clicks": _clicks,
    "contacts": _contacts,
    "handovers": _handovers,
    "polls": _polls,
}
