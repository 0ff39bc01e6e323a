"""Contacts: a person reachable on one channel, with a protected address and consent history."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (
    Boolean,
    Enum,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from campaigns.db import Base, BigId, OrgScoped, utcnow


class Channel(enum.StrEnum):
    whatsapp = "whatsapp"
    sms = "sms"


class ConsentState(enum.StrEnum):
    """Whether campaigns may reach the contact.

    ``unknown`` ──opt-in──▶ ``opted_in`` ──opt-out──▶ ``opted_out`` ──opt-in──▶ ``opted_in``

    Every change appends a ``ConsentEvent``.  Opt-out stops campaigns at once; the assistant still
    answers a contact who writes (they asked), but campaigns stay off until they opt back in.
    """

    unknown = "unknown"
    opted_in = "opted_in"
    opted_out = "opted_out"


class ConsentSource(enum.StrEnum):
    import_ = "import"
    api = "api"
    keyword = "keyword"
    twilio_opt_out = "twilio_opt_out"
    twilio_error = "twilio_error"
    inbound = "inbound"


class Contact(OrgScoped, Base):
    __tablename__ = "contact"
    __table_args__ = (
        UniqueConstraint("organization_id", "channel", "address_hash"),
        Index("ix_contact_org_language", "organization_id", "language"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel: Mapped[Channel] = mapped_column(
        Enum(Channel, native_enum=False, length=20, validate_strings=True)
    )
    # Fernet ciphertext of the E.164 number; NULL once erased.
    address_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    # HMAC of channel + number; NULL once erased.
    address_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    country: Mapped[str] = mapped_column(String(2))
    language: Mapped[str] = mapped_column(String(2))
    consent: Mapped[ConsentState] = mapped_column(
        Enum(ConsentState, native_enum=False, length=20, validate_strings=True),
        default=ConsentState.unknown,
    )
    consent_changed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    last_inbound_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    # WhatsApp profile name: personal data, so encrypted like the address.
    profile_name_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    # Demo and simulator contacts: never sent to Twilio, whatever the configuration.
    is_simulated: Mapped[bool] = mapped_column(Boolean, default=False)
    erased: Mapped[bool] = mapped_column(Boolean, default=False)
    erased_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ContactCommunity(Base):
    """Membership of a contact in a community, with the day they joined (drip campaigns)."""

    __tablename__ = "contact_community"
    __table_args__ = (Index("ix_contact_community_community", "community_id", "contact_id"),)

    contact_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("contact.id", ondelete="CASCADE"), primary_key=True
    )
    community_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("community.id", ondelete="CASCADE"), primary_key=True
    )
    joined_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ConsentEvent(OrgScoped, Base):
    """Append-only history of consent changes; rows are never updated or deleted."""

    __tablename__ = "consent_event"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("contact.id", ondelete="CASCADE"), index=True
    )
    state: Mapped[ConsentState] = mapped_column(
        Enum(ConsentState, native_enum=False, length=20, validate_strings=True)
    )
    source: Mapped[ConsentSource] = mapped_column(
        Enum(ConsentSource, native_enum=False, length=20, validate_strings=True)
    )
    detail: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
