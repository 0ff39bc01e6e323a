"""What the sender asks about campaign messages at send time, in one query per batch.

A campaign message may leave only if its campaign may still send (not paused, scheduled or
running), its run was made from the campaign's current version, and its community is not in
quiet hours right now.  ``campaigns.messaging.dispatch.send_batch`` calls ``campaign_holds``
for the campaign messages it claimed; a message with no delivery row (a test send) has no hold.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.communities import Community
from campaigns.outreach.models import Campaign, CampaignDelivery, CampaignRun, CampaignStatus
from campaigns.outreach.schedules import defer_past_quiet_hours

LIVE = (CampaignStatus.scheduled, CampaignStatus.running, CampaignStatus.paused)


@dataclass(frozen=True)
class Hold:
    """Why a campaign message may not leave now: ``paused`` (it goes back to its delivery,
    which waits for resume), ``stale`` (the campaign was edited, cancelled or finished since:
    never send it), or ``quiet_until`` (the community's quiet hours: try again then)."""

    paused: bool = False
    stale: bool = False
    quiet_until: dt.datetime | None = None


def campaign_holds(
    session: Session, message_ids: Sequence[int], *, now: dt.datetime
) -> dict[int, Hold]:
    if not message_ids:
        return {}
    rows = session.execute(
        select(
            CampaignDelivery.message_id,
            Campaign.paused,
            Campaign.status,
            Campaign.version,
            CampaignRun.campaign_version,
            Community,
        )
        .join(CampaignRun, CampaignRun.id == CampaignDelivery.run_id)
        .join(Campaign, Campaign.id == CampaignDelivery.campaign_id)
        .join(Community, Community.id == CampaignDelivery.community_id)
        .where(CampaignDelivery.message_id.in_(list(message_ids)))
        .execution_options(skip_org_scope=True)
    ).all()
    holds: dict[int, Hold] = {}
    for message_id, paused, status, version, run_version, community in rows:
        assert message_id is not None
        if status not in LIVE or run_version != version:
            holds[message_id] = Hold(stale=True)
        elif paused:
            holds[message_id] = Hold(paused=True)
        else:
            until = defer_past_quiet_hours(community, now)
            if until > now:
                holds[message_id] = Hold(quiet_until=until)
    return holds
