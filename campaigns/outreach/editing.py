"""Writing a campaign: create, edit, content, poll options, targets, delete.

Every edit of what would be sent goes through ``begin_edit``: one conditional UPDATE that bumps
``version`` and, if the campaign was submitted, approved, scheduled or paused, sends it back to
``draft`` (the approval was for another version).  Two editors racing cannot both win on the
same version, and an approval racing an edit fails because it names the version it saw.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from campaigns import audit
from campaigns.communities import Community, validate_language
from campaigns.db import get_or_404, session_org, utcnow
from campaigns.errors import Conflict, InvalidInput
from campaigns.outreach.models import (
    Campaign,
    CampaignCommunity,
    CampaignContent,
    CampaignKind,
    CampaignRun,
    CampaignStatus,
    PollOption,
    RunStatus,
)
from campaigns.outreach.schedules import check_not_over, parse_schedule
from campaigns.outreach.validation import (
    ContentInput,
    OptionInput,
    validate_contents,
    validate_filters,
    validate_options,
)
from campaigns.topics import validate_topic

EDITABLE = (
    CampaignStatus.draft,
    CampaignStatus.submitted,
    CampaignStatus.approved,
    CampaignStatus.scheduled,
    CampaignStatus.paused,
)
DEFAULT_RESPONSE_WINDOW_HOURS = 72
MAX_PACING_MINUTES = 24 * 60
MAX_RESPONSE_WINDOW_HOURS = 30 * 24
UPDATABLE = frozenset(
    {
        "name",
        "objective",
        "topic",
        "fallback_language",
        "filters",
        "schedule",
        "pacing_minutes",
        "response_window_hours",
    }
)


def get_campaign(session: Session, campaign_id: int) -> Campaign:
    return get_or_404(session, Campaign, campaign_id, "campaign")


def list_campaigns(session: Session, *, status: CampaignStatus | None = None) -> list[Campaign]:
    stmt = select(Campaign).order_by(Campaign.id.desc())
    if status is not None:
        stmt = stmt.where(Campaign.status == status)
    return list(session.scalars(stmt))


def contents_of(session: Session, campaign_id: int) -> list[CampaignContent]:
    return list(
        session.scalars(
            select(CampaignContent)
            .where(CampaignContent.campaign_id == campaign_id)
            .order_by(CampaignContent.step, CampaignContent.language)
        )
    )


def options_of(session: Session, campaign_id: int) -> list[PollOption]:
    return list(
        session.scalars(
            select(PollOption)
            .where(PollOption.campaign_id == campaign_id)
            .order_by(PollOption.number)
        )
    )


def target_ids(session: Session, campaign_id: int) -> list[int]:
    return targets_by_campaign(session, [campaign_id])[campaign_id]


def targets_by_campaign(session: Session, campaign_ids: Sequence[int]) -> dict[int, list[int]]:
    """Target community ids of each campaign, in one query."""
    result: dict[int, list[int]] = {cid: [] for cid in campaign_ids}
    if not campaign_ids:
        return result
    rows = session.execute(
        select(CampaignCommunity.campaign_id, CampaignCommunity.community_id)
        .where(CampaignCommunity.campaign_id.in_(list(campaign_ids)))
        .order_by(CampaignCommunity.campaign_id, CampaignCommunity.community_id)
    )
    for campaign_id, community_id in rows:
        result[campaign_id].append(community_id)
    return result


def _name(value: object) -> str:
    name = str(value or "").strip()
    if not name or len(name) > 200:
        raise InvalidInput("name has 1 to 200 characters", field="name")
    return name


def _pacing(value: object) -> int:
    if not isinstance(value, int) or not 0 <= value <= MAX_PACING_MINUTES:
        raise InvalidInput(
            f"pacing_minutes is 0 (all at once) to {MAX_PACING_MINUTES}", field="pacing_minutes"
        )
    return value


def _window(kind: CampaignKind, value: object) -> int | None:
    if kind != CampaignKind.poll:
        if value is not None:
            raise InvalidInput("only polls have a response window", field="response_window_hours")
        return None
    if value is None:
        return DEFAULT_RESPONSE_WINDOW_HOURS
    if not isinstance(value, int) or not 1 <= value <= MAX_RESPONSE_WINDOW_HOURS:
        raise InvalidInput(
            f"response_window_hours is 1 to {MAX_RESPONSE_WINDOW_HOURS}",
            field="response_window_hours",
        )
    return value


def _schedule(kind: CampaignKind, raw: Mapping[str, Any] | None, now: dt.datetime) -> Any:
    if raw is None:
        return None
    schedule = parse_schedule(raw, kind=kind)
    check_not_over(schedule, now=now)
    return schedule.as_json()


def create_campaign(
    session: Session,
    *,
    name: str,
    topic: str,
    kind: CampaignKind | str,
    user_id: int | None,
    objective: str = "",
    fallback_language: str = "es",
    filters: Mapping[str, Any] | None = None,
    schedule: Mapping[str, Any] | None = None,
    pacing_minutes: int = 0,
    response_window_hours: int | None = None,
    community_ids: Sequence[int] = (),
    organization_id: int | None = None,
    now: dt.datetime | None = None,
) -> Campaign:
    """A new ``draft`` campaign, version 1, authored by ``user_id``, targeting
    ``community_ids``."""
    org_id = organization_id or session_org(session)
    if org_id is None:
        raise InvalidInput("organization is required", field="organization_id")
    now = now or utcnow()
    try:
        kind = CampaignKind(kind)
    except ValueError as exc:
        raise InvalidInput(
            f"unknown kind {kind!r}: use {', '.join(k.value for k in CampaignKind)}", field="kind"
        ) from exc
    campaign = Campaign(
        organization_id=org_id,
        name=_name(name),
        objective=objective.strip(),
        topic=validate_topic(topic),
        kind=kind,
        status=CampaignStatus.draft,
        created_by_user_id=user_id,
        edited_by_user_id=user_id,
        version=1,
        paused=False,
        filters=validate_filters(filters),
        fallback_language=validate_language(fallback_language, field="fallback_language"),
        schedule=_schedule(kind, schedule, now),
        pacing_minutes=_pacing(pacing_minutes),
        response_window_hours=_window(kind, response_window_hours),
        created_at=now,
        updated_at=now,
    )
    wanted = _own_communities(session, org_id, community_ids)
    session.add(campaign)
    session.flush()
    session.add_all(CampaignCommunity(campaign_id=campaign.id, community_id=i) for i in wanted)
    session.flush()
    return campaign


def _own_communities(session: Session, org_id: int, community_ids: Sequence[int]) -> list[int]:
    wanted = sorted(set(community_ids))
    if not wanted:
        return []
    found = set(
        session.scalars(
            select(Community.id).where(
                Community.id.in_(wanted), Community.organization_id == org_id
            )
        )
    )
    missing = [i for i in wanted if i not in found]
    if missing:
        raise InvalidInput(f"unknown community {missing[0]}", field="community_ids")
    return wanted


def begin_edit(
    session: Session, campaign: Campaign, *, user_id: int | None, now: dt.datetime
) -> None:
    """Bump the version (and fall back to draft) before changing what would be sent."""
    if campaign.status == CampaignStatus.running:
        raise Conflict(
            f"campaign {campaign.id} is running: pause it before editing it",
            details={"status": campaign.status.value, "wanted": "draft"},
        )
    if campaign.status not in EDITABLE:
        raise Conflict(
            f"campaign {campaign.id} is {campaign.status.value}: it can no longer be edited",
            details={"status": campaign.status.value, "wanted": "draft"},
        )
    before_status, before_version = campaign.status, campaign.version
    moved = session.execute(
        update(Campaign)
        .where(
            Campaign.id == campaign.id,
            Campaign.status == before_status,
            Campaign.version == before_version,
        )
        .values(
            version=Campaign.version + 1,
            status=CampaignStatus.draft,
            paused=False,
            edited_by_user_id=user_id,
            submitted_by_user_id=None,
            submitted_at=None,
            approved_by_user_id=None,
            approved_at=None,
            updated_at=now,
        )
        .returning(Campaign.id)
        .execution_options(synchronize_session=False)
    ).first()
    session.refresh(campaign)
    if moved is None:
        raise Conflict(
            f"campaign {campaign.id} changed while you edited it (it is "
            f"{campaign.status.value}, version {campaign.version}): reload and try again",
            details={"status": campaign.status.value, "version": campaign.version},
        )
    if before_status in (CampaignStatus.scheduled, CampaignStatus.paused):
        # Runs not yet picked up belong to the approved version: they go with it.
        session.execute(
            delete(CampaignRun)
            .where(CampaignRun.campaign_id == campaign.id, CampaignRun.status == RunStatus.pending)
            .execution_options(synchronize_session=False)
        )
    audit.record(
        session,
        action="campaign.edit",
        object_type="campaign",
        object_id=campaign.id,
        organization_id=campaign.organization_id,
        before={"status": before_status.value, "version": before_version},
        after={"status": campaign.status.value, "version": campaign.version},
    )


def update_campaign(
    session: Session,
    campaign_id: int,
    *,
    user_id: int | None,
    changes: Mapping[str, Any],
    now: dt.datetime | None = None,
) -> Campaign:
    """Change the campaign's own fields (not its kind); an edit: see ``begin_edit``."""
    campaign = get_campaign(session, campaign_id)
    now = now or utcnow()
    unknown = set(changes) - UPDATABLE
    if unknown:
        raise InvalidInput(f"{sorted(unknown)[0]} cannot be changed", field=sorted(unknown)[0])
    clean: dict[str, Any] = {}
    for key, value in changes.items():
        if value is None and key not in ("schedule", "response_window_hours"):
            raise InvalidInput(f"{key} cannot be null", field=key)
        if key == "name":
            clean[key] = _name(value)
        elif key == "objective":
            clean[key] = str(value).strip()
        elif key == "topic":
            clean[key] = validate_topic(str(value))
        elif key == "fallback_language":
            clean[key] = validate_language(str(value), field="fallback_language")
        elif key == "filters":
            clean[key] = validate_filters(value)
        elif key == "schedule":
            clean[key] = _schedule(campaign.kind, value, now)
        elif key == "pacing_minutes":
            clean[key] = _pacing(value)
        else:
            clean[key] = _window(campaign.kind, value)
    if not clean:
        return campaign
    begin_edit(session, campaign, user_id=user_id, now=now)
    for key, value in clean.items():
        setattr(campaign, key, value)
    session.flush()
    return campaign


def delete_campaign(session: Session, campaign_id: int) -> None:
    """Delete a draft that was never scheduled; anything further along is cancelled instead."""
    campaign = get_campaign(session, campaign_id)
    has_runs = session.scalar(
        select(CampaignRun.id).where(CampaignRun.campaign_id == campaign.id).limit(1)
    )
    if campaign.status != CampaignStatus.draft or has_runs:
        raise Conflict(
            f"campaign {campaign.id} is {campaign.status.value}: only a draft that never ran "
            "can be deleted; cancel it instead",
            details={"status": campaign.status.value, "wanted": "deleted"},
        )
    session.delete(campaign)
    session.flush()


def set_contents(
    session: Session,
    campaign_id: int,
    *,
    user_id: int | None,
    rows: Sequence[ContentInput],
    now: dt.datetime | None = None,
) -> list[CampaignContent]:
    """Replace the campaign's content (all languages and steps at once)."""
    campaign = get_campaign(session, campaign_id)
    cleaned = validate_contents(rows, kind=campaign.kind)
    begin_edit(session, campaign, user_id=user_id, now=now or utcnow())
    for old in contents_of(session, campaign.id):
        session.delete(old)
    session.flush()
    created = [
        CampaignContent(
            campaign_id=campaign.id,
            language=row.language,
            step=row.step,
            offset_days=row.offset_days,
            sms_text=row.sms_text,
            whatsapp_content_sid=row.whatsapp_content_sid,
            whatsapp_variables=dict(row.whatsapp_variables),
            whatsapp_text=row.whatsapp_text,
        )
        for row in cleaned
    ]
    session.add_all(created)
    session.flush()
    return created


def set_options(
    session: Session,
    campaign_id: int,
    *,
    user_id: int | None,
    options: Sequence[OptionInput],
    now: dt.datetime | None = None,
) -> list[PollOption]:
    """Replace a poll's numbered options."""
    campaign = get_campaign(session, campaign_id)
    cleaned = validate_options(
        options, kind=campaign.kind, fallback_language=campaign.fallback_language
    )
    begin_edit(session, campaign, user_id=user_id, now=now or utcnow())
    for old in options_of(session, campaign.id):
        session.delete(old)
    session.flush()
    created = [
        PollOption(
            campaign_id=campaign.id,
            number=o.number,
            labels=dict(o.labels),
            aliases={k: list(v) for k, v in o.aliases.items()},
        )
        for o in cleaned
    ]
    session.add_all(created)
    session.flush()
    return created


def set_targets(
    session: Session,
    campaign_id: int,
    *,
    user_id: int | None,
    community_ids: Sequence[int],
    now: dt.datetime | None = None,
) -> list[int]:
    """Replace the communities the campaign targets (of the campaign's own organization)."""
    campaign = get_campaign(session, campaign_id)
    wanted = _own_communities(session, campaign.organization_id, community_ids)
    begin_edit(session, campaign, user_id=user_id, now=now or utcnow())
    current = set(target_ids(session, campaign.id))
    for community_id in current - set(wanted):
        session.execute(
            delete(CampaignCommunity)
            .where(
                CampaignCommunity.campaign_id == campaign.id,
                CampaignCommunity.community_id == community_id,
            )
            .execution_options(synchronize_session=False)
        )
    session.add_all(
        CampaignCommunity(campaign_id=campaign.id, community_id=i)
        for i in wanted
        if i not in current
    )
    session.flush()
    audit.record(
        session,
        action="campaign.targets",
        object_type="campaign",
        object_id=campaign.id,
        organization_id=campaign.organization_id,
        before={"community_ids": sorted(current)},
        after={"community_ids": wanted},
    )
    return wanted
