"""The knowledge base: entries (versioned), verified hotlines and information hubs.

Viewers read; managers write.  DELETE deactivates and returns the object: the assistant stops
using it, its history stays.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ManagerDep, PrincipalDep, SessionDep, SettingsDep
from campaigns.db import utcnow
from campaigns.errors import InvalidInput
from campaigns.knowledge import entries, hotlines, hubs
from campaigns.knowledge.models import Hotline, InfoHub, KnowledgeEntry, KnowledgeRevision

router = APIRouter()

Url = Annotated[str, Field(min_length=1, max_length=500, description="https:// address")]
Country = Annotated[str, Field(min_length=2, max_length=2, description="ISO 3166-1 alpha-2")]
Topic = Annotated[str, Field(min_length=1, max_length=40, description="a topic id of TOPICS.md")]
Language = Annotated[str, Field(min_length=2, max_length=2, description="es, en, ht or fr")]
Name = Annotated[str, Field(min_length=1, max_length=200)]
HotlineName = Annotated[str, Field(min_length=1, max_length=300)]
Service = Annotated[str, Field(min_length=1, max_length=100)]


def _today() -> dt.date:
    return utcnow().date()


def _changes(body: BaseModel) -> dict[str, Any]:
    """The fields a PATCH set; none of them may be null."""
    changes = body.model_dump(exclude_unset=True)
    for key, value in changes.items():
        if value is None:
            raise InvalidInput(f"{key} cannot be null", field=key)
    return changes


# --- entries -----------------------------------------------------------------------------------


class EntryOut(BaseModel):
    id: int
    topic: str
    language: str
    country: str | None = Field(description="null: the regional default")
    body: str
    source_url: str
    reviewed_on: dt.date
    review_due: dt.date
    stale: bool = Field(description="review_due has passed")
    version: int
    is_active: bool
    updated_by_user_id: int | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, e: KnowledgeEntry, today: dt.date) -> EntryOut:
        return cls(
            id=e.id,
            topic=e.topic,
            language=e.language,
            country=e.country,
            body=e.body,
            source_url=e.source_url,
            reviewed_on=e.reviewed_on,
            review_due=e.review_due,
            stale=e.is_stale(today),
            version=e.version,
            is_active=e.is_active,
            updated_by_user_id=e.updated_by_user_id,
            created_at=e.created_at,
            updated_at=e.updated_at,
        )


class EntryPage(BaseModel):
    items: list[EntryOut]
    next_cursor: str | None


class RevisionOut(BaseModel):
    version: int
    body: str
    source_url: str
    reviewed_on: dt.date
    review_due: dt.date
    is_active: bool
    edited_by_user_id: int | None
    created_at: dt.datetime

    @classmethod
    def of(cls, r: KnowledgeRevision) -> RevisionOut:
        return cls.model_validate(r, from_attributes=True)


class EntryCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    topic: Topic
    language: Language
    country: Country | None = Field(default=None, description="null: the regional default")
    body: str = Field(min_length=1, max_length=1000, description="plain text")
    source_url: Url
    reviewed_on: dt.date
    review_due: dt.date | None = Field(default=None, description="default: reviewed_on + 180 d")
    is_active: bool = True


class EntryUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    body: str | None = Field(default=None, min_length=1, max_length=1000)
    source_url: Url | None = None
    reviewed_on: dt.date | None = None
    review_due: dt.date | None = None
    is_active: bool | None = None


@router.get("/v1/knowledge", tags=["knowledge"])
def list_entries(
    session: SessionDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, description="page size, at most FARO_PAGE_SIZE_MAX")] = 100,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    topic: Annotated[str | None, Query(max_length=40)] = None,
    language: Annotated[str | None, Query(max_length=2)] = None,
    country: Annotated[str | None, Query(max_length=2)] = None,
    stale: bool | None = None,
    active: bool | None = None,
) -> EntryPage:
    if limit > settings.page_size_max:
        raise InvalidInput(f"limit must be at most {settings.page_size_max}", field="limit")
    today = _today()
    rows, nxt = entries.list_entries(
        session,
        filters=entries.EntryFilter(
            topic=topic, language=language, country=country, stale=stale, is_active=active
        ),
        today=today,
        limit=limit,
        cursor=cursor,
    )
    return EntryPage(items=[EntryOut.of(e, today) for e in rows], next_cursor=nxt)


@router.post("/v1/knowledge", tags=["knowledge"], status_code=status.HTTP_201_CREATED)
def create_entry(body: EntryCreate, session: SessionDep, principal: ManagerDep) -> EntryOut:
    entry = entries.create_entry(session, **body.model_dump(), user_id=principal.user_id)
    return EntryOut.of(entry, _today())


@router.get("/v1/knowledge/{entry_id}", tags=["knowledge"])
def get_entry(entry_id: int, session: SessionDep, principal: PrincipalDep) -> EntryOut:
    return EntryOut.of(entries.get_entry(session, entry_id), _today())


@router.patch("/v1/knowledge/{entry_id}", tags=["knowledge"])
def update_entry(
    entry_id: int, body: EntryUpdate, session: SessionDep, principal: ManagerDep
) -> EntryOut:
    """Save a new version; the assistant answers with it from the next question on."""
    entry = entries.update_entry(
        session, entry_id=entry_id, user_id=principal.user_id, **_changes(body)
    )
    return EntryOut.of(entry, _today())


@router.delete("/v1/knowledge/{entry_id}", tags=["knowledge"])
def deactivate_entry(entry_id: int, session: SessionDep, principal: ManagerDep) -> EntryOut:
    entry = entries.deactivate_entry(session, entry_id=entry_id, user_id=principal.user_id)
    return EntryOut.of(entry, _today())


@router.get("/v1/knowledge/{entry_id}/history", tags=["knowledge"])
def entry_history(entry_id: int, session: SessionDep, principal: PrincipalDep) -> list[RevisionOut]:
    """Every saved version, oldest first."""
    return [RevisionOut.of(r) for r in entries.history(session, entry_id=entry_id)]


# --- hotlines ----------------------------------------------------------------------------------


class HotlineOut(BaseModel):
    id: int
    country: str
    number: str
    names: dict[str, str]
    topics: list[str]
    source_url: str
    reviewed_on: dt.date
    review_due: dt.date
    stale: bool
    is_active: bool
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, h: Hotline, today: dt.date) -> HotlineOut:
        return cls(
            id=h.id,
            country=h.country,
            number=h.number,
            names=dict(h.names),
            topics=list(h.topics),
            source_url=h.source_url,
            reviewed_on=h.reviewed_on,
            review_due=h.review_due,
            stale=h.is_stale(today),
            is_active=h.is_active,
            created_at=h.created_at,
            updated_at=h.updated_at,
        )


class HotlineCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    country: Country
    number: str = Field(min_length=1, max_length=40, description="as the official source writes it")
    names: dict[Language, HotlineName] = Field(
        max_length=4, description="a name in es, en, ht and fr"
    )
    topics: list[Topic] = Field(min_length=1, max_length=10, description="safety topics")
    source_url: Url
    reviewed_on: dt.date
    review_due: dt.date | None = None
    is_active: bool = True


class HotlineUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    country: Country | None = None
    number: str | None = Field(default=None, min_length=1, max_length=40)
    names: dict[Language, HotlineName] | None = Field(default=None, max_length=4)
    topics: list[Topic] | None = Field(default=None, min_length=1, max_length=10)
    source_url: Url | None = None
    reviewed_on: dt.date | None = None
    review_due: dt.date | None = None
    is_active: bool | None = None


@router.get("/v1/hotlines", tags=["hotlines"])
def list_hotlines(
    session: SessionDep,
    principal: PrincipalDep,
    country: Annotated[str | None, Query(max_length=2)] = None,
    topic: Annotated[str | None, Query(max_length=40)] = None,
    active: bool | None = None,
) -> list[HotlineOut]:
    today = _today()
    rows = hotlines.list_hotlines(session, country=country, topic=topic, is_active=active)
    return [HotlineOut.of(h, today) for h in rows]


@router.post("/v1/hotlines", tags=["hotlines"], status_code=status.HTTP_201_CREATED)
def create_hotline(body: HotlineCreate, session: SessionDep, principal: ManagerDep) -> HotlineOut:
    return HotlineOut.of(hotlines.create_hotline(session, **body.model_dump()), _today())


@router.get("/v1/hotlines/{hotline_id}", tags=["hotlines"])
def get_hotline(hotline_id: int, session: SessionDep, principal: PrincipalDep) -> HotlineOut:
    return HotlineOut.of(hotlines.get_hotline(session, hotline_id), _today())


@router.patch("/v1/hotlines/{hotline_id}", tags=["hotlines"])
def update_hotline(
    hotline_id: int, body: HotlineUpdate, session: SessionDep, principal: ManagerDep
) -> HotlineOut:
    hotline = hotlines.update_hotline(session, hotline_id=hotline_id, **_changes(body))
    return HotlineOut.of(hotline, _today())


@router.delete("/v1/hotlines/{hotline_id}", tags=["hotlines"])
def deactivate_hotline(hotline_id: int, session: SessionDep, principal: ManagerDep) -> HotlineOut:
    return HotlineOut.of(hotlines.deactivate_hotline(session, hotline_id=hotline_id), _today())


# --- information hubs --------------------------------------------------------------------------


class HubOut(BaseModel):
    id: int
    community_id: int
    name: str
    address: str
    opening_hours: str
    services: list[str]
    is_active: bool
    is_example: bool = Field(description="a fictional demo hub, not a real place")
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, h: InfoHub) -> HubOut:
        return cls.model_validate(h, from_attributes=True)


class HubCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    community_id: int
    name: Name
    address: str = Field(min_length=1, max_length=500)
    opening_hours: str = Field(default="", max_length=500)
    services: list[Service] = Field(default_factory=list, max_length=20)
    is_active: bool = True
    is_example: bool = False


class HubUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    community_id: int | None = None
    name: Name | None = None
    address: str | None = Field(default=None, min_length=1, max_length=500)
    opening_hours: str | None = Field(default=None, max_length=500)
    services: list[Service] | None = Field(default=None, max_length=20)
    is_active: bool | None = None
    is_example: bool | None = None


@router.get("/v1/info-hubs", tags=["info-hubs"])
def list_hubs(
    session: SessionDep,
    principal: PrincipalDep,
    community_id: int | None = None,
    active: bool | None = None,
) -> list[HubOut]:
    rows = hubs.list_hubs(session, community_id=community_id, is_active=active)
    return [HubOut.of(h) for h in rows]


@router.post("/v1/info-hubs", tags=["info-hubs"], status_code=status.HTTP_201_CREATED)
def create_hub(body: HubCreate, session: SessionDep, principal: ManagerDep) -> HubOut:
    return HubOut.of(hubs.create_hub(session, **body.model_dump()))


@router.get("/v1/info-hubs/{hub_id}", tags=["info-hubs"])
def get_hub(hub_id: int, session: SessionDep, principal: PrincipalDep) -> HubOut:
    return HubOut.of(hubs.get_hub(session, hub_id))


@router.patch("/v1/info-hubs/{hub_id}", tags=["info-hubs"])
def update_hub(hub_id: int, body: HubUpdate, session: SessionDep, principal: ManagerDep) -> HubOut:
    return HubOut.of(hubs.update_hub(session, hub_id=hub_id, **_changes(body)))


@router.delete("/v1/info-hubs/{hub_id}", tags=["info-hubs"])
def deactivate_hub(hub_id: int, session: SessionDep, principal: ManagerDep) -> HubOut:
    return HubOut.of(hubs.deactivate_hub(session, hub_id=hub_id))
