"""A campaign's lifecycle (see ``CampaignStatus``): submit, approve, schedule, pause, resume,
cancel, run, complete.

Every transition is one conditional UPDATE on ``(id, status, version)``: of two concurrent
approvals or launches of the same campaign exactly one moves it (on PostgreSQL the second waits
for the first's row lock, then finds the status changed), and an approval of a version that
was edited meanwhile fails.  Each success is audit-logged as ``campaign.<transition>``.

The two-person rule: a campaign is approved by a manager or admin who is none of its authors
(creator, last editor, submitter).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from campaigns import audit
from campaigns.communities import Community
from campaigns.db import get_or_404, utcnow
from campaigns.errors import Conflict, InvalidInput, PermissionDenied
from campaigns.organizations.models import Role, User
from campaigns.outreach.editing import contents_of, get_campaign, options_of
from campaigns.outreach.models import (
    Campaign,
    CampaignKind,
    CampaignRun,
    CampaignStatus,
    RunStatus,
)
from campaigns.outreach.runs import SENDING, insert_runs, is_finished, targets_of
from campaigns.outreach.schedules import (
    Once,
    RunTime,
    campaign_schedule,
    check_not_over,
    community_zone,
    occurrences,
)
from campaigns.outreach.validation import check_rendered

S = CampaignStatus


def _require(
    campaign: Campaign, *, verb: str, to: CampaignStatus, allowed: tuple[CampaignStatus, ...]
) -> None:
    if campaign.status not in allowed:
        raise Conflict(
            f"cannot {verb} campaign {campaign.id}: it is {campaign.status.value}; "
            f"{verb} needs {' or '.join(s.value for s in allowed)}",
            details={"status": campaign.status.value, "wanted": to.value},
        )


def _transition(
    session: Session,
    campaign: Campaign,
    *,
    verb: str,
    to: CampaignStatus,
    allowed: tuple[CampaignStatus, ...],
    now: dt.datetime,
    values: Mapping[str, Any] | None = None,
) -> None:
    _require(campaign, verb=verb, to=to, allowed=allowed)
    current = campaign.status
    moved = session.execute(
        update(Campaign)
        .where(
            Campaign.id == campaign.id,
            Campaign.status == current,
            Campaign.version == campaign.version,
        )
        .values(status=to, updated_at=now, **(values or {}))
        .returning(Campaign.id)
        .execution_options(synchronize_session=False)
    ).first()
    seen_version = campaign.version
    session.refresh(campaign)
    if moved is None:
        raise Conflict(
            f"cannot {verb} campaign {campaign.id}: it changed meanwhile (it is "
            f"{campaign.status.value}, version {campaign.version}; you saw {current.value}, "
            f"version {seen_version}): reload and try again",
            details={"status": campaign.status.value, "wanted": to.value},
        )
    audit.record(
        session,
        action=f"campaign.{verb}",
        object_type="campaign",
        object_id=campaign.id,
        organization_id=campaign.organization_id,
        before={"status": current.value, "version": seen_version},
        after={"status": to.value, "version": campaign.version, **_plain(values)},
    )


def _plain(values: Mapping[str, Any] | None) -> dict[str, Any]:
    return {
        k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in (values or {}).items()
    }


def check_ready(session: Session, campaign: Campaign, *, now: dt.datetime) -> None:
    """Everything a campaign needs before it can be submitted (and approved)."""
    if not targets_of(session, [campaign.id])[campaign.id]:
        raise InvalidInput("the campaign targets no community yet", field="community_ids")
    check_not_over(campaign_schedule(campaign), now=now)
    rows = contents_of(session, campaign.id)
    if not rows:
        if campaign.kind == CampaignKind.drip:
            raise InvalidInput("a drip campaign needs at least one step", field="content")
        raise InvalidInput("the campaign has no content yet", field="content")
    steps = sorted({r.step for r in rows})
    fallback_steps = {r.step for r in rows if r.language == campaign.fallback_language}
    if fallback_steps != set(steps):
        raise InvalidInput(
            f"every step needs content in the fallback language ({campaign.fallback_language})",
            field="content",
        )
    options = options_of(session, campaign.id)
    if campaign.kind == CampaignKind.poll and len(options) < 2:
        raise InvalidInput("a poll needs at least 2 options", field="options")
    check_rendered(rows, options, fallback=campaign.fallback_language)


def submit_campaign(
    session: Session, campaign_id: int, *, user_id: int | None, now: dt.datetime | None = None
) -> Campaign:
    """``draft → submitted``, once the campaign is complete and valid."""
    campaign = get_campaign(session, campaign_id)
    now = now or utcnow()
    if campaign.status == S.draft:
        check_ready(session, campaign, now=now)
    _transition(
        session,
        campaign,
        verb="submit",
        to=S.submitted,
        allowed=(S.draft,),
        now=now,
        values={"submitted_by_user_id": user_id, "submitted_at": now},
    )
    return campaign


def approve_campaign(
    session: Session, campaign_id: int, *, user_id: int, now: dt.datetime | None = None
) -> Campaign:
    """``submitted → approved`` by a manager or admin who authored none of it."""
    campaign = get_campaign(session, campaign_id)
    now = now or utcnow()
    user = get_or_404(session, User, user_id, "user")
    if user.organization_id != campaign.organization_id or user.role.rank < Role.manager.rank:
        raise PermissionDenied("approving a campaign needs the manager or admin role")
    authors = {
        campaign.created_by_user_id,
        campaign.edited_by_user_id,
        campaign.submitted_by_user_id,
    }
    if user.id in authors:
        raise PermissionDenied(
            "two-person rule: you created, edited or submitted this campaign, so another "
            "manager must approve it"
        )
    if campaign.status == S.submitted:
        check_ready(session, campaign, now=now)
    _transition(
        session,
        campaign,
        verb="approve",
        to=S.approved,
        allowed=(S.submitted,),
        now=now,
        values={"approved_by_user_id": user.id, "approved_at": now},
    )
    return campaign


def first_runs(
    session: Session, campaign: Campaign, *, now: dt.datetime
) -> list[tuple[Community, RunTime]]:
    """The first run of each target community, or ``InvalidInput`` (past, no time zone)."""
    schedule = campaign_schedule(campaign)
    planned: list[tuple[Community, RunTime]] = []
    for community in targets_of(session, [campaign.id])[campaign.id]:
        community_zone(community)
        found = occurrences(schedule, community, after=now, count=1)
        if not found:
            what = (
                f"{schedule.local.isoformat(timespec='minutes')} has gone by"
                if isinstance(schedule, Once)
                else "no run is left"
            )
            raise InvalidInput(
                f"the schedule is in the past for community {community.name!r} "
                f"({community.timezone}): {what}",
                field="schedule",
            )
        planned.append((community, found[0]))
    if not planned:
        raise InvalidInput("the campaign targets no community yet", field="community_ids")
    return planned


def schedule_campaign(
    session: Session, campaign_id: int, *, now: dt.datetime | None = None
) -> Campaign:
    """``approved → scheduled``: creates the first run of every target community."""
    campaign = get_campaign(session, campaign_id)
    now = now or utcnow()
    _require(campaign, verb="schedule", to=S.scheduled, allowed=(S.approved,))
    planned = first_runs(session, campaign, now=now)
    _transition(session, campaign, verb="schedule", to=S.scheduled, allowed=(S.approved,), now=now)
    insert_runs(session, campaign, planned)
    return campaign


def pause_campaign(
    session: Session, campaign_id: int, *, now: dt.datetime | None = None
) -> Campaign:
    """Stop sending now, including deliveries already queued (senders check ``paused``)."""
    campaign = get_campaign(session, campaign_id)
    _transition(
        session,
        campaign,
        verb="pause",
        to=S.paused,
        allowed=SENDING,
        now=now or utcnow(),
        values={"paused": True},
    )
    return campaign


def resume_campaign(
    session: Session, campaign_id: int, *, now: dt.datetime | None = None
) -> Campaign:
    """Back to ``running`` if a run has started, else to ``scheduled``."""
    campaign = get_campaign(session, campaign_id)
    started = session.scalar(
        select(
            exists().where(
                CampaignRun.campaign_id == campaign.id,
                CampaignRun.status.not_in(
                    (RunStatus.pending, RunStatus.cancelled, RunStatus.skipped)
                ),
            )
        )
    )
    _transition(
        session,
        campaign,
        verb="resume",
        to=S.running if started else S.scheduled,
        allowed=(S.paused,),
        now=now or utcnow(),
        values={"paused": False},
    )
    return campaign


def cancel_campaign(
    session: Session, campaign_id: int, *, now: dt.datetime | None = None
) -> Campaign:
    """Final: nothing more is sent; pending runs are cancelled."""
    campaign = get_campaign(session, campaign_id)
    now = now or utcnow()
    _transition(
        session,
        campaign,
        verb="cancel",
        to=S.cancelled,
        allowed=tuple(s for s in S if not s.is_final),
        now=now,
        values={"paused": False},
    )
    session.execute(
        update(CampaignRun)
        .where(CampaignRun.campaign_id == campaign.id, CampaignRun.status == RunStatus.pending)
        .values(status=RunStatus.cancelled, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return campaign


def mark_running(session: Session, campaign_id: int, *, now: dt.datetime | None = None) -> bool:
    """``scheduled → running`` when the planner starts the first run; False if it is not
    ``scheduled`` (already running, paused, cancelled…)."""
    campaign = get_campaign(session, campaign_id)
    if campaign.status != S.scheduled:
        return False
    try:
        _transition(
            session,
            campaign,
            verb="start",
            to=S.running,
            allowed=(S.scheduled,),
            now=now or utcnow(),
        )
    except Conflict:
        return False
    return True


def complete_campaign(
    session: Session, campaign_id: int, *, now: dt.datetime | None = None
) -> Campaign:
    """``running → completed``."""
    campaign = get_campaign(session, campaign_id)
    _transition(
        session,
        campaign,
        verb="complete",
        to=S.completed,
        allowed=(S.running,),
        now=now or utcnow(),
    )
    return campaign


def complete_finished(session: Session, *, now: dt.datetime) -> list[int]:
    """Complete every running campaign with no run left to do and none to come."""
    done: list[int] = []
    running = list(
        session.scalars(
            select(Campaign).where(Campaign.status == S.running, Campaign.paused.is_(False))
        )
    )
    for campaign in running:
        if is_finished(session, campaign, now=now):
            complete_campaign(session, campaign.id, now=now)
            done.append(campaign.id)
    return done
