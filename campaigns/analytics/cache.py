"""Analytics results kept until the next rollup pass: the numbers cannot change in between.

The API reads only the rollup tables, and only a rollup pass writes them, in one transaction
that also counts the pass (row ``COUNTER_SOURCE`` of ``analytics_watermark``).  So a result
computed after reading pass ``n`` stays right until pass ``n + 1`` commits, and keying it on
``(organization, pass, query, filters, role, page)`` means it is never served stale: the next
pass changes the key.  The counter is read first: a pass that commits while a result is
being computed makes it newer than its key, never older.

Only numbers are kept — names of communities and campaigns are looked up per request (they can
be renamed at any time).  Without a pass counter (no pass has run, or rows were written by hand
as tests do) nothing is cached.  One cache per process (the app's state), bounded, least
recently used out first, safe to share between the threads that serve requests.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.analytics.models import Watermark
from campaigns.db import session_org

T = TypeVar("T")

COUNTER_SOURCE = "rollup_pass"
MAX_ENTRIES = 256


def current_pass(session: Session) -> int | None:
    """The number of the last committed rollup pass, or ``None`` if none has run."""
    value = session.execute(
        select(Watermark.last_id).where(Watermark.source == COUNTER_SOURCE)
    ).scalar_one_or_none()
    return None if value is None else int(value)


class PassCache:
    """Results by key, each valid for one rollup pass (see the module docstring)."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_entries
        self.hits = 0
        self.misses = 0

    def get(self, session: Session, key: Hashable, compute: Callable[[], T]) -> T:
        """``compute()``, or what it returned for the same key since the last pass."""
        pass_id = current_pass(session)
        if pass_id is None:
            return compute()
        full = (session_org(session), pass_id, key)
        with self._lock:
            if full in self._entries:
                self._entries.move_to_end(full)
                self.hits += 1
                value: T = self._entries[full]
                return value
        value = compute()
        with self._lock:
            self.misses += 1
            self._entries[full] = value
            self._entries.move_to_end(full)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return value


def cached(cache: PassCache | None, session: Session, key: Hashable, compute: Callable[[], T]) -> T:
    """``compute()`` through ``cache`` when there is one."""
    return compute() if cache is None else cache.get(session, key, compute)
