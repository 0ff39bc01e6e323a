"""Tables of the web dashboard's sign-in: server-side sessions and recent failed attempts."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from campaigns.db import Base, BigId, OrgScoped, utcnow


class WebSession(OrgScoped, Base):
    """One signed-in browser.

    The cookie carries a random id; only its SHA-256 is stored, so a copy of this table opens no
    browser session.  A row lives until logout (deleted), expiry (idle or absolute), a password
    change (every row of the user is deleted, and ``password_stamp`` no longer matches if the
    password changed by another path), or the user's deactivation.
    """

    __tablename__ = "web_session"
    __table_args__ = (UniqueConstraint("token_hash"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("app_user.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64))
    # Per-session secret echoed by every form of the signed-in pages.
    csrf_token: Mapped[str] = mapped_column(String(64))
    # A fingerprint of the password hash at sign-in: another password means another stamp.
    password_stamp: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]


class AuthFailure(Base):
    """A failed sign-in or bearer-token attempt, kept for the throttling window only.

    ``key_hash`` is a keyed hash of the account email or client address: neither is stored.
    """

    __tablename__ = "auth_failure"
    __table_args__ = (Index("ix_auth_failure_scope_key_at", "scope", "key_hash", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    scope: Mapped[str] = mapped_column(String(20))
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
