"""What a communicator acts on: unanswered questions, spike alerts, stale answers, weak topics.

Spike rule (one community, one topic): the last 7 days (``today`` and the 6 days before) are
compared with the four 7-day weeks before them.  An alert is raised when this week's questions
are at least ``SPIKE_MIN_COUNT`` (10) **and** at least ``SPIKE_FACTOR`` (3) times the baseline's
weekly mean (a topic never asked before alerts at 10).  ``rumour_check`` and
``irregular_route_risks`` alerts are marked ``priority``: rumours and route dangers spread fast.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.orm import Session

from campaigns.analytics.cache import PassCache, cached
from campaigns.analytics.filters import Filters
from campaigns.analytics.models import CampaignDay, CommunityDay, PollDay, TopicDay, TopicTotalDay
from campaigns.analytics.suppression import SUPPRESS_BELOW, Cell, hide_small
from campaigns.assistant.models import UnansweredQuestion
from campaigns.communities import Community
from campaigns.knowledge.models import KnowledgeEntry

SPIKE_MIN_COUNT = 10
SPIKE_FACTOR = 3.0
PRIORITY_TOPICS = frozenset({"rumour_check", "irregular_route_risks"})
SIMILARITY = 0.5
MAX_QUESTIONS_SCANNED = 3000
MIN_FEEDBACK = SUPPRESS_BELOW


@dataclass(frozen=True)
class QuestionGroup:
    """Similar unanswered questions; ``example`` is the most recent one, already redacted."""

    example: str
    count: int | str
    community_id: int | None
    language: str
    last_seen: dt.datetime


@dataclass(frozen=True)
class SpikeAlert:
    community_id: int
    community: str | None
    topic: str
    this_week: int
    baseline_weekly_mean: float | str
    ratio: float | None
    priority: bool


@dataclass(frozen=True)
class StaleEntry:
    id: int
    topic: str
    language: str
    country: str | None
    review_due: dt.date
    days_overdue: int


@dataclass(frozen=True)
class TopicFeedback:
    topic: str
    useful: int | str
    not_useful: int | str
    useful_share: float | None


@dataclass(frozen=True)
class Overview:
    """Headline numbers over the range (each suppressed alone: no total sits beside them)."""

    start: dt.date
    end: dt.date
    targeted: Cell
    sent: Cell
    delivered: Cell
    read: Cell
    replies: Cell
    clicks: Cell
    poll_answers: Cell
    opt_outs: Cell
    active_contacts: Cell
    conversations: Cell
    questions: Cell
    unanswered: Cell
    alerts: list[SpikeAlert]


_STOP_WORDS = """
a al de del el la las los lo un una y o en es que por para con se me mi the to of and is i my
in for on it do can what how an are le les des et du est pour je mwen nan ki yo pou ak li sa m
w ou
"""
_STOP = frozenset(_STOP_WORDS.split())


_PLAIN = str.maketrans("áàâäãéèêëíìîïóòôöõúùûüñç", "aaaaaeeeeiiiiooooouuuunc")


@functools.lru_cache(maxsize=50_000)
def _tokens(text: str) -> frozenset[str]:
    plain = text.lower().translate(_PLAIN)
    words = re.findall(r"[a-z\[\]#]+", plain)
    return frozenset(w for w in words if w not in _STOP and len(w) > 1)


def _similar(a: frozenset[str], b: frozenset[str]) -> bool:
    if not a or not b:
        return a == b
    return len(a & b) / len(a | b) >= SIMILARITY


def unanswered_questions(
    session: Session, filters: Filters, *, exact: bool, limit: int = 20
) -> list[QuestionGroup]:
    """The most frequent unanswered questions in the range, grouped by word overlap.

    Reads the small ``unanswered_question`` table (texts redacted when stored: digits, emails
    and self-introduced names).  Two questions are grouped when their content words (accents
    and stop words dropped) overlap by Jaccard ≥ 0.5; groups are per community and language.
    The most recent ``MAX_QUESTIONS_SCANNED`` questions of the range are grouped.
    """
    start = dt.datetime.combine(filters.start, dt.time(), tzinfo=dt.UTC)
    end = dt.datetime.combine(filters.end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    stmt = (
        select(
            UnansweredQuestion.community_id,
            UnansweredQuestion.language,
            UnansweredQuestion.text_redacted,
            UnansweredQuestion.created_at,
        )
        .where(UnansweredQuestion.created_at >= start, UnansweredQuestion.created_at < end)
        .order_by(UnansweredQuestion.created_at.desc(), UnansweredQuestion.id.desc())
        .limit(MAX_QUESTIONS_SCANNED)
    )
    if filters.community_id is not None:
        stmt = stmt.where(UnansweredQuestion.community_id == filters.community_id)
    if filters.language is not None:
        stmt = stmt.where(UnansweredQuestion.language == filters.language)
    groups: list[_Group] = []
    exact_key: dict[tuple[int | None, str, frozenset[str]], _Group] = {}
    by_word: dict[tuple[int | None, str, str], list[_Group]] = {}
    for community_id, language, text, created_at in session.execute(stmt):
        words = _tokens(text)
        group = exact_key.get((community_id, language, words))
        if group is None:
            # Only groups sharing a word can be similar: look at those, not at every group.
            candidates = {
                id(g): g for w in words for g in by_word.get((community_id, language, w), ())
            }
            group = next((g for g in candidates.values() if _similar(g.words, words)), None)
        if group is None:
            group = _Group(words, community_id, language, text, created_at)
            groups.append(group)
            for w in words:
                by_word.setdefault((community_id, language, w), []).append(group)
        exact_key[(community_id, language, words)] = group
        group.count += 1
    groups.sort(key=lambda g: (-g.count, -g.last_seen.timestamp()))
    return [
        QuestionGroup(
            example=g.example,
            count=hide_small(g.count, exact=exact),
            community_id=g.community_id,
            language=g.language,
            last_seen=g.last_seen,
        )
        for g in groups[:limit]
    ]


@dataclass
class _Group:
    words: frozenset[str]
    community_id: int | None
    language: str
    example: str
    last_seen: dt.datetime
    count: int = 0


def _topic_weeks(
    session: Session,
    *,
    today: dt.date,
    community_id: int | None,
    also: Filters | None = None,
) -> tuple[list[tuple[int, str, int, int]], tuple[int, int]]:
    """Per community and topic: this week's and the baseline's questions (``spike_alerts``);
    with ``also``, in the same scan, the questions and unanswered turns over its range.

    Returns the candidates (``this week ≥ SPIKE_MIN_COUNT``) and the range's two sums.
    """
    week_start = today - dt.timedelta(days=6)
    base_start = week_start - dt.timedelta(days=28)
    day, questions = TopicTotalDay.day, TopicTotalDay.questions
    this_week = func.sum(case((and_(day >= week_start, day <= today), questions), else_=0))
    baseline = func.sum(case((and_(day >= base_start, day < week_start), questions), else_=0))
    columns: list[Any] = [TopicTotalDay.community_id, TopicTotalDay.topic, this_week, baseline]
    lo, hi = base_start, today
    if also is not None:
        in_range = and_(day >= also.start, day <= also.end)
        columns += [
            func.sum(case((in_range, questions), else_=0)),
            func.sum(case((in_range, TopicTotalDay.unanswered), else_=0)),
        ]
        lo, hi = min(lo, also.start), max(hi, also.end)
    stmt = (
        select(*columns)
        .where(day >= lo, day <= hi)
        .group_by(TopicTotalDay.community_id, TopicTotalDay.topic)
    )
    if also is None:
        stmt = stmt.having(this_week >= SPIKE_MIN_COUNT)
    if community_id is not None:
        stmt = stmt.where(TopicTotalDay.community_id == community_id)
    candidates: list[tuple[int, str, int, int]] = []
    asked = unanswered = 0
    for row in session.execute(stmt):
        week, base = int(row[2] or 0), int(row[3] or 0)
        if week >= SPIKE_MIN_COUNT:
            candidates.append((row[0], row[1], week, base))
        if also is not None:
            asked += int(row[4] or 0)
            unanswered += int(row[5] or 0)
    return candidates, (asked, unanswered)


def _alerts(
    session: Session, candidates: list[tuple[int, str, int, int]], *, exact: bool
) -> list[SpikeAlert]:
    found = []
    for cid, topic, week, base in candidates:
        mean = base / 4
        if week >= SPIKE_FACTOR * mean:
            found.append((cid, topic, week, base, mean))
    names = (
        dict(
            session.execute(
                select(Community.id, Community.name).where(Community.id.in_({f[0] for f in found}))
            ).all()
        )
        if found
        else {}
    )
    alerts = [
        SpikeAlert(
            community_id=cid,
            community=names.get(cid),
            topic=topic,
            this_week=week,
            baseline_weekly_mean=(
                round(mean, 2) if exact or base == 0 or base >= SUPPRESS_BELOW else "<5"
            ),
            ratio=round(week / mean, 1) if mean else None,
            priority=topic in PRIORITY_TOPICS,
        )
        for cid, topic, week, base, mean in found
    ]
    alerts.sort(key=lambda a: (not a.priority, -(a.ratio or 1e9), -a.this_week))
    return alerts


def spike_alerts(
    session: Session,
    *,
    today: dt.date,
    community_id: int | None = None,
    exact: bool = False,
    cache: PassCache | None = None,
) -> list[SpikeAlert]:
    """Topics rising in a community this week against its four-week baseline (rule above)."""
    candidates, _ = cached(
        cache,
        session,
        ("spike_alerts", today, community_id),
        lambda: _topic_weeks(session, today=today, community_id=community_id),
    )
    return _alerts(session, candidates, exact=exact)


def stale_entries(session: Session, *, today: dt.date, limit: int = 100) -> list[StaleEntry]:
    """Active knowledge entries whose review date has passed, most overdue first."""
    rows = session.scalars(
        select(KnowledgeEntry)
        .where(KnowledgeEntry.is_active.is_(True), KnowledgeEntry.review_due < today)
        .order_by(KnowledgeEntry.review_due, KnowledgeEntry.id)
        .limit(limit)
    )
    return [
        StaleEntry(
            id=e.id,
            topic=e.topic,
            language=e.language,
            country=e.country,
            review_due=e.review_due,
            days_overdue=(today - e.review_due).days,
        )
        for e in rows
    ]


def lowest_feedback_topics(
    session: Session,
    filters: Filters,
    *,
    limit: int = 5,
    exact: bool = False,
    cache: PassCache | None = None,
) -> list[TopicFeedback]:
    """Topics with the smallest share of "useful" answers (only topics with ≥ 5 answers).

    Unless ``exact``, a yes or no count of 1-4 is ``"<5"`` and the share is then hidden too
    (``None``): with the other count shown it would give the small one back.
    """
    return cached(
        cache,
        session,
        ("lowest_feedback", filters, limit, exact),
        lambda: _lowest_feedback(session, filters, limit=limit, exact=exact),
    )


def _lowest_feedback(
    session: Session, filters: Filters, *, limit: int, exact: bool
) -> list[TopicFeedback]:
    model: Any = TopicDay if filters.language is not None else TopicTotalDay
    yes = func.sum(model.feedback_yes)
    no = func.sum(model.feedback_no)
    stmt = (
        select(model.topic, yes.label("yes"), no.label("no"))
        .where(model.day >= filters.start, model.day <= filters.end)
        .group_by(model.topic)
        .having(yes + no >= MIN_FEEDBACK)
    )
    if filters.community_id is not None:
        stmt = stmt.where(model.community_id == filters.community_id)
    if filters.language is not None:
        stmt = stmt.where(TopicDay.language == filters.language)
    found = []
    for topic, y, n in session.execute(stmt):
        share = round(int(y) / (int(y) + int(n)), 3)
        useful, not_useful = hide_small(int(y), exact=exact), hide_small(int(n), exact=exact)
        hidden = isinstance(useful, str) or isinstance(not_useful, str)
        found.append((share, topic, useful, not_useful, None if hidden else share))
    found.sort(key=lambda t: (t[0], t[1]))
    return [
        TopicFeedback(topic=topic, useful=u, not_useful=nu, useful_share=shown)
        for _, topic, u, nu, shown in found[:limit]
    ]


def overview(
    session: Session,
    filters: Filters,
    *,
    exact: bool,
    today: dt.date,
    cache: PassCache | None = None,
) -> Overview:
    """Reach, engagement, opt-outs and this week's alerts for the dashboard's first page.

    Four statements, one per rollup table: the topic table is read once for the range's
    questions and the alerts' two windows together.
    """
    counts, candidates = cached(
        cache,
        session,
        ("overview", filters, today),
        lambda: _overview_counts(session, filters, today=today),
    )

    def h(key: str) -> Cell:
        return hide_small(counts[key], exact=exact)

    return Overview(
        start=filters.start,
        end=filters.end,
        targeted=h("targeted"),
        sent=h("sent"),
        delivered=h("delivered"),
        read=h("read"),
        replies=h("replies"),
        clicks=h("clicks"),
        poll_answers=h("poll_answers"),
        opt_outs=h("opt_outs"),
        active_contacts=h("active_contacts"),
        conversations=h("conversations"),
        questions=h("questions"),
        unanswered=h("unanswered"),
        alerts=_alerts(session, candidates, exact=exact),
    )


_REACH = ("targeted", "sent", "delivered", "read", "replies", "clicks")


def _overview_counts(
    session: Session, filters: Filters, *, today: dt.date
) -> tuple[dict[str, int], list[tuple[int, str, int, int]]]:
    def in_range(
        model: type[CampaignDay] | type[CommunityDay] | type[PollDay],
    ) -> list[ColumnElement[bool]]:
        conds = [model.day >= filters.start, model.day <= filters.end]
        if filters.community_id is not None:
            conds.append(model.community_id == filters.community_id)
        return conds

    c = session.execute(
        select(*(func.sum(getattr(CampaignDay, k)).label(k) for k in _REACH)).where(
            *in_range(CampaignDay)
        )
    ).one()
    m = session.execute(
        select(
            func.sum(CommunityDay.active_contacts),
            func.sum(CommunityDay.conversations),
            func.sum(CommunityDay.opted_out),
        ).where(*in_range(CommunityDay))
    ).one()
    polls = session.execute(select(func.sum(PollDay.answers)).where(*in_range(PollDay))).scalar()
    candidates, (questions, unanswered) = _topic_weeks(
        session, today=today, community_id=filters.community_id, also=filters
    )
    counts = {k: int(getattr(c, k) or 0) for k in _REACH}
    counts.update(
        poll_answers=int(polls or 0),
        opt_outs=int(m[2] or 0),
        active_contacts=int(m[0] or 0),
        conversations=int(m[1] or 0),
        questions=questions,
        unanswered=unanswered,
    )
    return counts, candidates
