"""Organizations, their users and API tokens."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Boolean, Enum, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from campaigns.db import Base, BigId, OrgScoped, utcnow


class Role(enum.StrEnum):
    """What a user may do inside their organization.

    - ``viewer``: a communicator; reads communities, campaigns and engagement.
    - ``manager``: also writes contacts, communities, campaigns and the knowledge base.
    - ``admin``: also manages users and tokens, reads the audit log, reveals one contact's number.
    """

    viewer = "viewer"
    manager = "manager"
    admin = "admin"

    @property
    def rank(self) -> int:
        return {"viewer": 0, "manager": 1, "admin": 2}[self.value]


class Organization(Base):
    """A migration authority, municipality or NGO; everything else belongs to one."""

    __tablename__ = "organization"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(40), default="ngo")
    country: Mapped[str] = mapped_column(String(2))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class User(OrgScoped, Base):
    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[Role] = mapped_column(
        Enum(Role, native_enum=False, length=20, validate_strings=True)
    )
    # Operators run the installation: they may create organizations (and nothing more elsewhere).
    is_operator: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    password_hash: Mapped[str | None] = mapped_column(String(300), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ApiToken(OrgScoped, Base):
    """A bearer token.  The secret is shown once; only its SHA-256 is stored."""

    __tablename__ = "api_token"
    __table_args__ = (UniqueConstraint("token_hash"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("app_user.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100), default="")
    token_hash: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(default=None)
