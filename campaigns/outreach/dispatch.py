"""Dispatch: due deliveries become pending campaign messages, published in batches.

``dispatch_run`` takes a run's due ``planned`` deliveries (``send_after <= now``) and, in one
statement per batch, inserts their messages (rendered per the delivery's language and step:
SMS text, or WhatsApp free text with the approved template beside it, poll options appended),
links ``message_id`` and marks them ``queued``.  The ``messages.send`` jobs go to the ``bulk``
queue after commit, ``JOB_SIZE`` ids each.  Deliveries paced later are left for the next tick.

``sync_deliveries`` moves queued deliveries on from what became of their messages, and closes
runs with nothing left to do.  Both are set-based and idempotent: the tick calls them every time.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from campaigns.communities import Community
from campaigns.contacts.models import Channel
from campaigns.logging import get_logger
from campaigns.messaging.dispatch import (
    REFUSED_ERASED,
    REFUSED_NO_CONSENT,
    REFUSED_PAUSED,
    REFUSED_STALE,
)
from campaigns.messaging.models import Purpose, Sender
from campaigns.messaging.segments import measure
from campaigns.outbox import publish_after_commit
from campaigns.outreach.links import track_links
from campaigns.outreach.models import (
    Campaign,
    CampaignContent,
    CampaignDelivery,
    CampaignRun,
    DeliveryStatus,
    PollOption,
    RunStatus,
)
from campaigns.outreach.runs import SENDING
from campaigns.outreach.schedules import defer_past_quiet_hours
from campaigns.outreach.validation import rendered_sms, rendered_whatsapp_text

log = get_logger(__name__)

JOB_SIZE = 100
DISPATCHABLE = (RunStatus.planned, RunStatus.dispatching)

_QUEUE = text(
    """
    WITH r AS (
        SELECT * FROM jsonb_to_recordset(CAST(:renders AS jsonb)) AS r(
            language text, step int, sms_body text, wa_body text, content_sid text,
            variables jsonb, segments int)
    ),
    picked AS (
        SELECT d.id AS delivery_id, d.contact_id, c.channel, r.sms_body, r.wa_body,
               r.content_sid, r.variables, r.segments
        FROM campaign_delivery d
        JOIN contact c ON c.id = d.contact_id
        JOIN r ON r.language = d.language AND r.step = d.step
        WHERE d.run_id = :run_id AND d.status = 'planned' AND d.send_after <= :now
          AND c.channel IN (SELECT unnest(CAST(:channels AS text[])))
        ORDER BY d.send_after, d.id
        LIMIT :batch
        FOR UPDATE OF d SKIP LOCKED
    ),
    ins AS (
        INSERT INTO message (
            organization_id, contact_id, direction, channel, status, status_rank, sender_id,
            purpose, kind, body, content_sid, content_variables, num_media, attempts,
            then_erase, simulated, campaign_id, segments, created_at, updated_at)
        SELECT :org_id, p.contact_id, 'outbound', p.channel, 'pending', 0,
               CASE WHEN p.channel = 'sms' THEN CAST(:sms_sender AS bigint)
                    ELSE CAST(:wa_sender AS bigint) END,
               'campaign',
               CASE WHEN p.channel = 'whatsapp' AND p.content_sid IS NOT NULL
                    THEN 'template' ELSE 'text' END,
               CASE WHEN p.channel = 'sms' THEN p.sms_body ELSE p.wa_body END,
               CASE WHEN p.channel = 'whatsapp' THEN p.content_sid END,
               CASE WHEN p.channel = 'whatsapp' AND p.content_sid IS NOT NULL
                    THEN CAST(p.variables AS json) END,
               0, 0, false, false, :campaign_id,
               CASE WHEN p.channel = 'sms' THEN p.segments END, :now, :now
        FROM picked p
        RETURNING id, contact_id
    )
    UPDATE campaign_delivery d
    SET message_id = ins.id, status = 'queued', updated_at = :now
    FROM ins
    WHERE d.run_id = :run_id AND d.contact_id = ins.contact_id
    RETURNING ins.id
    """
)


@dataclass
class DispatchResult:
    queued: int = 0
    skipped: int = 0
    deferred_until: dt.datetime | None = None


def _renders(
    session: Session, campaign: Campaign, *, community_id: int, public_url: str | None
) -> list[dict[str, object]]:
    """The message per language and step, links tracked per campaign and community."""

    def tracked(text: str | None) -> str | None:
        if text is None or public_url is None:
            return text
        return track_links(
            session,
            campaign_id=campaign.id,
            community_id=community_id,
            text=text,
            public_url=public_url,
        )

    contents = session.scalars(
        select(CampaignContent).where(CampaignContent.campaign_id == campaign.id)
    ).all()
    options = session.scalars(
        select(PollOption).where(PollOption.campaign_id == campaign.id).order_by(PollOption.number)
    ).all()
    renders: list[dict[str, object]] = []
    for row in contents:
        sms = tracked(rendered_sms(row, options, fallback=campaign.fallback_language))
        renders.append(
            {
                "language": row.language,
                "step": row.step,
                "sms_body": sms,
                "wa_body": tracked(
                    rendered_whatsapp_text(row, options, fallback=campaign.fallback_language)
                ),
                "content_sid": row.whatsapp_content_sid,
                "variables": dict(row.whatsapp_variables),
                "segments": measure(sms).segments if sms is not None else None,
            }
        )
    return renders


def _senders(session: Session, organization_id: int) -> dict[Channel, int]:
    """The organization's sender per channel: a real one before a simulated one, oldest first."""
    found: dict[Channel, int] = {}
    for sender in session.scalars(
        select(Sender)
        .where(Sender.organization_id == organization_id)
        .order_by(Sender.is_simulated, Sender.id)
    ):
        found.setdefault(sender.channel, sender.id)
    return found


def _skip_planned(session: Session, run_id: int, reason: str, now: dt.datetime) -> int:
    result = session.execute(
        update(CampaignDelivery)
        .where(
            CampaignDelivery.run_id == run_id,
            CampaignDelivery.status == DeliveryStatus.planned,
        )
        .values(status=DeliveryStatus.skipped, reason=reason, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def dispatch_run(
    session: Session,
    run_id: int,
    *,
    now: dt.datetime,
    batch: int = 500,
    max_batches: int = 40,
    public_url: str | None = None,
) -> DispatchResult:
    """Queue the run's due deliveries (at most ``batch * max_batches`` this call)."""
    result = DispatchResult()
    run = session.get(CampaignRun, run_id, populate_existing=True)
    if run is None or run.status not in DISPATCHABLE:
        return result
    campaign = session.get(Campaign, run.campaign_id, populate_existing=True)
    community = session.get(Community, run.community_id)
    assert campaign is not None and community is not None
    if campaign.paused and run.campaign_version == campaign.version:
        return result  # deliveries wait for resume
    if campaign.status not in SENDING or run.campaign_version != campaign.version:
        result.skipped = _skip_planned(session, run.id, "stale", now)
        return result

    quiet_until = defer_past_quiet_hours(community, now)
    if quiet_until > now:
        # Deferred, never dropped: the due ones move to the end of the quiet window.
        session.execute(
            update(CampaignDelivery)
            .where(
                CampaignDelivery.run_id == run.id,
                CampaignDelivery.status == DeliveryStatus.planned,
                CampaignDelivery.send_after < quiet_until,
            )
            .values(send_after=quiet_until, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        result.deferred_until = quiet_until
        return result

    # Who stopped or was erased since planning is skipped here (the sender checks again).
    skipped = session.execute(
        text(
            """
            UPDATE campaign_delivery d
            SET status = 'skipped',
                reason = CASE WHEN c.erased THEN 'erased' ELSE 'opted_out' END,
                updated_at = :now
            FROM contact c
            WHERE c.id = d.contact_id AND d.run_id = :run_id AND d.status = 'planned'
              AND d.send_after <= :now AND (c.erased OR c.consent <> 'opted_in')
            """
        ),
        {"run_id": run.id, "now": now},
    )
    result.skipped += int(skipped.rowcount or 0)  # type: ignore[attr-defined]

    senders = _senders(session, run.organization_id)
    no_sender = [ch.value for ch in Channel if ch not in senders]
    if no_sender:
        missing = session.execute(
            text(
                """
                UPDATE campaign_delivery d SET status = 'skipped', reason = 'no_sender',
                       updated_at = :now
                FROM contact c
                WHERE c.id = d.contact_id AND d.run_id = :run_id AND d.status = 'planned'
                  AND d.send_after <= :now AND c.channel = ANY(CAST(:channels AS text[]))
                """
            ),
            {"run_id": run.id, "now": now, "channels": no_sender},
        )
        result.skipped += int(missing.rowcount or 0)  # type: ignore[attr-defined]

    params = {
        "renders": json.dumps(
            _renders(session, campaign, community_id=run.community_id, public_url=public_url)
        ),
        "run_id": run.id,
        "now": now,
        "batch": batch,
        "org_id": run.organization_id,
        "campaign_id": campaign.id,
        "sms_sender": senders.get(Channel.sms),
        "wa_sender": senders.get(Channel.whatsapp),
        "channels": [ch.value for ch in senders],
    }
    for _ in range(max_batches):
        ids = [row[0] for row in session.execute(_QUEUE, params)]
        for start in range(0, len(ids), JOB_SIZE):
            chunk = ids[start : start + JOB_SIZE]
            publish_after_commit(session, "messages.send", chunk, queue=Purpose.campaign.queue)
        result.queued += len(ids)
        if len(ids) < batch:
            break
    if result.queued and run.status == RunStatus.planned:
        session.execute(
            update(CampaignRun)
            .where(CampaignRun.id == run.id, CampaignRun.status == RunStatus.planned)
            .values(status=RunStatus.dispatching, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    if result.queued or result.skipped:
        log.info(
            "campaign_run.dispatched", run_id=run.id, queued=result.queued, skipped=result.skipped
        )
    return result


def sync_deliveries(session: Session, *, now: dt.datetime) -> dict[str, int]:
    """Queued deliveries follow their messages; runs with nothing left are ``done``.

    A message refused because its campaign was paused hands its delivery back to ``planned``
    (a new message goes out on resume); refused as stale, erased or without consent:
    ``skipped``; any other failure: ``failed`` with the code.  A still-pending message keeps its
    delivery ``queued`` (the reaper re-publishes it).
    """
    moved = session.execute(
        text(
            """
            UPDATE campaign_delivery d
            SET status = CASE
                    WHEN m.status = 'failed' AND m.error_code = :paused THEN 'planned'
                    WHEN m.status = 'failed'
                         AND m.error_code IN (:stale, :erased, :no_consent) THEN 'skipped'
                    WHEN m.status IN ('failed', 'undelivered') THEN 'failed'
                    ELSE 'sent' END,
                reason = CASE
                    WHEN m.status <> 'failed' THEN NULL
                    WHEN m.error_code = :paused THEN 'paused'
                    WHEN m.error_code = :stale THEN 'stale'
                    WHEN m.error_code = :erased THEN 'erased'
                    WHEN m.error_code = :no_consent THEN 'opted_out'
                    ELSE 'error ' || COALESCE(CAST(m.error_code AS text), '') END,
                message_id = CASE WHEN m.status = 'failed' AND m.error_code = :paused
                                  THEN NULL ELSE d.message_id END,
                updated_at = :now
            FROM message m, campaign_run r
            WHERE m.id = d.message_id AND r.id = d.run_id
              AND r.status IN ('planned', 'dispatching')
              AND d.status = 'queued' AND m.status NOT IN ('pending', 'submitting')
            """
        ),
        {
            "now": now,
            "paused": REFUSED_PAUSED,
            "stale": REFUSED_STALE,
            "erased": REFUSED_ERASED,
            "no_consent": REFUSED_NO_CONSENT,
        },
    )
    done = session.execute(
        text(
            """
            UPDATE campaign_run r SET status = 'done', updated_at = :now
            WHERE r.status IN ('planned', 'dispatching')
              AND NOT EXISTS (
                  SELECT 1 FROM campaign_delivery d
                  WHERE d.run_id = r.id AND d.status IN ('planned', 'queued'))
            """
        ),
        {"now": now},
    )
    return {
        "deliveries": int(moved.rowcount or 0),  # type: ignore[attr-defined]
        "runs_done": int(done.rowcount or 0),  # type: ignore[attr-defined]
    }
