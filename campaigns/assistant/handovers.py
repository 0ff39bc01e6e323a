"""Handovers: a person from the organization takes the conversation over from the assistant."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.assistant.models import Handover, HandoverStatus
from campaigns.contacts.models import Channel, Contact
from campaigns.db import get_or_404, utcnow
from campaigns.errors import Conflict
from campaigns.messaging.dispatch import WHATSAPP_WINDOW
from campaigns.messaging.models import Message, Purpose, Sender
from campaigns.messaging.outbound import queue_text


def get(session: Session, handover_id: int) -> Handover:
    return get_or_404(session, Handover, handover_id, "handover")


def conversation(session: Session, handover: Handover, *, limit: int = 200) -> list[Message]:
    rows = session.scalars(
        select(Message)
        .where(Message.contact_id == handover.contact_id)
        .order_by(Message.id.desc())
        .limit(limit)
    )
    return list(reversed(list(rows)))


def reply(
    session: Session, *, handover_id: int, text: str, user_id: int, now: dt.datetime | None = None
) -> Handover:
    now = now or utcnow()
    handover = get(session, handover_id)
    if handover.status != HandoverStatus.open:
        raise Conflict("this handover is closed", field="status")
    contact = get_or_404(session, Contact, handover.contact_id, "contact")
    if contact.erased:
        raise Conflict("this person erased their data", field="contact")
    if contact.channel == Channel.whatsapp and (
        contact.last_inbound_at is None or now - contact.last_inbound_at >= WHATSAPP_WINDOW
    ):
        raise Conflict(
            "outside WhatsApp's 24-hour window: the person must write again before a free-text "
            "reply can be sent",
            field="text",
        )
    last_inbound = session.scalar(
        select(Message.sender_id)
        .where(Message.contact_id == contact.id, Message.sender_id.is_not(None))
        .order_by(Message.id.desc())
        .limit(1)
    )
    sender = session.get(Sender, last_inbound) if last_inbound else None
    if sender is None:
        raise Conflict("no sender known for this conversation", field="contact")
    queue_text(
        session, contact=contact, sender=sender, purpose=Purpose.handover, body=text, now=now
    )
    if handover.first_reply_at is None:
        handover.first_reply_at = now
    return handover


def close(
    session: Session, *, handover_id: int, user_id: int, now: dt.datetime | None = None
) -> Handover:
    handover = get(session, handover_id)
    if handover.status == HandoverStatus.open:
        handover.status = HandoverStatus.closed
        handover.closed_at = now or utcnow()
        handover.closed_by_user_id = user_id
    return handover
