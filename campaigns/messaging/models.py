"""Messages in and out, and the append-only log of their delivery status."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal

from sqlalchemy import (
    JSON,
    Boolean,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from campaigns.contacts.models import Channel
from campaigns.db import Base, BigId, OrgScoped, utcnow


class Direction(enum.StrEnum):
    inbound = "inbound"
    outbound = "outbound"


class MessageStatus(enum.StrEnum):
    """Lifecycle of a message; the status only ever moves forward.

    Outbound::

        pending ─▶ submitting ─▶ queued ─▶ sending ─▶ sent ─▶ delivered ─▶ read
           │           │            │         │         │         │
           └───────────┴────────────┴─────────┴─────────┴─────────┴─▶ failed | undelivered

    ``pending`` and ``submitting`` are Faro's own: the row exists; the call to Twilio has not
    started / is in flight.  A send task only ever picks up ``pending`` rows, so a task
    redelivered after a crash never sends twice.  A crash after Twilio accepted a message but
    before the row was updated leaves it ``submitting``: Twilio's first status callback (which
    carries Faro's message id in its URL) completes it; see docs/gateway.md.  The rest are
    Twilio's statuses.  Callbacks arrive duplicated and out of order, so a status lower in this
    order than the current one is recorded in the event log but does not change the message.

    Inbound messages are ``received``.  ``simulated`` marks outbound messages the simulator kept.
    """

    pending = "pending"
    submitting = "submitting"
    queued = "queued"
    sending = "sending"
    sent = "sent"
    delivered = "delivered"
    read = "read"
    failed = "failed"
    undelivered = "undelivered"
    received = "received"
    simulated = "simulated"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def is_terminal(self) -> bool:
        return self in (MessageStatus.failed, MessageStatus.undelivered)


_RANK = {
    MessageStatus.pending: 0,
    MessageStatus.submitting: 1,
    MessageStatus.queued: 2,
    MessageStatus.sending: 3,
    MessageStatus.sent: 4,
    MessageStatus.simulated: 4,
    MessageStatus.delivered: 5,
    MessageStatus.read: 6,
    MessageStatus.failed: 7,
    MessageStatus.undelivered: 7,
    MessageStatus.received: 7,
}


class Purpose(enum.StrEnum):
    """Why an outbound message exists; it picks the queue (replies never wait behind bulk)."""

    reply = "reply"
    consent = "consent"
    handover = "handover"
    campaign = "campaign"
    test = "test"

    @property
    def queue(self) -> str:
        return "bulk" if self in (Purpose.campaign,) else "conversation"


class Sender(OrgScoped, Base):
    """One of the organization's Twilio numbers (or WhatsApp senders), with its send rate."""

    __tablename__ = "sender"
    __table_args__ = (UniqueConstraint("channel", "address"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel: Mapped[Channel] = mapped_column(
        Enum(Channel, native_enum=False, length=20, validate_strings=True)
    )
    # The organization's own number in E.164: not personal data.
    address: Mapped[str] = mapped_column(String(32))
    messaging_service_sid: Mapped[str | None] = mapped_column(String(64), default=None)
    rate_per_second: Mapped[float] = mapped_column(Float, default=10.0)
    is_simulated: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Message(OrgScoped, Base):
    __tablename__ = "message"
    __table_args__ = (
        Index("ix_message_contact_created", "contact_id", "created_at"),
        Index("ix_message_status_created", "status", "created_at"),
        Index("ix_message_campaign", "campaign_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    contact_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("contact.id", ondelete="SET NULL"), default=None
    )
    direction: Mapped[Direction] = mapped_column(
        Enum(Direction, native_enum=False, length=10, validate_strings=True)
    )
    channel: Mapped[Channel] = mapped_column(
        Enum(Channel, native_enum=False, length=20, validate_strings=True)
    )
    twilio_sid: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    status: Mapped[MessageStatus] = mapped_column(
        Enum(MessageStatus, native_enum=False, length=20, validate_strings=True)
    )
    # MessageStatus.rank of ``status``, so "only move forward" is one conditional UPDATE.
    status_rank: Mapped[int] = mapped_column(Integer, default=0)
    error_code: Mapped[int | None] = mapped_column(Integer, default=None)
    sender_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("sender.id", ondelete="SET NULL"), default=None
    )
    purpose: Mapped[Purpose | None] = mapped_column(
        Enum(Purpose, native_enum=False, length=20, validate_strings=True), default=None
    )
    # text | media | location | button (inbound); text | template (outbound)
    kind: Mapped[str] = mapped_column(String(20), default="text")
    # Erasable: NULL after the contact asks to be forgotten or after retention.
    body: Mapped[str | None] = mapped_column(Text, default=None)
    content_sid: Mapped[str | None] = mapped_column(String(64), default=None)
    content_variables: Mapped[dict[str, str] | None] = mapped_column(JSON, default=None)
    num_media: Mapped[int] = mapped_column(Integer, default=0)
    # A button reply's payload (set by Faro's own templates, not personal data).
    button_payload: Mapped[str | None] = mapped_column(String(256), default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    submitted_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    # Inbound: when the conversation task finished with it (the reaper re-publishes the rest).
    handled_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    # Inbound: a lease taken by the conversation task while it asks the assistant.
    handling_started_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    # Erasure confirmations: erase the contact once this message has left.
    then_erase: Mapped[bool] = mapped_column(Boolean, default=False)
    simulated: Mapped[bool] = mapped_column(Boolean, default=False)
    # Outbound campaign and test messages: the campaign they came from (poll replies find it).
    campaign_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("campaign.id", ondelete="SET NULL"), default=None
    )
    segments: Mapped[int | None] = mapped_column(Integer, default=None)
    price: Mapped[Decimal | None] = mapped_column(Numeric(10, 5), default=None)
    price_unit: Mapped[str | None] = mapped_column(String(3), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class MessageStatusEvent(OrgScoped, Base):
    """Append-only: every status Twilio reported, in the order it arrived."""

    __tablename__ = "message_status_event"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("message.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[MessageStatus] = mapped_column(
        Enum(MessageStatus, native_enum=False, length=20, validate_strings=True)
    )
    error_code: Mapped[int | None] = mapped_column(Integer, default=None)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
