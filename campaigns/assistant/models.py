"""The assistant's records: conversation state, turns, unanswered questions, feedback, handovers."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Boolean, Enum, Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from campaigns.db import Base, BigId, OrgScoped, utcnow


class Awaiting(enum.StrEnum):
    """What the assistant asked last, so a bare "1" or "sí" is understood."""

    menu = "menu"
    language = "language"
    feedback = "feedback"
    handover_offer = "handover_offer"


class ConversationState(OrgScoped, Base):
    __tablename__ = "conversation_state"

    contact_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("contact.id", ondelete="CASCADE"), primary_key=True
    )
    awaiting: Mapped[Awaiting | None] = mapped_column(
        Enum(Awaiting, native_enum=False, length=20, validate_strings=True), default=None
    )
    last_topic: Mapped[str | None] = mapped_column(String(40), default=None)
    last_turn_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    disclaimer_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Turn(OrgScoped, Base):
    """One inbound message as the assistant understood it (no text: see UnansweredQuestion)."""

    __tablename__ = "assistant_turn"
    __table_args__ = (
        UniqueConstraint("message_id"),
        Index("ix_assistant_turn_org_created", "organization_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(BigId, ForeignKey("message.id", ondelete="CASCADE"))
    community_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("community.id", ondelete="SET NULL"), default=None, index=True
    )
    language: Mapped[str] = mapped_column(String(2))
    intent: Mapped[str | None] = mapped_column(String(60), default=None)
    confidence: Mapped[float | None] = mapped_column(Float, default=None)
    topic: Mapped[str | None] = mapped_column(String(40), default=None, index=True)
    answered: Mapped[bool] = mapped_column(Boolean, default=False)
    # rasa | menu | feedback | language | handover | keyword | unavailable | media
    source: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class UnansweredQuestion(OrgScoped, Base):
    """A question the assistant could not answer, with digits, emails and names redacted."""

    __tablename__ = "unanswered_question"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("message.id", ondelete="CASCADE"), unique=True
    )
    community_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("community.id", ondelete="SET NULL"), default=None, index=True
    )
    language: Mapped[str] = mapped_column(String(2))
    text_redacted: Mapped[str] = mapped_column(Text)
    intent: Mapped[str | None] = mapped_column(String(60), default=None)
    confidence: Mapped[float | None] = mapped_column(Float, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


class Feedback(OrgScoped, Base):
    """A one-tap "was this useful?" answer, per topic and language (anonymous)."""

    __tablename__ = "assistant_feedback"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("message.id", ondelete="CASCADE"), unique=True
    )
    community_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("community.id", ondelete="SET NULL"), default=None
    )
    topic: Mapped[str] = mapped_column(String(40), index=True)
    language: Mapped[str] = mapped_column(String(2))
    useful: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class HandoverStatus(enum.StrEnum):
    """open ──reply*──▶ open ──close──▶ closed.  While open the assistant stays silent."""

    open = "open"
    closed = "closed"


class Handover(OrgScoped, Base):
    __tablename__ = "handover"
    __table_args__ = (Index("ix_handover_org_status", "organization_id", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contact.id", ondelete="CASCADE"))
    community_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("community.id", ondelete="SET NULL"), default=None
    )
    topic: Mapped[str | None] = mapped_column(String(40), default=None)
    language: Mapped[str] = mapped_column(String(2))
    status: Mapped[HandoverStatus] = mapped_column(
        Enum(HandoverStatus, native_enum=False, length=10, validate_strings=True),
        default=HandoverStatus.open,
    )
    opened_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    first_reply_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    closed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    closed_by_user_id: Mapped[int | None] = mapped_column(BigId, default=None)
