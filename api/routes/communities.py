from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from api.deps import ManagerDep, PrincipalDep, SessionDep
from campaigns.communities import (
    Community,
    create_community,
    get_community,
    validate_language,
    validate_timezone,
)
from campaigns.errors import InvalidInput
from campaigns.phones import normalize_country

router = APIRouter(prefix="/v1/communities", tags=["communities"])


class CommunityOut(BaseModel):
    id: int
    name: str
    country: str
    region: str
    municipality: str
    timezone: str
    default_language: str
    quiet_start: dt.time | None
    quiet_end: dt.time | None
    created_at: dt.datetime

    @classmethod
    def of(cls, c: Community) -> CommunityOut:
        return cls.model_validate(c, from_attributes=True)


class CommunityCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    country: str = Field(min_length=2, max_length=2, description="ISO 3166-1 alpha-2")
    region: str = Field(default="", max_length=200)
    municipality: str = Field(default="", max_length=200)
    timezone: str = Field(max_length=64, description="IANA name, e.g. America/Mexico_City")
    default_language: str = Field(max_length=2, description="es, en, ht or fr")
    quiet_start: dt.time | None = Field(default=None, description="local time, e.g. 21:00")
    quiet_end: dt.time | None = Field(default=None, description="local time, e.g. 08:00")


class CommunityUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    region: str | None = Field(default=None, max_length=200)
    municipality: str | None = Field(default=None, max_length=200)
    country: str | None = Field(default=None, min_length=2, max_length=2)
    timezone: str | None = Field(default=None, max_length=64)
    default_language: str | None = Field(default=None, max_length=2)
    quiet_start: dt.time | None = None
    quiet_end: dt.time | None = None


@router.get("")
def list_communities(session: SessionDep, principal: PrincipalDep) -> list[CommunityOut]:
    return [CommunityOut.of(c) for c in session.scalars(select(Community).order_by(Community.id))]


@router.post("", status_code=status.HTTP_201_CREATED)
def create(body: CommunityCreate, session: SessionDep, principal: ManagerDep) -> CommunityOut:
    return CommunityOut.of(create_community(session, **body.model_dump()))


@router.get("/{community_id}")
def get(community_id: int, session: SessionDep, principal: PrincipalDep) -> CommunityOut:
    return CommunityOut.of(get_community(session, community_id))


@router.patch("/{community_id}")
def update(
    community_id: int, body: CommunityUpdate, session: SessionDep, principal: ManagerDep
) -> CommunityOut:
    community = get_community(session, community_id)
    changes = body.model_dump(exclude_unset=True)
    if "country" in changes and changes["country"] is not None:
        changes["country"] = normalize_country(changes["country"])
    if "timezone" in changes and changes["timezone"] is not None:
        validate_timezone(changes["timezone"])
    if "default_language" in changes and changes["default_language"] is not None:
        changes["default_language"] = validate_language(
            changes["default_language"], field="default_language"
        )
    for key, value in changes.items():
        if value is None and key not in ("quiet_start", "quiet_end"):
            raise InvalidInput(f"{key} cannot be null", field=key)
        setattr(community, key, value)
    if (community.quiet_start is None) != (community.quiet_end is None):
        raise InvalidInput("quiet hours need both a start and an end", field="quiet_start")
    session.flush()
    return CommunityOut.of(community)
