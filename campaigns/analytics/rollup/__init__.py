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

from sqlalchemy import text
from sqlalchemy.orm import Session

from campaigns.analytics.cache import COUNTER_SOURCE
from campaigns.analytics.models import Watermark
from campaigns.analytics.rollup import campaign, community
from campaigns.analytics.rollup.base import RollupReport, Sql, Step
from campaigns.db import utcnow
from campaigns.logging import get_logger

__all__ = ["STEPS", "RollupInterrupted", "RollupReport", "run_rollup"]

log = get_logger(__name__)

DEFAULT_SETTLE_SECONDS = 10.0
ANALYZE_AFTER_ROWS = 100_000

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
    sql = Sql(session.get_bind().dialect.name)
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
        if report.changed:
            _count_pass(session)
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


def _count_pass(session: Session) -> None:
    # Cached analytics results are keyed on the number of passes that changed a rollup table
    # (``analytics.cache``).  No ``seen_at``: it is no source, and the rollup-lag metric
    # skips it.
    mark = session.get(Watermark, COUNTER_SOURCE)
    if mark is None:
        session.add(Watermark(source=COUNTER_SOURCE, last_id=1, seen_id=0, seen_at=None))
    else:
        mark.last_id += 1
    session.flush()


_STEP_FUNCS: dict[str, Step] = {
    "deliveries": campaign.deliveries,
    "statuses": campaign.statuses,
    "inbound": community.inbound,
    "turns": community.turns,
    "feedback": community.feedback,
    "consent": campaign.consent,
    "clicks": campaign.clicks,
    "contacts": community.contacts,
    "handovers": community.handovers,
    "polls": campaign.polls,
}
