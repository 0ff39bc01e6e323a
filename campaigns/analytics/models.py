"""Analytics tables: the rollups the API reads, and the bookkeeping that keeps them exact.

Rollups (what the API reads; one row per bucket, counters only ever incremented by the pass):

- ``analytics_campaign_day``   campaign x community x language x day: targeted, sent, delivered,
  read, failed, replies, clicks, opt-outs, segments, cost;
- ``analytics_campaign_failure`` the same key x Twilio error code: failed messages;
- ``analytics_poll_day``       campaign x community x language x day x option: answers;
- ``analytics_community_day``  community x day: active contacts, new contacts, opt-outs,
  conversations, turns, unanswered turns, handovers opened and closed;
- ``analytics_topic_day``      community x day x topic x language: questions, unanswered,
  feedback yes / no; ``analytics_topic_total_day`` the same over all languages;
- ``analytics_handover_close`` one row per closed handover: its community, day and seconds to
  close (a median is not additive, so it is computed from these rows).

Bookkeeping (never read by the API): ``analytics_watermark`` (per-source high-water marks),
``analytics_message_status`` (each message counted once per stage reached),
``analytics_contact_day`` (distinct contacts per community and day), ``analytics_reply`` (one
reply per delivery), ``analytics_poll_answer`` (the answer each contact's poll is counted under).

Days are UTC calendar days.  ``community_id = 0`` is "no community" (a turn of a contact in no
community, a poll answer of a contact who left every target community); ``language = ""`` is
"no language" (link clicks, which are counted per campaign and community only).  None of these
tables has a phone number, a name or a message body; contact ids appear only in bookkeeping.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import BigInteger, Date, Index, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from campaigns.db import Base, BigId, OrgScoped

# Stored as plain integers, without foreign keys: rollups outlive the rows they count, and a
# foreign key on a multi-million-row table would slow every delete of a campaign or community.
_Count = BigInteger().with_variant(Integer(), "sqlite")


def _n() -> Mapped[int]:
    return mapped_column(_Count, default=0, server_default="0")


class CampaignDay(OrgScoped, Base):
    __tablename__ = "analytics_campaign_day"
    __table_args__ = (Index("ix_analytics_campaign_day_org_day", "organization_id", "day"),)

    campaign_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    community_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    language: Mapped[str] = mapped_column(String(2), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    targeted: Mapped[int] = _n()
    sent: Mapped[int] = _n()
    delivered: Mapped[int] = _n()
    read: Mapped[int] = _n()
    failed: Mapped[int] = _n()
    replies: Mapped[int] = _n()
    clicks: Mapped[int] = _n()
    opt_outs: Mapped[int] = _n()
    segments: Mapped[int] = _n()
    cost: Mapped[Decimal] = mapped_column(Numeric(14, 5), default=0, server_default="0")


class CampaignFailure(OrgScoped, Base):
    __tablename__ = "analytics_campaign_failure"

    campaign_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    community_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    language: Mapped[str] = mapped_column(String(2), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    # Twilio's error code; 0 when the failure carried none.
    error_code: Mapped[int] = mapped_column(Integer, primary_key=True)
    failed: Mapped[int] = _n()


class PollDay(OrgScoped, Base):
    __tablename__ = "analytics_poll_day"

    campaign_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    community_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    language: Mapped[str] = mapped_column(String(2), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    option_number: Mapped[int] = mapped_column(Integer, primary_key=True)
    answers: Mapped[int] = _n()


class CommunityDay(OrgScoped, Base):
    __tablename__ = "analytics_community_day"
    __table_args__ = (Index("ix_analytics_community_day_org_day", "organization_id", "day"),)

    community_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    active_contacts: Mapped[int] = _n()
    new_contacts: Mapped[int] = _n()
    opted_out: Mapped[int] = _n()
    conversations: Mapped[int] = _n()
    turns: Mapped[int] = _n()
    unanswered: Mapped[int] = _n()
    handovers_opened: Mapped[int] = _n()
    handovers_closed: Mapped[int] = _n()


class TopicDay(OrgScoped, Base):
    __tablename__ = "analytics_topic_day"
    __table_args__ = (Index("ix_analytics_topic_day_org_day", "organization_id", "day"),)

    community_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    topic: Mapped[str] = mapped_column(String(40), primary_key=True)
    language: Mapped[str] = mapped_column(String(2), primary_key=True)
    questions: Mapped[int] = _n()
    unanswered: Mapped[int] = _n()
    feedback_yes: Mapped[int] = _n()
    feedback_no: Mapped[int] = _n()


class TopicTotalDay(OrgScoped, Base):
    """``TopicDay`` summed over languages: what most queries and the spike alerts read (a
    quarter of the rows when a community speaks four languages)."""

    __tablename__ = "analytics_topic_total_day"
    __table_args__ = (Index("ix_analytics_topic_total_day_org_day", "organization_id", "day"),)

    community_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    topic: Mapped[str] = mapped_column(String(40), primary_key=True)
    questions: Mapped[int] = _n()
    unanswered: Mapped[int] = _n()
    feedback_yes: Mapped[int] = _n()
    feedback_no: Mapped[int] = _n()


class HandoverClose(OrgScoped, Base):
    __tablename__ = "analytics_handover_close"

    handover_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    community_id: Mapped[int] = mapped_column(BigId, index=True)
    day: Mapped[dt.date] = mapped_column(Date, index=True)
    seconds: Mapped[int] = mapped_column(_Count)


# --- bookkeeping ------------------------------------------------------------------------------


class Watermark(Base):
    """Per source table: the last id rolled up, and the latest id seen with when it was seen.

    A pass rolls up ids in ``(last_id, upper]`` where ``upper`` is an id seen at least
    ``settle`` seconds earlier: an id is taken from its sequence before its transaction commits,
    so the newest ids may still have invisible neighbours below them.
    """

    __tablename__ = "analytics_watermark"

    source: Mapped[str] = mapped_column(String(40), primary_key=True)
    last_id: Mapped[int] = mapped_column(_Count, default=0)
    seen_id: Mapped[int] = mapped_column(_Count, default=0)
    seen_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class MessageStage(Base):
    """A campaign message that reached a stage (sent, delivered, read, failed), once.

    Twilio's callbacks arrive duplicated and out of order; a ``read`` implies ``delivered`` and
    ``sent``.  ``event_id`` is the first status event that reached the stage: the rows a pass
    inserted are exactly those with ``event_id`` in the pass's range.
    """

    __tablename__ = "analytics_message_status"

    message_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    stage: Mapped[str] = mapped_column(String(10), primary_key=True)
    event_id: Mapped[int] = mapped_column(BigId, index=True)
    organization_id: Mapped[int] = mapped_column(BigId)
    campaign_id: Mapped[int] = mapped_column(BigId)
    community_id: Mapped[int] = mapped_column(BigId)
    language: Mapped[str] = mapped_column(String(2))
    day: Mapped[dt.date] = mapped_column(Date)
    error_code: Mapped[int | None] = mapped_column(Integer, default=None)


class ContactDay(Base):
    """A contact counted once per community, day and kind (``active`` or ``conversation``)."""

    __tablename__ = "analytics_contact_day"

    kind: Mapped[str] = mapped_column(String(12), primary_key=True)
    community_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    contact_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # The message (active) or turn (conversation) that first counted it.
    source_id: Mapped[int] = mapped_column(BigId, index=True)
    organization_id: Mapped[int] = mapped_column(BigId)


class Reply(Base):
    """A delivery the contact answered within 72 hours, counted once."""

    __tablename__ = "analytics_reply"

    delivery_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # The first inbound message that answered it.
    source_id: Mapped[int] = mapped_column(BigId, index=True)
    organization_id: Mapped[int] = mapped_column(BigId)
    campaign_id: Mapped[int] = mapped_column(BigId)
    community_id: Mapped[int] = mapped_column(BigId)
    language: Mapped[str] = mapped_column(String(2))
    day: Mapped[dt.date] = mapped_column(Date)


class PollAnswer(Base):
    """The bucket a contact's poll answer is counted in, so a changed answer moves it."""

    __tablename__ = "analytics_poll_answer"

    campaign_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    contact_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    organization_id: Mapped[int] = mapped_column(BigId)
    community_id: Mapped[int] = mapped_column(BigId)
    language: Mapped[str] = mapped_column(String(2))
    day: Mapped[dt.date] = mapped_column(Date)
    option_number: Mapped[int] = mapped_column(Integer)
    message_id: Mapped[int] = mapped_column(BigId, index=True)
