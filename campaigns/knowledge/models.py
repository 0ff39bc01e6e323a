"""Knowledge base tables."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from campaigns.db import Base, BigId, OrgScoped, utcnow

REVIEW_PERIOD = dt.timedelta(days=180)


class KnowledgeEntry(OrgScoped, Base):
    """The answer to one topic in one language, for one country or for the whole region.

    ``country`` NULL is the regional default, used where no entry for the person's country
    exists.  ``country_key`` repeats ``country`` as ``""`` for the default, because a UNIQUE
    constraint treats NULLs as distinct on both PostgreSQL and SQLite.

    Every create, edit and deactivation bumps ``version`` (from 1) and appends a
    ``KnowledgeRevision``; the assistant reads this table on every question, so an edit is
    answered at once.  An entry is stale when ``review_due`` has passed: it is still answered,
    and listed for review.
    """

    __tablename__ = "knowledge_entry"
    __table_args__ = (UniqueConstraint("organization_id", "topic", "language", "country_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    topic: Mapped[str] = mapped_column(String(40))
    language: Mapped[str] = mapped_column(String(2))
    country: Mapped[str | None] = mapped_column(String(2), default=None)
    country_key: Mapped[str] = mapped_column(String(2), default="")
    body: Mapped[str] = mapped_column(Text)
    source_url: Mapped[str] = mapped_column(String(500))
    reviewed_on: Mapped[dt.date] = mapped_column(Date)
    review_due: Mapped[dt.date] = mapped_column(Date, index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_by_user_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("app_user.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def is_stale(self, today: dt.date) -> bool:
        return self.review_due < today


class KnowledgeRevision(OrgScoped, Base):
    """One version of an entry as it was saved.  Append-only: never updated or deleted."""

    __tablename__ = "knowledge_revision"
    __table_args__ = (UniqueConstraint("entry_id", "version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    entry_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("knowledge_entry.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    source_url: Mapped[str] = mapped_column(String(500))
    reviewed_on: Mapped[dt.date] = mapped_column(Date)
    review_due: Mapped[dt.date] = mapped_column(Date)
    is_active: Mapped[bool] = mapped_column(Boolean)
    edited_by_user_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("app_user.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Hotline(OrgScoped, Base):
    """A verified emergency or help number of one country, given first on the safety topics.

    ``number`` is kept exactly as the official source writes it (``911``, ``800 011 3333``);
    ``names`` holds its name in all four languages; ``topics`` the safety topics it serves.
    """

    __tablename__ = "hotline"
    __table_args__ = (UniqueConstraint("organization_id", "country", "number"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    country: Mapped[str] = mapped_column(String(2))
    number: Mapped[str] = mapped_column(String(40))
    names: Mapped[dict[str, str]] = mapped_column(JSON)
    topics: Mapped[list[str]] = mapped_column(JSON)
    source_url: Mapped[str] = mapped_column(String(500))
    reviewed_on: Mapped[dt.date] = mapped_column(Date)
    review_due: Mapped[dt.date] = mapped_column(Date)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def is_stale(self, today: dt.date) -> bool:
        return self.review_due < today


class InfoHub(OrgScoped, Base):
    """An in-person information point of a community: an office, a help desk, a shelter's desk.

    ``is_example`` marks the demo's fictional hubs, which must never pass for real ones.
    """

    __tablename__ = "info_hub"
    __table_args__ = (UniqueConstraint("community_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    community_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(500))
    opening_hours: Mapped[str] = mapped_column(Text, default="")
    services: Mapped[list[str]] = mapped_column(JSON, default=list)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_example: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
