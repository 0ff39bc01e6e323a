"""A test send: the campaign's message, as it would go out, to one number a manager names.

It never bypasses consent: the number must belong to a contact of the organization on that
channel who has opted in (and is not erased), else ``Conflict``.  The message goes through the
normal gateway with purpose ``test`` (so it is never counted as a poll question nor in a
campaign's deliveries) and is audit-logged as ``campaign.test_send``.  Links are sent as written,
not tracked, so tests do not count as clicks.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns import audit
from campaigns.communities import validate_language
from campaigns.contacts.models import Channel, ConsentState
from campaigns.contacts.service import find_by_address
from campaigns.crypto import AddressCipher
from campaigns.db import utcnow
from campaigns.errors import Conflict, InvalidInput
from campaigns.messaging.models import Message, Purpose, Sender
from campaigns.messaging.outbound import queue_template, queue_text
from campaigns.outreach.editing import contents_of, get_campaign, options_of
from campaigns.outreach.validation import rendered_sms, rendered_whatsapp_text

# Inside this long since the contact last wrote, WhatsApp allows free text.
WHATSAPP_WINDOW = dt.timedelta(hours=24)


def send_test(
    session: Session,
    *,
    cipher: AddressCipher,
    campaign_id: int,
    phone: str,
    channel: str,
    language: str,
    now: dt.datetime | None = None,
) -> Message:
    """Queue the campaign's first message in ``language`` to ``phone`` on ``channel``."""
    now = now or utcnow()
    campaign = get_campaign(session, campaign_id)
    language = validate_language(language)
    if channel not in (Channel.sms.value, Channel.whatsapp.value):
        raise InvalidInput("channel is whatsapp or sms", field="channel")
    row = next(
        (r for r in contents_of(session, campaign.id) if r.language == language and r.step == 1),
        None,
    )
    if row is None:
        raise InvalidInput(f"the campaign has no content in {language}", field="language")
    contact = find_by_address(session, cipher=cipher, channel=channel, phone=phone)
    if contact is None or contact.erased or contact.consent != ConsentState.opted_in:
        raise Conflict(
            "a test send goes only to a contact of this organization who opted in on this "
            "channel; add the number as a contact with consent first",
            field="phone",
        )
    sender = session.scalar(
        select(Sender)
        .where(
            Sender.organization_id == campaign.organization_id, Sender.channel == contact.channel
        )
        .order_by(Sender.id)
        .limit(1)
    )
    if sender is None:
        raise Conflict(f"the organization has no {channel} sender", field="channel")
    options = options_of(session, campaign.id)
    fallback = campaign.fallback_language
    message: Message | None = None
    if contact.channel == Channel.sms:
        text = rendered_sms(row, options, fallback=fallback)
        if text is not None:
            message = queue_text(
                session,
                contact=contact,
                sender=sender,
                purpose=Purpose.test,
                body=text,
                now=now,
                campaign_id=campaign.id,
            )
    else:
        text = rendered_whatsapp_text(row, options, fallback=fallback)
        in_window = contact.last_inbound_at is not None and now - contact.last_inbound_at < (
            WHATSAPP_WINDOW
        )
        if in_window and text is not None:
            message = queue_text(
                session,
                contact=contact,
                sender=sender,
                purpose=Purpose.test,
                body=text,
                now=now,
                campaign_id=campaign.id,
            )
        elif row.whatsapp_content_sid is not None:
            message = queue_template(
                session,
                contact=contact,
                sender=sender,
                purpose=Purpose.test,
                content_sid=row.whatsapp_content_sid,
                variables=row.whatsapp_variables,
                fallback_body=text,
                now=now,
                campaign_id=campaign.id,
            )
    if message is None:
        raise InvalidInput(
            f"the {language} content has nothing this contact can receive on {channel} now "
            "(no SMS text, or outside the WhatsApp window without a template)",
            field="language",
        )
    audit.record(
        session,
        action="campaign.test_send",
        object_type="campaign",
        object_id=campaign.id,
        organization_id=campaign.organization_id,
        after={"message_id": message.id, "channel": channel, "language": language},
    )
    return message
