"""What every rollup step shares: the pass report, the SQL that differs between PostgreSQL and
SQLite, the additive upsert, and the per-source high-water marks."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.orm import Session

from campaigns.analytics.models import Watermark


@dataclass
class RollupReport:
    """What one pass read: per source, the id range ``(lo, hi]`` it rolled up."""

    ranges: dict[str, tuple[int, int]] = field(default_factory=dict)
    handovers_closed: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def rows_read(self) -> int:
        return sum(hi - lo for lo, hi in self.ranges.values())

    @property
    def changed(self) -> bool:
        """Whether the pass may have written a rollup table: every write is of a source row in
        a claimed range, except handover closes (an update, found directly)."""
        return self.rows_read > 0 or self.handovers_closed > 0


class Sql:
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


def add(table: str, key: tuple[str, ...], counts: tuple[str, ...], select_sql: str) -> str:
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


CAMPAIGN_KEY = ("organization_id", "campaign_id", "community_id", "language", "day")
COMMUNITY_KEY = ("organization_id", "community_id", "day")
TOPIC_KEY = ("organization_id", "community_id", "day", "topic", "language")
TOPIC_TOTAL_KEY = ("organization_id", "community_id", "day", "topic")


def claim_range(
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


Step = Callable[[Session, Sql, RollupReport, dt.datetime, float], None]


def run_sql(session: Session, statement: str, lo: int, hi: int) -> None:
    if hi > lo:
        session.execute(text(statement), {"lo": lo, "hi": hi})
