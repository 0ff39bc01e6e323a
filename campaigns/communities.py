"""Communities: the places a campaign targets and whose engagement is read, each in its own
time zone and language."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from sqlalchemy import JSON, String, Time, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from campaigns.db import Base, BigId, OrgScoped, get_or_404, session_org, utcnow
from campaigns.errors import Conflict, InvalidInput
from campaigns.languages import LANGUAGES
from campaigns.phones import normalize_country


class Community(OrgScoped, Base):
    __tablename__ = "community"
    __table_args__ = (UniqueConstraint("organization_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2))
    region: Mapped[str] = mapped_column(String(200), default="")
    municipality: Mapped[str] = mapped_column(String(200), default="")
    timezone: Mapped[str] = mapped_column(String(64))
    default_language: Mapped[str] = mapped_column(String(2))
    # Local times; a window that wraps midnight (21:00-08:00) is allowed.
    quiet_start: Mapped[dt.time | None] = mapped_column(Time, default=None)
    quiet_end: Mapped[dt.time | None] = mapped_column(Time, default=None)
    extra: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    def in_quiet_hours(self, at: dt.datetime) -> bool:
        if self.quiet_start is None or self.quiet_end is None:
            return False
        local = at.astimezone(zoneinfo.ZoneInfo(self.timezone)).time()
        if self.quiet_start <= self.quiet_end:
            return self.quiet_start <= local < self.quiet_end
        return local >= self.quiet_start or local < self.quiet_end


def validate_timezone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(
            f"unknown time zone {name!r}: use an IANA name", field="timezone"
        ) from exc
    return name


def validate_language(code: str, *, field: str = "language") -> str:
    value = code.strip().lower()
    if value not in LANGUAGES:
        raise InvalidInput(
            f"unknown language {code!r}: use one of {', '.join(LANGUAGES)}", field=field
        )
    return value


def create_community(
    session: Session,
    *,
    name: str,
    country: str,
    timezone: str,
    default_language: str,
    region: str = "",
    municipality: str = "",
    quiet_start: dt.time | None = None,
    quiet_end: dt.time | None = None,
    organization_id: int | None = None,
) -> Community:
    org_id = organization_id or session_org(session)
    if org_id is None:
        raise InvalidInput("organization is required", field="organization_id")
    if (quiet_start is None) != (quiet_end is None):
        raise InvalidInput("quiet hours need both a start and an end", field="quiet_start")
    if session.scalar(
        select(Community.id).where(Community.organization_id == org_id, Community.name == name)
    ):
        raise Conflict(f"a community named {name!r} exists already", field="name")
    community = Community(
        organization_id=org_id,
        name=name,
        country=normalize_country(country),
        timezone=validate_timezone(timezone),
        default_language=validate_language(default_language, field="default_language"),
        region=region,
        municipality=municipality,
        quiet_start=quiet_start,
        quiet_end=quiet_end,
    )
    session.add(community)
    session.flush()
    return community


def get_community(session: Session, community_id: int) -> Community:
    return get_or_404(session, Community, community_id, "community")
