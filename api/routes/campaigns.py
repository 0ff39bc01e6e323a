"""Campaigns: authoring, the two-person approval, scheduling, pause/resume/cancel, runs and the
previews a manager reads before launching.

Viewers read; managers (and admins) write and move campaigns through their lifecycle; nobody
approves a campaign they created, edited or submitted.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from api.deps import CipherDep, ManagerDep, PrincipalDep, SessionDep
from campaigns.db import utcnow
from campaigns.organizations.models import Role
from campaigns.outreach import editing, lifecycle, links, polls, preview, runs, trial
from campaigns.outreach.models import (
    Campaign,
    CampaignContent,
    CampaignKind,
    CampaignRun,
    CampaignStatus,
    PollOption,
    RunStatus,
)
from campaigns.outreach.schedules import RunTime
from campaigns.outreach.validation import ContentInput, OptionInput

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"])

Language = Annotated[str, Field(min_length=2, max_length=2, description="es, en, ht or fr")]
ScheduleIn = Annotated[
    dict[str, Any],
    Field(
        description="{'type': 'once', 'local': '2026-12-01T09:00'} | {'type': 'rrule', "
        "'rrule': 'FREQ=WEEKLY;BYDAY=MO,TH', 'local_time': '09:00', 'start': '2026-12-01', "
        "'until': null} | {'type': 'drip', 'local_time': '10:00'}; times are each community's "
        "local time",
        examples=[{"type": "once", "local": "2026-12-01T09:00"}],
    ),
]


class Filters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    languages: list[Language] = Field(default_factory=list, max_length=4)
    channels: list[str] = Field(default_factory=list, max_length=2, description="whatsapp, sms")


class CampaignCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    objective: str = Field(default="", max_length=2000)
    topic: str = Field(min_length=1, max_length=40, description="a topic id of TOPICS.md")
    kind: CampaignKind
    fallback_language: Language = "es"
    filters: Filters | None = None
    schedule: ScheduleIn | None = None
    pacing_minutes: int = Field(default=0, ge=0, le=1440, description="0: all at once")
    response_window_hours: int | None = Field(default=None, ge=1, le=720, description="polls")
    community_ids: list[int] = Field(default_factory=list, max_length=1000)


class CampaignUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    objective: str | None = Field(default=None, max_length=2000)
    topic: str | None = Field(default=None, min_length=1, max_length=40)
    fallback_language: Language | None = None
    filters: Filters | None = None
    schedule: ScheduleIn | None = None
    pacing_minutes: int | None = Field(default=None, ge=0, le=1440)
    response_window_hours: int | None = Field(default=None, ge=1, le=720)


class CampaignOut(BaseModel):
    id: int
    name: str
    objective: str
    topic: str
    kind: CampaignKind
    status: CampaignStatus
    version: int
    paused: bool
    filters: dict[str, Any]
    fallback_language: str
    schedule: dict[str, Any] | None
    pacing_minutes: int
    response_window_hours: int | None
    community_ids: list[int]
    created_by_user_id: int | None
    edited_by_user_id: int | None
    submitted_by_user_id: int | None
    submitted_at: dt.datetime | None
    approved_by_user_id: int | None
    approved_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, c: Campaign, community_ids: list[int]) -> CampaignOut:
        fields = {k: getattr(c, k) for k in cls.model_fields if k != "community_ids"}
        return cls(**fields, community_ids=community_ids)


class ContentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    language: Language
    step: int = Field(default=1, ge=1, le=30, description="drips: 1, 2, 3…")
    offset_days: int = Field(default=0, ge=0, le=3650, description="drips: days after joining")
    sms_text: str | None = Field(default=None, max_length=5000)
    whatsapp_content_sid: str | None = Field(default=None, max_length=64, description="HX…")
    whatsapp_variables: dict[str, str] = Field(default_factory=dict, max_length=50)
    whatsapp_text: str | None = Field(
        default=None, max_length=10000, description="free text for the 24-hour window"
    )


class ContentOut(BaseModel):
    language: str
    step: int
    offset_days: int
    sms_text: str | None
    whatsapp_content_sid: str | None
    whatsapp_variables: dict[str, str]
    whatsapp_text: str | None

    @classmethod
    def of(cls, c: CampaignContent) -> ContentOut:
        return cls.model_validate(c, from_attributes=True)


class OptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: int = Field(ge=1, le=10)
    labels: dict[str, str] = Field(max_length=4, description="label per language")
    aliases: dict[str, list[str]] = Field(
        default_factory=dict, max_length=4, description="extra reply words per language"
    )


class OptionOut(BaseModel):
    number: int
    labels: dict[str, str]
    aliases: dict[str, list[str]]

    @classmethod
    def of(cls, o: PollOption) -> OptionOut:
        return cls.model_validate(o, from_attributes=True)


class Targets(BaseModel):
    model_config = ConfigDict(extra="forbid")
    community_ids: list[int] = Field(max_length=1000)


class RunOut(BaseModel):
    id: int
    community_id: int
    scheduled_for: dt.datetime
    due_at: dt.datetime
    status: RunStatus
    campaign_version: int
    planned_count: int | None
    created_at: dt.datetime

    @classmethod
    def of(cls, r: CampaignRun) -> RunOut:
        return cls.model_validate(r, from_attributes=True)


class MessageOut(BaseModel):
    language: str
    step: int
    offset_days: int
    sms_text: str | None
    sms_segments: int
    sms_encoding: str | None
    whatsapp_text: str | None
    whatsapp_content_sid: str | None
    whatsapp_variables: dict[str, str]


class CommunityPreviewOut(BaseModel):
    community_id: int
    name: str
    timezone: str
    recipients: int
    by_language: dict[str, dict[str, int]] = Field(description="language → channel → contacts")
    excluded: dict[str, int] = Field(description="reason → contacts")
    sms_segments: int
    estimated_cost: Decimal | None


class PreviewOut(BaseModel):
    campaign_id: int
    version: int
    as_of: dt.datetime
    price_per_segment: Decimal | None
    recipients: int = Field(description="sum over communities")
    distinct_recipients: int = Field(description="contacts, once each")
    excluded: dict[str, int]
    sms_segments: int
    estimated_cost: Decimal | None
    communities: list[CommunityPreviewOut]
    messages: list[MessageOut]


class RunTimeOut(BaseModel):
    scheduled_for: dt.datetime
    due_at: dt.datetime
    local: str = Field(description="due_at on the community's wall clock")
    deferred: bool = Field(description="moved past the community's quiet hours")


class CommunityScheduleOut(BaseModel):
    community_id: int
    name: str
    timezone: str
    runs: list[RunTimeOut]


def _out(session: Session, campaign: Campaign) -> CampaignOut:
    return CampaignOut.of(campaign, editing.target_ids(session, campaign.id))


def _content(row: ContentIn) -> ContentInput:
    return ContentInput(**row.model_dump())


# --- campaigns ---------------------------------------------------------------------------------


@router.get("")
def list_campaigns(
    session: SessionDep, principal: PrincipalDep, status: CampaignStatus | None = None
) -> list[CampaignOut]:
    found = editing.list_campaigns(session, status=status)
    targets = editing.targets_by_campaign(session, [c.id for c in found])
    return [CampaignOut.of(c, targets[c.id]) for c in found]


@router.post("", status_code=status.HTTP_201_CREATED)
def create(body: CampaignCreate, session: SessionDep, principal: ManagerDep) -> CampaignOut:
    fields = body.model_dump(exclude={"filters"})
    filters = body.filters.model_dump() if body.filters else None
    campaign = editing.create_campaign(
        session, **fields, filters=filters, user_id=principal.user_id
    )
    return _out(session, campaign)


@router.get("/{campaign_id}")
def get(campaign_id: int, session: SessionDep, principal: PrincipalDep) -> CampaignOut:
    return _out(session, editing.get_campaign(session, campaign_id))


@router.patch("/{campaign_id}")
def update(
    campaign_id: int, body: CampaignUpdate, session: SessionDep, principal: ManagerDep
) -> CampaignOut:
    changes = body.model_dump(exclude_unset=True)
    campaign = editing.update_campaign(
        session, campaign_id, user_id=principal.user_id, changes=changes
    )
    return _out(session, campaign)


@router.delete("/{campaign_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete(campaign_id: int, session: SessionDep, principal: ManagerDep) -> Response:
    editing.delete_campaign(session, campaign_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- what is sent, and to whom -----------------------------------------------------------------


@router.get("/{campaign_id}/content")
def get_content(campaign_id: int, session: SessionDep, principal: PrincipalDep) -> list[ContentOut]:
    campaign = editing.get_campaign(session, campaign_id)
    return [ContentOut.of(c) for c in editing.contents_of(session, campaign.id)]


@router.put("/{campaign_id}/content")
def put_content(
    campaign_id: int,
    body: Annotated[list[ContentIn], Body(max_length=200)],
    session: SessionDep,
    principal: ManagerDep,
) -> list[ContentOut]:
    rows = editing.set_contents(
        session, campaign_id, user_id=principal.user_id, rows=[_content(r) for r in body]
    )
    return [ContentOut.of(c) for c in rows]


@router.get("/{campaign_id}/options")
def get_options(campaign_id: int, session: SessionDep, principal: PrincipalDep) -> list[OptionOut]:
    campaign = editing.get_campaign(session, campaign_id)
    return [OptionOut.of(o) for o in editing.options_of(session, campaign.id)]


@router.put("/{campaign_id}/options")
def put_options(
    campaign_id: int,
    body: Annotated[list[OptionIn], Body(max_length=10)],
    session: SessionDep,
    principal: ManagerDep,
) -> list[OptionOut]:
    options = editing.set_options(
        session,
        campaign_id,
        user_id=principal.user_id,
        options=[OptionInput(number=o.number, labels=o.labels, aliases=o.aliases) for o in body],
    )
    return [OptionOut.of(o) for o in options]


@router.get("/{campaign_id}/targets")
def get_targets(campaign_id: int, session: SessionDep, principal: PrincipalDep) -> Targets:
    campaign = editing.get_campaign(session, campaign_id)
    return Targets(community_ids=editing.target_ids(session, campaign.id))


@router.put("/{campaign_id}/targets")
def put_targets(
    campaign_id: int, body: Targets, session: SessionDep, principal: ManagerDep
) -> Targets:
    ids = editing.set_targets(
        session, campaign_id, user_id=principal.user_id, community_ids=body.community_ids
    )
    return Targets(community_ids=ids)


# --- lifecycle ---------------------------------------------------------------------------------


@router.post("/{campaign_id}/submit")
def submit(campaign_id: int, session: SessionDep, principal: ManagerDep) -> CampaignOut:
    return _out(session, lifecycle.submit_campaign(session, campaign_id, user_id=principal.user_id))


@router.post("/{campaign_id}/approve")
def approve(campaign_id: int, session: SessionDep, principal: ManagerDep) -> CampaignOut:
    return _out(
        session, lifecycle.approve_campaign(session, campaign_id, user_id=principal.user_id)
    )


@router.post("/{campaign_id}/schedule")
def schedule(campaign_id: int, session: SessionDep, principal: ManagerDep) -> CampaignOut:
    return _out(session, lifecycle.schedule_campaign(session, campaign_id))


@router.post("/{campaign_id}/pause")
def pause(campaign_id: int, session: SessionDep, principal: ManagerDep) -> CampaignOut:
    return _out(session, lifecycle.pause_campaign(session, campaign_id))


@router.post("/{campaign_id}/resume")
def resume(campaign_id: int, session: SessionDep, principal: ManagerDep) -> CampaignOut:
    return _out(session, lifecycle.resume_campaign(session, campaign_id))


@router.post("/{campaign_id}/cancel")
def cancel(campaign_id: int, session: SessionDep, principal: ManagerDep) -> CampaignOut:
    return _out(session, lifecycle.cancel_campaign(session, campaign_id))


# --- runs and previews -------------------------------------------------------------------------


@router.get("/{campaign_id}/runs")
def list_runs(campaign_id: int, session: SessionDep, principal: PrincipalDep) -> list[RunOut]:
    campaign = editing.get_campaign(session, campaign_id)
    return [RunOut.of(r) for r in runs.list_runs(session, campaign.id)]


@router.get("/{campaign_id}/preview")
def get_preview(
    campaign_id: int,
    session: SessionDep,
    principal: PrincipalDep,
    price_per_segment: Annotated[
        Decimal | None,
        Query(ge=0, le=10, description="price of one SMS segment; omit for no cost estimate"),
    ] = None,
) -> PreviewOut:
    result = preview.preview_campaign(
        session, campaign_id, now=utcnow(), price_per_segment=price_per_segment
    )
    return PreviewOut.model_validate(result, from_attributes=True)


@router.get("/{campaign_id}/schedule-preview")
def get_schedule_preview(
    campaign_id: int,
    session: SessionDep,
    principal: PrincipalDep,
    count: Annotated[int, Query(ge=1, le=50)] = 5,
) -> list[CommunityScheduleOut]:
    result = preview.schedule_preview(session, campaign_id, now=utcnow(), count=count)
    return [
        CommunityScheduleOut(
            community_id=c.community_id,
            name=c.name,
            timezone=c.timezone,
            runs=[_run_time(t, c.timezone) for t in c.runs],
        )
        for c in result
    ]


# --- results and tests ------------------------------------------------------------------------


class PollCommunityOut(BaseModel):
    community_id: int | None = Field(description="null: contacts no longer in a target community")
    name: str | None
    counts: dict[int, int | str] = Field(description='option number → people, or "<5"')


class PollResultsOut(BaseModel):
    campaign_id: int
    options: list[OptionOut]
    communities: list[PollCommunityOut]
    suppressed: bool = Field(description='cells under 5 people shown as "<5" (non-admins)')


@router.get("/{campaign_id}/poll-results")
def get_poll_results(
    campaign_id: int, session: SessionDep, principal: PrincipalDep
) -> PollResultsOut:
    result = polls.poll_results(session, campaign_id, exact=principal.role == Role.admin)
    return PollResultsOut(
        campaign_id=result.campaign_id,
        options=[OptionOut.of(o) for o in result.options],
        communities=[
            PollCommunityOut(community_id=c.community_id, name=c.name, counts=c.counts)
            for c in result.communities
        ],
        suppressed=result.suppressed,
    )


class LinkOut(BaseModel):
    code: str
    url: str
    community_id: int
    clicks: int
    preview_fetches: int = Field(description="link previews and bots, not people")
    created_at: dt.datetime


@router.get("/{campaign_id}/links")
def get_links(campaign_id: int, session: SessionDep, principal: PrincipalDep) -> list[LinkOut]:
    return [
        LinkOut.model_validate(s, from_attributes=True)
        for s in links.link_stats(session, campaign_id)
    ]


class TestSendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone: str = Field(min_length=3, max_length=32, description="E.164")
    channel: str = Field(description="whatsapp or sms")
    language: Language


class TestSendOut(BaseModel):
    message_id: int
    channel: str
    kind: str


@router.post("/{campaign_id}/test-send", status_code=status.HTTP_202_ACCEPTED)
def test_send(
    campaign_id: int,
    body: TestSendIn,
    session: SessionDep,
    principal: ManagerDep,
    cipher: CipherDep,
) -> TestSendOut:
    message = trial.send_test(
        session,
        cipher=cipher,
        campaign_id=campaign_id,
        phone=body.phone,
        channel=body.channel,
        language=body.language,
    )
    return TestSendOut(message_id=message.id, channel=message.channel.value, kind=message.kind)


def _run_time(t: RunTime, timezone: str) -> RunTimeOut:
    local = t.due_at.astimezone(zoneinfo.ZoneInfo(timezone))
    return RunTimeOut(
        scheduled_for=t.scheduled_for,
        due_at=t.due_at,
        local=local.isoformat(timespec="minutes"),
        deferred=t.deferred,
    )
