"""The planner: one run's recipients, written as deliveries in one set-based statement.

``plan_run`` turns a claimed run (``planning``) into ``planned`` deliveries with a single
``INSERT INTO campaign_delivery … SELECT … FROM contact JOIN contact_community … ON CONFLICT DO
NOTHING``.  Eligibility is decided inside the database: same organization, member of the run's
community, not erased, opted in, matching the campaign's filters (languages, channels), and with
content for their channel in their language or the campaign's fallback (the delivery records
which).  Drips pick the contacts whose local join date plus a step's ``offset_days`` is the
run's local date: the day bounds are computed here in the community's zone, so the database only
compares timestamps.  Pacing spreads ``send_after`` over ``pacing_minutes`` from the run's start
with ``row_number()`` — the same arithmetic as ``schedules.paced_send_time``.

The unique keys (see ``CampaignDelivery``) make planning idempotent and give a contact of two
targeted communities one delivery per occurrence.  PostgreSQL only (``ON CONFLICT`` without a
target, window functions over interval arithmetic); the embedded SQLite mode does not run the
engine.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    DateTime,
    Float,
    Integer,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from campaigns.communities import Community
from campaigns.contacts.models import Channel, ConsentState, Contact, ContactCommunity
from campaigns.logging import get_logger
from campaigns.outreach.models import (
    Campaign,
    CampaignContent,
    CampaignDelivery,
    CampaignKind,
    CampaignRun,
    DeliveryStatus,
    RunStatus,
)
from campaigns.outreach.runs import SENDING
from campaigns.outreach.schedules import community_zone, to_utc

log = get_logger(__name__)


def occurrence_key(campaign: Campaign, run: CampaignRun, community: Community) -> str:
    """The occurrence on the schedule's wall clock, shared by every community's run of it."""
    local = run.scheduled_for.astimezone(community_zone(community)).replace(tzinfo=None)
    return local.isoformat(timespec="minutes")


def _languages(rows: Sequence[CampaignContent], step: int) -> tuple[set[str], set[str]]:
    """Languages with SMS content, and with anything WhatsApp can carry, at ``step``."""
    mine = [r for r in rows if r.step == step]
    sms = {r.language for r in mine if r.sms_text is not None}
    wa = {
        r.language
        for r in mine
        if r.whatsapp_content_sid is not None
        or r.whatsapp_text is not None
        or r.sms_text is not None
    }
    return sms, wa


def _language_whens(
    step_cond: ColumnElement[bool], sms: set[str], wa: set[str], fallback: str
) -> list[tuple[ColumnElement[bool], ColumnElement[str]]]:
    is_sms = Contact.channel == Channel.sms
    whens: list[tuple[ColumnElement[bool], ColumnElement[str]]] = []
    for channel_cond, langs in ((is_sms, sms), (~is_sms, wa)):
        if not langs:
            continue
        whens.append(
            (
                and_(step_cond, channel_cond, Contact.language.in_(sorted(langs))),
                Contact.language.expression,
            )
        )
        if fallback in langs:
            whens.append((and_(step_cond, channel_cond), literal(fallback)))
    return whens


def plan_run(session: Session, run_id: int, *, now: dt.datetime) -> int:
    """Write the deliveries of a claimed (``planning``) run; returns how many were new.

    The run ends ``planned`` (with ``planned_count``), ``skipped`` when nobody is eligible or
    the campaign changed since the run was made, or back to ``pending`` if the campaign was
    paused in between (it waits for resume).
    """
    run = session.get(CampaignRun, run_id, populate_existing=True)
    if run is None or run.status != RunStatus.planning:
        return 0
    campaign = session.get(Campaign, run.campaign_id, populate_existing=True)
    community = session.get(Community, run.community_id)
    assert campaign is not None and community is not None
    if campaign.paused:
        _set_run(session, run, RunStatus.pending, now=now)
        return 0
    if campaign.status not in SENDING or run.campaign_version != campaign.version:
        _set_run(session, run, RunStatus.skipped, now=now, count=0)
        return 0

    contents = list(
        session.scalars(
            select(CampaignContent)
            .where(CampaignContent.campaign_id == campaign.id)
            .order_by(CampaignContent.step, CampaignContent.language)
        )
    )
    fallback = campaign.fallback_language
    whens: list[tuple[ColumnElement[bool], ColumnElement[str]]] = []
    step_whens: list[tuple[ColumnElement[bool], ColumnElement[int]]] = []
    if campaign.kind == CampaignKind.drip:
        zone = community_zone(community)
        run_day = run.scheduled_for.astimezone(zone).date()
        seen_offsets: set[int] = set()
        for row in contents:
            if row.offset_days in seen_offsets:
                continue  # a second step at the same offset would be the same day
            seen_offsets.add(row.offset_days)
            joined = run_day - dt.timedelta(days=row.offset_days)
            start = to_utc(dt.datetime.combine(joined, dt.time.min), zone)
            end = to_utc(dt.datetime.combine(joined + dt.timedelta(days=1), dt.time.min), zone)
            cond = and_(ContactCommunity.joined_at >= start, ContactCommunity.joined_at < end)
            sms, wa = _languages(contents, row.step)
            whens += _language_whens(cond, sms, wa, fallback)
            step_whens.append((cond, literal(row.step, Integer)))
        key = None  # per step, below
    else:
        sms, wa = _languages(contents, 1)
        whens = _language_whens(literal(True), sms, wa, fallback)
        step_whens = [(literal(True), literal(1, Integer))]
        key = occurrence_key(campaign, run, community)

    if not whens:
        _set_run(session, run, RunStatus.skipped, now=now, count=0)
        return 0
    language = case(*whens, else_=null())
    step = case(*step_whens, else_=null())
    filters = campaign.filters or {}
    conditions: list[ColumnElement[bool]] = [
        ContactCommunity.community_id == community.id,
        Contact.organization_id == run.organization_id,
        Contact.erased.is_(False),
        Contact.consent == ConsentState.opted_in,
        language.is_not(None),
        or_(*(cond for cond, _ in step_whens)) if step_whens else false(),
    ]
    if filters.get("languages"):
        conditions.append(Contact.language.in_(list(filters["languages"])))
    if filters.get("channels"):
        conditions.append(Contact.channel.in_(list(filters["channels"])))

    eligible = (
        select(
            Contact.id.label("contact_id"),
            language.label("language"),
            step.label("step"),
            func.row_number().over(order_by=Contact.id).label("rn"),
            func.count().over().label("total"),
        )
        .select_from(Contact)
        .join(ContactCommunity, ContactCommunity.contact_id == Contact.id)
        .where(*conditions)
        .subquery()
    )
    window_us = campaign.pacing_minutes * 60_000_000
    # Integer division first, as paced_send_time does: the index-th send at start + w*i//n.
    offset_us = (eligible.c.rn - 1) * cast(literal(window_us), BigInteger) / eligible.c.total
    send_after = cast(literal(run.due_at), DateTime(timezone=True)) + func.make_interval(
        0, 0, 0, 0, 0, 0, cast(offset_us, Float) / 1_000_000
    )
    key_expr: ColumnElement[str] = (
        literal(key) if key is not None else func.concat("step:", eligible.c.step)
    )
    rows = select(
        literal(run.organization_id),
        literal(run.id),
        literal(campaign.id),
        literal(community.id),
        eligible.c.contact_id,
        key_expr,
        literal(DeliveryStatus.planned.value),
        eligible.c.language,
        eligible.c.step,
        send_after,
        literal(now),
        literal(now),
    )
    result = session.execute(
        pg_insert(CampaignDelivery)
        .from_select(
            [
                "organization_id",
                "run_id",
                "campaign_id",
                "community_id",
                "contact_id",
                "occurrence_key",
                "status",
                "language",
                "step",
                "send_after",
                "created_at",
                "updated_at",
            ],
            rows,
        )
        .on_conflict_do_nothing()
        .returning(CampaignDelivery.id)
    )
    count = len(result.all())
    _set_run(session, run, RunStatus.planned if count else RunStatus.skipped, now=now, count=count)
    log.info("campaign_run.planned", run_id=run.id, campaign_id=campaign.id, deliveries=count)
    return count


def _set_run(
    session: Session,
    run: CampaignRun,
    status: RunStatus,
    *,
    now: dt.datetime,
    count: int | None = None,
) -> None:
    values: dict[str, object] = {"status": status, "updated_at": now}
    if count is not None:
        values["planned_count"] = count
    session.execute(
        update(CampaignRun)
        .where(CampaignRun.id == run.id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    session.expire(run)
