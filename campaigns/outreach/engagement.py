"""What comes back from a campaign: poll answers and clicks on its tracked links.

None of these tables stores a phone number, a message body or an IP address.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from campaigns.db import Base, BigId, OrgScoped, utcnow


class PollResponse(OrgScoped, Base):
    """The one counted answer of a contact to a poll.

    A later answer inside the response window replaces the earlier one (people correct
    themselves: "1… no, 2"), so ``UNIQUE(campaign_id, contact_id)``; ``message_id`` is the
    inbound message that gave the current answer.
    """

    __tablename__ = "poll_response"
    __table_args__ = (
        UniqueConstraint("campaign_id", "contact_id"),
        Index("ix_poll_response_campaign_community", "campaign_id", "community_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(BigId, ForeignKey("campaign.id", ondelete="CASCADE"))
    option_number: Mapped[int] = mapped_column(Integer)
    contact_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("contact.id", ondelete="CASCADE"), index=True
    )
    # The target community the contact belongs to (None if they have left them all).
    community_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("community.id", ondelete="SET NULL"), default=None
    )
    language: Mapped[str] = mapped_column(String(2))
    message_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("message.id", ondelete="CASCADE"), unique=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class TrackedLink(OrgScoped, Base):
    """A URL of a campaign's content, shortened per campaign and community: ``/l/{code}``."""

    __tablename__ = "tracked_link"
    __table_args__ = (UniqueConstraint("campaign_id", "community_id", "url"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(8), unique=True)
    campaign_id: Mapped[int] = mapped_column(BigId, ForeignKey("campaign.id", ondelete="CASCADE"))
    community_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class LinkClick(Base):
    """One request for a tracked link: when, and the kind of client (never its IP)."""

    __tablename__ = "link_click"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    link_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("tracked_link.id", ondelete="CASCADE"), index=True
    )
    clicked_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # ios | android | windows | mac | linux | preview (link-preview fetchers, bots) | other
    user_agent_family: Mapped[str] = mapped_column(String(20))
