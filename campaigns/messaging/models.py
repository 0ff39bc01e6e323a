"""Messages in and out, and the append-only log of their delivery status."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal

from sqlalchemy import Enum, ForeignKey, Index, Integer, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from campaigns.contacts.models import Channel
from campaigns.db import Base, BigId, OrgScoped, utcnow


class Direction(enum.StrEnum):
    inbound = "inbound"
    outbound = "outbound"


class MessageStatus(enum.StrEnum):
    """Lifecycle of a message; the status only ever moves forward.

    Outbound::

        pending ─▶ queued ─▶ sending ─▶ sent ─▶ delivered ─▶ read
           │          │         │         │         │
           └──────────┴─────────┴─────────┴─────────┴─▶ failed | undelivered   (terminal)

    ``pending`` is Faro's own: the row exists, the send has not reached Twilio.  The rest are
    Twilio's statuses.  Callbacks arrive duplicated and out of order, so a status lower in this
    order than the current one is recorded in the event log but does not change the message.

    Inbound messages are ``received``.  ``simulated`` marks outbound messages the simulator kept.
    """

    pending = "pending"
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
    MessageStatus.queued: 1,
    MessageStatus.sending: 2,
    MessageStatus.sent: 3,
    MessageStatus.simulated: 3,
    MessageStatus.delivered: 4,
    MessageStatus.read: 5,
    MessageStatus.failed: 6,
    MessageStatus.undelivered: 6,
    MessageStatus.received: 6,
}


class Message(OrgScoped, Base):
    __tablename__ = "message"
    __table_args__ = (Index("ix_message_contact_created", "contact_id", "created_at"),)

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
    error_code: Mapped[int | None] = mapped_column(Integer, default=None)
    # Erasable: NULL after the contact asks to be forgotten or after retention.
    body: Mapped[str | None] = mapped_column(Text, default=None)
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
