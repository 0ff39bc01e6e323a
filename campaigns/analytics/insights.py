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

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

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


def spike_alerts(
    session: Session, *, today: dt.date, community_id: int | None = None, exact: bool = False
) -> list[SpikeAlert]:
    """Topics rising in a community this week against its four-week baseline (rule above)."""
    week_start = today - dt.timedelta(days=6)
    base_start = week_start - dt.timedelta(days=28)
    this_week = func.sum(case((TopicTotalDay.day >= week_start, TopicTotalDay.questions), else_=0))
    baseline = func.sum(case((TopicTotalDay.day < week_start, TopicTotalDay.questions), else_=0))
    stmt = (
        select(
            TopicTotalDay.community_id,
            TopicTotalDay.topic,
            this_week.label("w"),
            baseline.label("b"),
        )
        .where(TopicTotalDay.day >= base_start, TopicTotalDay.day <= today)
        .group_by(TopicTotalDay.community_id, TopicTotalDay.topic)
        .having(this_week >= SPIKE_MIN_COUNT)
    )
    if community_id is not None:
        stmt = stmt.where(TopicTotalDay.community_id == community_id)
    found = []
    for cid, topic, week, base in session.execute(stmt):
        mean = int(base or 0) / 4
        if week >= SPIKE_FACTOR * mean:
            found.append((cid, topic, int(week), int(base or 0), mean))
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
    session: Session, filters: Filters, *, limit: int = 5, exact: bool = False
) -> list[TopicFeedback]:
    """Topics with the smallest share of "useful" answers (only topics with ≥ 5 answers).

    Unless ``exact``, a yes or no count of 1-4 is ``"<5"`` and the share is then hidden too
    (``None``): with the other count shown it would give the small one back.
    """
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


def overview(session: Session, filters: Filters, *, exact: bool, today: dt.date) -> Overview:
    """Reach, engagement, opt-outs and this week's alerts for the dashboard's first page."""

    def one(stmt: object) -> int:
        value = session.execute(stmt).scalar()  # type: ignore[call-overload]
        return int(value or 0)

    def in_range(
        model: type[CampaignDay] | type[CommunityDay] | type[TopicTotalDay] | type[PollDay],
    ) -> list[object]:
        conds: list[object] = [model.day >= filters.start, model.day <= filters.end]
        if filters.community_id is not None:
            conds.append(model.community_id == filters.community_id)
        return conds

    c = session.execute(
        select(
            *(
                func.sum(getattr(CampaignDay, k)).label(k)
                for k in ("targeted", "sent", "delivered", "read", "replies", "clicks", "opt_outs")
            )
        ).where(*in_range(CampaignDay))  # type: ignore[arg-type]
    ).one()
    m = session.execute(
        select(
            func.sum(CommunityDay.active_contacts),
            func.sum(CommunityDay.conversations),
            func.sum(CommunityDay.opted_out),
        ).where(*in_range(CommunityDay))  # type: ignore[arg-type]
    ).one()
    t = session.execute(
        select(func.sum(TopicTotalDay.questions), func.sum(TopicTotalDay.unanswered)).where(
            *in_range(TopicTotalDay)  # type: ignore[arg-type]
        )
    ).one()
    polls = one(select(func.sum(PollDay.answers)).where(*in_range(PollDay)))  # type: ignore[arg-type]

    def h(v: object) -> Cell:
        return hide_small(int(v or 0), exact=exact)  # type: ignore[call-overload]

    return Overview(
        start=filters.start,
        end=filters.end,
        targeted=h(c.targeted),
        sent=h(c.sent),
        delivered=h(c.delivered),
        read=h(c.read),
        replies=h(c.replies),
        clicks=h(c.clicks),
        poll_answers=h(polls),
        opt_outs=h(m[2]),
        active_contacts=h(m[0]),
        conversations=h(m[1]),
        questions=h(t[0]),
        unanswered=h(t[1]),
        alerts=spike_alerts(session, today=today, community_id=filters.community_id, exact=exact),
    )
