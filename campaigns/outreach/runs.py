"""Runs: one send of a campaign to one community at one instant, and how the planner finds them.

The beat's tick calls, in this order::

    extend_schedules(session, now=now)   # recurring and drip campaigns: the next run ahead
    for run in due_runs(session, now=now):
        ...claim it (pending → planning) and plan it...
    complete_finished(session, now=now)  # running campaigns with nothing left to do

Each community keeps at most one pending run per campaign, the next one.  A run is created only
for an occurrence at least ``MIN_GAP`` after the community's latest run, so a change of quiet
hours or time zone cannot make a second run for an occurrence that already has one (recurrences
are at least daily, so real occurrences are ~24 h apart).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from campaigns.communities import Community
from campaigns.db import utcnow
from campaigns.outreach.models import (
    Campaign,
    CampaignCommunity,
    CampaignRun,
    CampaignStatus,
    RunStatus,
)
from campaigns.outreach.schedules import Once, RunTime, campaign_schedule, occurrences

MIN_GAP = dt.timedelta(hours=12)
ACTIVE_RUN = (RunStatus.pending, RunStatus.planning, RunStatus.planned, RunStatus.dispatching)
SENDING = (CampaignStatus.scheduled, CampaignStatus.running)


def targets_of(session: Session, campaign_ids: Sequence[int]) -> dict[int, list[Community]]:
    """Target communities of each campaign, in one query."""
    result: dict[int, list[Community]] = {cid: [] for cid in campaign_ids}
    if not campaign_ids:
        return result
    rows = session.execute(
        select(CampaignCommunity.campaign_id, Community)
        .join(Community, Community.id == CampaignCommunity.community_id)
        .where(CampaignCommunity.campaign_id.in_(list(campaign_ids)))
        .order_by(CampaignCommunity.campaign_id, Community.id)
    )
    for campaign_id, community in rows:
        result[campaign_id].append(community)
    return result


def insert_runs(
    session: Session, campaign: Campaign, planned: Sequence[tuple[Community, RunTime]]
) -> int:
    """Insert pending runs, ignoring any that exist already; returns how many were new."""
    if not planned:
        return 0
    now = utcnow()
    rows = [
        {
            "organization_id": campaign.organization_id,
            "campaign_id": campaign.id,
            "community_id": community.id,
            "scheduled_for": when.scheduled_for,
            "due_at": when.due_at,
            "status": RunStatus.pending,
            "campaign_version": campaign.version,
            "created_at": now,
            "updated_at": now,
        }
        for community, when in planned
    ]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    result = session.execute(
        insert(CampaignRun)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["campaign_id", "community_id", "scheduled_for"])
        .returning(CampaignRun.id)
    )
    return len(result.all())


def _next_after(
    session: Session, campaign_ids: Sequence[int]
) -> dict[tuple[int, int], tuple[dt.datetime, int]]:
    """(campaign, community) → (latest scheduled_for, pending count), in one query."""
    if not campaign_ids:
        return {}
    rows = session.execute(
        select(
            CampaignRun.campaign_id,
            CampaignRun.community_id,
            func.max(CampaignRun.scheduled_for),
            func.count().filter(CampaignRun.status == RunStatus.pending),
        )
        .where(CampaignRun.campaign_id.in_(list(campaign_ids)))
        .group_by(CampaignRun.campaign_id, CampaignRun.community_id)
    )
    return {(a, b): (latest, pending) for a, b, latest, pending in rows}


def plan_next(
    session: Session, campaigns: Sequence[Campaign], *, now: dt.datetime
) -> dict[int, list[tuple[Community, RunTime]]]:
    """For each campaign, the next run of each target community that has no pending one."""
    targets = targets_of(session, [c.id for c in campaigns])
    stats = _next_after(session, [c.id for c in campaigns])
    result: dict[int, list[tuple[Community, RunTime]]] = {}
    for campaign in campaigns:
        schedule = campaign_schedule(campaign)
        planned: list[tuple[Community, RunTime]] = []
        for community in targets[campaign.id]:
            latest, pending = stats.get((campaign.id, community.id), (None, 0))
            if pending:
                continue
            after = now if latest is None else max(now, latest + MIN_GAP)
            if isinstance(schedule, Once) and latest is not None:
                continue  # its one run exists already
            planned.extend(
                (community, t) for t in occurrences(schedule, community, after=after, count=1)
            )
        result[campaign.id] = planned
    return result


def extend_schedules(session: Session, *, now: dt.datetime) -> int:
    """Create the next pending run of every scheduled or running recurring or drip campaign
    (not paused) in each community that has none; returns how many runs were created."""
    campaigns = [
        c
        for c in session.scalars(
            select(Campaign)
            .where(Campaign.status.in_(SENDING), Campaign.paused.is_(False))
            .order_by(Campaign.id)
        )
        if c.schedule is not None and c.schedule.get("type") in ("rrule", "drip")
    ]
    created = 0
    for campaign_id, planned in plan_next(session, campaigns, now=now).items():
        campaign = next(c for c in campaigns if c.id == campaign_id)
        created += insert_runs(session, campaign, planned)
    return created


def due_runs(session: Session, *, now: dt.datetime, limit: int = 500) -> list[CampaignRun]:
    """Pending runs whose time has come, of campaigns that may send, of the current version.

    Oldest first.  A run of a paused campaign waits (it becomes due again on resume); a run of
    an older version than the campaign's is never returned.  The caller claims each run with a
    conditional UPDATE (``pending → planning``) before planning it.
    """
    return list(
        session.scalars(
            select(CampaignRun)
            .join(Campaign, Campaign.id == CampaignRun.campaign_id)
            .where(
                CampaignRun.status == RunStatus.pending,
                CampaignRun.due_at <= now,
                Campaign.status.in_(SENDING),
                Campaign.paused.is_(False),
                CampaignRun.campaign_version == Campaign.version,
            )
            .order_by(CampaignRun.due_at, CampaignRun.id)
            .limit(limit)
        )
    )


def claim_run(session: Session, run_id: int, *, now: dt.datetime) -> bool:
    """``pending → planning`` for one run, if no one else did it first."""
    moved = session.execute(
        update(CampaignRun)
        .where(CampaignRun.id == run_id, CampaignRun.status == RunStatus.pending)
        .values(status=RunStatus.planning, updated_at=now)
        .returning(CampaignRun.id)
        .execution_options(synchronize_session=False)
    ).first()
    return moved is not None


def list_runs(session: Session, campaign_id: int) -> list[CampaignRun]:
    return list(
        session.scalars(
            select(CampaignRun)
            .where(CampaignRun.campaign_id == campaign_id)
            .order_by(CampaignRun.scheduled_for, CampaignRun.community_id)
        )
    )


def is_finished(session: Session, campaign: Campaign, *, now: dt.datetime) -> bool:
    """No run in progress or pending, and the schedule has no next run in any community."""
    active = session.scalar(
        select(func.count())
        .select_from(CampaignRun)
        .where(CampaignRun.campaign_id == campaign.id, CampaignRun.status.in_(ACTIVE_RUN))
    )
    if active:
        return False
    if campaign.schedule is None or campaign.schedule.get("type") == "drip":
        return False  # a drip welcomes newcomers until it is cancelled
    return not plan_next(session, [campaign], now=now)[campaign.id]
