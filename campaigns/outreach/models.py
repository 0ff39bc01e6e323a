"""Campaigns, what they send, whom they target, and the runs that send them."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from campaigns.db import Base, BigId, OrgScoped, utcnow


class CampaignKind(enum.StrEnum):
    """``announcement``: one message per run.  ``poll``: a question with numbered options whose
    replies are counted per option and community during the response window.  ``drip``: a
    sequence of steps sent ``offset_days`` after a contact joined the community, at a local
    hour (one run per community per day picks the contacts whose step is due)."""

    announcement = "announcement"
    poll = "poll"
    drip = "drip"


class CampaignStatus(enum.StrEnum):
    """Lifecycle of a campaign (two-person rule: the approver is never an author)::

        draft ──submit──▶ submitted ──approve──▶ approved ──schedule──▶ scheduled
          ▲                   │                     │                      │
          └──── any edit ─────┴─────────────────────┴──────────────────────┤ (version + 1)
                                                                           ▼ first run planned
                              completed ◀──last run done, no next run── running
                                                                     pause │ ▲ resume
                                                                           ▼ │
                                                                          paused

    - An edit (content, options, targets, schedule, filters…) of a submitted, approved,
      scheduled or paused campaign sends it back to ``draft`` and bumps ``version``: what was
      approved is no longer what would be sent.  Its pending runs are deleted; a run already
      picked up carries the old ``campaign_version`` and is therefore stale and harmless.
      A ``running`` campaign is paused before it is edited.
    - ``pause`` (from ``scheduled`` or ``running``) sets ``paused``; senders check it at send
      time, so it stops deliveries already queued.  ``resume`` returns to ``running`` if a run
      has started, else to ``scheduled``.
    - ``cancel`` from any state but the final ones; pending runs are cancelled.
    - ``completed`` and ``cancelled`` are final.
    """

    draft = "draft"
    submitted = "submitted"
    approved = "approved"
    scheduled = "scheduled"
    running = "running"
    paused = "paused"
    completed = "completed"
    cancelled = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (CampaignStatus.completed, CampaignStatus.cancelled)


class RunStatus(enum.StrEnum):
    """Lifecycle of one run (one campaign, one community, one scheduled instant)::

        pending ──▶ planning ──▶ planned ──▶ dispatching ──▶ done
           │            │
           ├────────────┴──▶ skipped     (stale version, nobody eligible, campaign edited)
           └──▶ cancelled                (the campaign was cancelled)

    ``pending`` runs are created when the campaign is scheduled (and, for recurring and drip
    schedules, one occurrence ahead by ``extend_schedules``).  ``due_runs`` lists the pending
    runs whose ``due_at`` has passed; the planner claims one with a conditional UPDATE
    ``pending → planning`` so two planners never plan the same run.
    """

    pending = "pending"
    planning = "planning"
    planned = "planned"
    dispatching = "dispatching"
    done = "done"
    skipped = "skipped"
    cancelled = "cancelled"


def _enum(cls: type[enum.StrEnum], length: int = 20) -> Enum:
    return Enum(cls, native_enum=False, length=length, validate_strings=True)


class Campaign(OrgScoped, Base):
    __tablename__ = "campaign"
    __table_args__ = (
        Index("ix_campaign_org_status", "organization_id", "status"),
        CheckConstraint("version >= 1", name="version_positive"),
        CheckConstraint("pacing_minutes >= 0", name="pacing_not_negative"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    objective: Mapped[str] = mapped_column(Text, default="")
    topic: Mapped[str] = mapped_column(String(40))
    kind: Mapped[CampaignKind] = mapped_column(_enum(CampaignKind))
    status: Mapped[CampaignStatus] = mapped_column(
        _enum(CampaignStatus), default=CampaignStatus.draft
    )
    created_by_user_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("app_user.id", ondelete="SET NULL"), default=None
    )
    # Whoever last changed what would be sent: an author too, so never its approver.
    edited_by_user_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("app_user.id", ondelete="SET NULL"), default=None
    )
    submitted_by_user_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("app_user.id", ondelete="SET NULL"), default=None
    )
    submitted_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    approved_by_user_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("app_user.id", ondelete="SET NULL"), default=None
    )
    approved_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    # Bumped by every edit of what would be sent; runs remember the version they came from.
    version: Mapped[int] = mapped_column(Integer, default=1)
    # Checked by senders at send time: a pause stops deliveries already queued.
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    # {"languages": ["es", "ht"], "channels": ["whatsapp"]}; absent or empty: everyone.
    filters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    fallback_language: Mapped[str] = mapped_column(String(2))
    # See campaigns.outreach.schedules for the three shapes (once, rrule, drip).
    schedule: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # Spread each run's sends evenly over this many minutes; 0 sends them all at once.
    pacing_minutes: Mapped[int] = mapped_column(Integer, default=0)
    # Polls: replies are counted for this long after a contact's question was sent.
    response_window_hours: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def sending_allowed(self) -> bool:
        """Whether a delivery of this campaign may leave now (senders also check the run's
        ``campaign_version`` against ``version``)."""
        return not self.paused and self.status in (
            CampaignStatus.scheduled,
            CampaignStatus.running,
        )


class CampaignCommunity(Base):
    """A community the campaign targets."""

    __tablename__ = "campaign_community"
    __table_args__ = (Index("ix_campaign_community_community", "community_id"),)

    campaign_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("campaign.id", ondelete="CASCADE"), primary_key=True
    )
    community_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("community.id", ondelete="CASCADE"), primary_key=True
    )


class CampaignContent(Base):
    """What is sent in one language (and, for drips, at one step).

    SMS contacts get ``sms_text``.  WhatsApp contacts get ``whatsapp_text`` (or, failing that,
    ``sms_text``) as free text inside the 24-hour window since they last wrote, and the approved
    template ``whatsapp_content_sid`` with ``whatsapp_variables`` outside it.  ``whatsapp_text``
    mirrors the template's body, so its ``{{1}}`` placeholders name template variables.
    """

    __tablename__ = "campaign_content"
    __table_args__ = (
        UniqueConstraint("campaign_id", "language", "step"),
        CheckConstraint("step >= 1", name="step_positive"),
        CheckConstraint("offset_days >= 0", name="offset_not_negative"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # Indexed by the unique constraint, which starts with it.
    campaign_id: Mapped[int] = mapped_column(BigId, ForeignKey("campaign.id", ondelete="CASCADE"))
    language: Mapped[str] = mapped_column(String(2))
    # Announcements and polls have one step (1); drips number theirs 1..n.
    step: Mapped[int] = mapped_column(Integer, default=1)
    # Drips: days after the contact joined the community.
    offset_days: Mapped[int] = mapped_column(Integer, default=0)
    sms_text: Mapped[str | None] = mapped_column(Text, default=None)
    whatsapp_content_sid: Mapped[str | None] = mapped_column(String(34), default=None)
    whatsapp_variables: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    whatsapp_text: Mapped[str | None] = mapped_column(Text, default=None)


class PollOption(Base):
    """One numbered answer of a poll, with its label and extra reply words per language."""

    __tablename__ = "poll_option"
    __table_args__ = (
        UniqueConstraint("campaign_id", "number"),
        CheckConstraint("number >= 1", name="number_positive"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # Indexed by the unique constraint, which starts with it.
    campaign_id: Mapped[int] = mapped_column(BigId, ForeignKey("campaign.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    # {"es": "Sí", "ht": "Wi"}
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # {"es": ["uno", "la primera", "si"], "ht": ["wi"]}
    aliases: Mapped[dict[str, list[str]]] = mapped_column(JSON, default=dict)


class CampaignRun(OrgScoped, Base):
    """One send of a campaign to one community at one instant (see ``RunStatus``).

    ``scheduled_for`` is the schedule's own occurrence (the community's local time as a UTC
    instant) and, with the campaign and community, the run's identity: scheduling twice never
    makes two runs.  ``due_at`` is when it may start: ``scheduled_for`` moved past the
    community's quiet hours.
    """

    __tablename__ = "campaign_run"
    __table_args__ = (
        UniqueConstraint("campaign_id", "community_id", "scheduled_for"),
        Index("ix_campaign_run_status_due", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # Indexed by the unique constraint, which starts with it.
    campaign_id: Mapped[int] = mapped_column(BigId, ForeignKey("campaign.id", ondelete="CASCADE"))
    community_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True
    )
    scheduled_for: Mapped[dt.datetime]
    due_at: Mapped[dt.datetime]
    status: Mapped[RunStatus] = mapped_column(_enum(RunStatus), default=RunStatus.pending)
    campaign_version: Mapped[int] = mapped_column(Integer)
    planned_count: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class DeliveryStatus(enum.StrEnum):
    """Lifecycle of one delivery (one contact, one run)::

        planned ──dispatch──▶ queued ──message sent──▶ sent
           │                    │
           │                    ├──message failed──▶ failed      (reason: Twilio's code)
           │                    ├──refused at send──▶ skipped    (opted out, erased, stale…)
           │                    └──campaign paused──▶ planned    (a new message on resume)
           └──▶ skipped   (opted out or erased before dispatch, no sender, run stale/cancelled)

    The planner writes ``planned`` rows in one ``INSERT … SELECT … ON CONFLICT DO NOTHING``;
    dispatch turns due ones into pending campaign messages (``queued``); the tick's sync moves
    them on from what happened to their message.  ``send_after`` is when the delivery may be
    dispatched: the run's start spread by pacing, moved past the community's quiet hours.
    """

    planned = "planned"
    queued = "queued"
    sent = "sent"
    skipped = "skipped"
    failed = "failed"


class CampaignDelivery(OrgScoped, Base):
    """One contact's message of one run (see ``DeliveryStatus``).

    Two keys make it exactly once:

    - ``UNIQUE(run_id, contact_id)``: planning a run twice adds nothing;
    - ``UNIQUE(campaign_id, occurrence_key, contact_id)``: a contact of two targeted
      communities gets one message per occurrence of the campaign, not one per community.
      ``occurrence_key`` is the occurrence on the schedule's own wall clock
      (``2026-12-01T09:00``), which every community's run of that occurrence shares although
      their UTC instants differ; for drips it is the step (``step:2``), so a newcomer of two
      communities gets each step once.
    """

    __tablename__ = "campaign_delivery"
    __table_args__ = (
        UniqueConstraint("run_id", "contact_id"),
        UniqueConstraint("campaign_id", "occurrence_key", "contact_id"),
        Index("ix_campaign_delivery_run_status_send_after", "run_id", "status", "send_after"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(BigId, ForeignKey("campaign_run.id", ondelete="CASCADE"))
    campaign_id: Mapped[int] = mapped_column(BigId, ForeignKey("campaign.id", ondelete="CASCADE"))
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("contact.id", ondelete="CASCADE"), index=True
    )
    occurrence_key: Mapped[str] = mapped_column(String(32))
    message_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("message.id", ondelete="SET NULL"), default=None, index=True
    )
    status: Mapped[DeliveryStatus] = mapped_column(
        _enum(DeliveryStatus), default=DeliveryStatus.planned
    )
    reason: Mapped[str | None] = mapped_column(String(40), default=None)
    # The language whose content the contact gets (theirs or the campaign's fallback).
    language: Mapped[str] = mapped_column(String(2))
    step: Mapped[int] = mapped_column(Integer, default=1)
    send_after: Mapped[dt.datetime]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
