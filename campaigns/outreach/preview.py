"""What a campaign would do if it ran now: who receives it, who does not and why, what it costs,
what each language reads like, and when its next runs are.

The counts are two set-based queries (one GROUP BY, one COUNT DISTINCT) whatever the number of
contacts: the content's languages are few, so which language each contact would get is decided
by a CASE built from them, inside the database.

A contact of a target community (matching the filters) is excluded, for the first reason that
applies, when: ``erased``; ``opted_out``; ``no_consent`` (never opted in: campaigns go only to
contacts who did); ``no_content_for_language`` (neither their language nor the fallback has
content for their channel); ``outside_whatsapp_window_no_template`` (WhatsApp, has not written
in 24 hours, and the language they would get has no approved template).  The window is judged
as of ``now``: the sender checks it again at send time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, case, distinct, false, func, literal, null, select, true
from sqlalchemy.orm import QueryableAttribute, Session

from campaigns.contacts.models import Channel, ConsentState, Contact, ContactCommunity
from campaigns.messaging.dispatch import WHATSAPP_WINDOW
from campaigns.messaging.segments import estimate_cost, measure
from campaigns.outreach.editing import contents_of, get_campaign, options_of
from campaigns.outreach.models import Campaign, CampaignContent, PollOption
from campaigns.outreach.runs import targets_of
from campaigns.outreach.schedules import RunTime, community_zone, next_runs
from campaigns.outreach.validation import rendered_sms, rendered_whatsapp_text

REASONS = (
    "opted_out",
    "erased",
    "no_consent",
    "no_content_for_language",
    "outside_whatsapp_window_no_template",
)


@dataclass(frozen=True)
class RenderedMessage:
    language: str
    step: int
    offset_days: int
    sms_text: str | None
    sms_segments: int
    sms_encoding: str | None
    whatsapp_text: str | None
    whatsapp_content_sid: str | None
    whatsapp_variables: dict[str, str]


@dataclass
class CommunityPreview:
    community_id: int
    name: str
    timezone: str
    recipients: int = 0
    # language → channel → contacts
    by_language: dict[str, dict[str, int]] = field(default_factory=dict)
    excluded: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    sms_segments: int = 0
    estimated_cost: Decimal | None = None


@dataclass
class CampaignPreview:
    campaign_id: int
    version: int
    as_of: dt.datetime
    price_per_segment: Decimal | None
    communities: list[CommunityPreview]
    messages: list[RenderedMessage]
    recipients: int = 0
    distinct_recipients: int = 0
    excluded: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    sms_segments: int = 0
    estimated_cost: Decimal | None = None


@dataclass(frozen=True)
class _Availability:
    """Languages whose every step can be sent as SMS, as WhatsApp free text, as a template."""

    sms: frozenset[str]
    wa_free: frozenset[str]
    wa_template: frozenset[str]

    @property
    def wa_any(self) -> frozenset[str]:
        return self.wa_free | self.wa_template


def _availability(rows: Sequence[CampaignContent]) -> _Availability:
    steps = {r.step for r in rows}
    by_language: dict[str, list[CampaignContent]] = {}
    for row in rows:
        by_language.setdefault(row.language, []).append(row)

    def having(test: Any) -> frozenset[str]:
        return frozenset(
            lang
            for lang, mine in by_language.items()
            if {r.step for r in mine} == steps and all(test(r) for r in mine)
        )

    return _Availability(
        sms=having(lambda r: r.sms_text is not None),
        wa_free=having(lambda r: r.whatsapp_text is not None or r.sms_text is not None),
        wa_template=having(lambda r: r.whatsapp_content_sid is not None),
    )


def render_messages(
    campaign: Campaign, rows: Sequence[CampaignContent], options: Sequence[PollOption]
) -> list[RenderedMessage]:
    """Each language's (and step's) message as it would be sent, poll options appended."""
    result = []
    for row in rows:
        sms = rendered_sms(row, options, fallback=campaign.fallback_language)
        length = measure(sms) if sms is not None else None
        result.append(
            RenderedMessage(
                language=row.language,
                step=row.step,
                offset_days=row.offset_days,
                sms_text=sms,
                sms_segments=length.segments if length else 0,
                sms_encoding=length.encoding if length else None,
                whatsapp_text=rendered_whatsapp_text(
                    row, options, fallback=campaign.fallback_language
                ),
                whatsapp_content_sid=row.whatsapp_content_sid,
                whatsapp_variables=dict(row.whatsapp_variables),
            )
        )
    return result


def _in(column: QueryableAttribute[str], languages: frozenset[str]) -> ColumnElement[bool]:
    return column.in_(sorted(languages)) if languages else false()


def _classify(
    campaign: Campaign, available: _Availability, now: dt.datetime
) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    """SQL for the language a contact would get (or NULL) and the reason they would not."""
    lang, fb = Contact.language, campaign.fallback_language
    inside = and_(
        Contact.last_inbound_at.is_not(None), Contact.last_inbound_at > now - WHATSAPP_WINDOW
    )
    sms_whens: list[tuple[ColumnElement[bool], Any]] = [(_in(lang, available.sms), lang)]
    if fb in available.sms:
        sms_whens.append((true(), literal(fb)))
    wa_whens: list[tuple[ColumnElement[bool], Any]] = [
        (and_(inside, _in(lang, available.wa_any)), lang),
        (_in(lang, available.wa_template), lang),
    ]
    if fb in available.wa_any:
        wa_whens.append((inside, literal(fb)))
    if fb in available.wa_template:
        wa_whens.append((true(), literal(fb)))
    sms_language = case(*sms_whens, else_=null())
    wa_language = case(*wa_whens, else_=null())
    is_sms = Contact.channel == Channel.sms
    # Neither their language nor the fallback has anything WhatsApp can carry.
    no_wa_content = false() if fb in available.wa_any else ~_in(lang, available.wa_any)
    reason = case(
        (Contact.erased.is_(True), literal("erased")),
        (Contact.consent == ConsentState.opted_out, literal("opted_out")),
        (Contact.consent != ConsentState.opted_in, literal("no_consent")),
        (and_(is_sms, sms_language.is_(None)), literal("no_content_for_language")),
        (and_(~is_sms, no_wa_content), literal("no_content_for_language")),
        (and_(~is_sms, wa_language.is_(None)), literal("outside_whatsapp_window_no_template")),
        else_=null(),
    )
    return case((is_sms, sms_language), else_=wa_language), reason


def preview_campaign(
    session: Session,
    campaign_id: int,
    *,
    now: dt.datetime,
    price_per_segment: Decimal | None = None,
) -> CampaignPreview:
    """Recipients and exclusions per community and language, SMS segments and cost, messages."""
    campaign = get_campaign(session, campaign_id)
    communities = targets_of(session, [campaign.id])[campaign.id]
    rows = contents_of(session, campaign.id)
    options = options_of(session, campaign.id)
    messages = render_messages(campaign, rows, options)
    preview = CampaignPreview(
        campaign_id=campaign.id,
        version=campaign.version,
        as_of=now,
        price_per_segment=price_per_segment,
        communities=[CommunityPreview(c.id, c.name, c.timezone) for c in communities],
        messages=messages,
    )
    if not communities:
        return preview

    send_language, reason = _classify(campaign, _availability(rows), now)
    stmt = (
        select(
            ContactCommunity.community_id.label("community_id"),
            Contact.id.label("contact_id"),
            Contact.channel.label("channel"),
            send_language.label("language"),
            reason.label("reason"),
        )
        .join(Contact, Contact.id == ContactCommunity.contact_id)
        .where(
            ContactCommunity.community_id.in_([c.id for c in communities]),
            Contact.organization_id == campaign.organization_id,
        )
    )
    languages = campaign.filters.get("languages") or []
    channels = campaign.filters.get("channels") or []
    if languages:
        stmt = stmt.where(Contact.language.in_(languages))
    if channels:
        stmt = stmt.where(Contact.channel.in_([Channel(c) for c in channels]))
    each = stmt.subquery()
    grouped = session.execute(
        select(
            each.c.community_id, each.c.channel, each.c.language, each.c.reason, func.count()
        ).group_by(each.c.community_id, each.c.channel, each.c.language, each.c.reason)
    ).all()
    preview.distinct_recipients = (
        session.scalar(
            select(func.count(distinct(each.c.contact_id))).where(each.c.reason.is_(None))
        )
        or 0
    )

    segments_per_language: dict[str, int] = {}
    for message in messages:
        segments_per_language[message.language] = (
            segments_per_language.get(message.language, 0) + message.sms_segments
        )
    by_id = {c.community_id: c for c in preview.communities}
    for community_id, channel, language, why, count in grouped:
        target = by_id[community_id]
        if why is not None:
            target.excluded[why] += count
            continue
        target.recipients += count
        channel_name = Channel(channel).value
        per_language = target.by_language.setdefault(language, {})
        per_language[channel_name] = per_language.get(channel_name, 0) + count
        if channel_name == Channel.sms.value:
            target.sms_segments += count * segments_per_language.get(language, 0)

    for target in preview.communities:
        if price_per_segment is not None:
            target.estimated_cost = _cost(target, messages, price_per_segment)
        preview.recipients += target.recipients
        preview.sms_segments += target.sms_segments
        for why, count in target.excluded.items():
            preview.excluded[why] += count
    if price_per_segment is not None:
        preview.estimated_cost = sum(
            (t.estimated_cost or Decimal(0) for t in preview.communities), Decimal(0)
        )
    return preview


def _cost(target: CommunityPreview, messages: Sequence[RenderedMessage], price: Decimal) -> Decimal:
    total = Decimal(0)
    for message in messages:
        recipients = target.by_language.get(message.language, {}).get(Channel.sms.value, 0)
        if message.sms_text is not None and recipients:
            total += estimate_cost(message.sms_text, price_per_segment=price, recipients=recipients)
    return total


@dataclass(frozen=True)
class CommunitySchedule:
    community_id: int
    name: str
    timezone: str
    runs: list[RunTime]


def schedule_preview(
    session: Session, campaign_id: int, *, now: dt.datetime, count: int
) -> list[CommunitySchedule]:
    """The next ``count`` run times of the campaign in each target community."""
    campaign = get_campaign(session, campaign_id)
    result = []
    for community in targets_of(session, [campaign.id])[campaign.id]:
        community_zone(community)
        result.append(
            CommunitySchedule(
                community_id=community.id,
                name=community.name,
                timezone=community.timezone,
                runs=next_runs(campaign, community, after=now, count=count),
            )
        )
    return result
