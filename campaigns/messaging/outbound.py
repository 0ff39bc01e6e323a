"""Outbound messages are rows first: created ``pending``, then sent by ``messages.send``.

The send task is published after the transaction commits, on the queue the message's purpose
picks (conversation replies never wait behind campaign sends).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping

from sqlalchemy.orm import Session

from campaigns.contacts.models import Contact
from campaigns.db import utcnow
from campaigns.errors import InvalidInput
from campaigns.messaging.models import Direction, Message, MessageStatus, Purpose, Sender
from campaigns.messaging.segments import MAX_BODY_CHARACTERS, measure, within_twilio_limit
from campaigns.outbox import publish_after_commit

CONTENT_SID = re.compile(r"HX[0-9a-fA-F]{32}")


def queue_text(
    session: Session,
    *,
    contact: Contact,
    sender: Sender,
    purpose: Purpose,
    body: str,
    now: dt.datetime | None = None,
    then_erase: bool = False,
    publish: bool = True,
    campaign_id: int | None = None,
) -> Message:
    if not body.strip():
        raise InvalidInput("a message needs a body", field="body")
    if not within_twilio_limit(body):
        raise InvalidInput(
            f"a message may have at most {MAX_BODY_CHARACTERS} characters", field="body"
        )
    return _queue(
        session,
        contact=contact,
        sender=sender,
        purpose=purpose,
        now=now,
        then_erase=then_erase,
        publish=publish,
        kind="text",
        body=body,
        segments=measure(body).segments,
        campaign_id=campaign_id,
    )


def queue_template(
    session: Session,
    *,
    contact: Contact,
    sender: Sender,
    purpose: Purpose,
    content_sid: str,
    variables: Mapping[str, str],
    fallback_body: str | None = None,
    now: dt.datetime | None = None,
    publish: bool = True,
    campaign_id: int | None = None,
) -> Message:
    """A WhatsApp template (``content_sid``); ``fallback_body`` is used inside the 24-h window."""
    if not CONTENT_SID.fullmatch(content_sid):
        raise InvalidInput("content_sid must be a Twilio Content SID (HX…)", field="content_sid")
    return _queue(
        session,
        contact=contact,
        sender=sender,
        purpose=purpose,
        now=now,
        then_erase=False,
        publish=publish,
        kind="template",
        body=fallback_body,
        content_sid=content_sid,
        content_variables=dict(variables),
        campaign_id=campaign_id,
    )


def _queue(
    session: Session,
    *,
    contact: Contact,
    sender: Sender,
    purpose: Purpose,
    now: dt.datetime | None,
    then_erase: bool,
    publish: bool,
    **fields: object,
) -> Message:
    now = now or utcnow()
    message = Message(
        organization_id=contact.organization_id,
        contact_id=contact.id,
        sender_id=sender.id,
        direction=Direction.outbound,
        channel=contact.channel,
        status=MessageStatus.pending,
        status_rank=MessageStatus.pending.rank,
        purpose=purpose,
        then_erase=then_erase,
        created_at=now,
        updated_at=now,
        **fields,
    )
    session.add(message)
    session.flush()
    if publish:
        publish_after_commit(session, "messages.send", [message.id], queue=purpose.queue)
    return message
