"""Twilio's delivery reports: appended to the event log; the message only moves forward.

Callbacks arrive late, duplicated and out of order, so each one is appended to
``message_status_event`` as it is, and the message's status changes only when the reported
status ranks higher than the current one (one conditional UPDATE, safe under concurrency).
Faro's status callback URL carries its own message id (``?m=``): a callback for a message whose
row never got Twilio's SID (a worker died between Twilio accepting and the row update) fills it
in, so the message is not sent again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from campaigns.contacts.models import ConsentSource, ConsentState, Contact
from campaigns.contacts.service import set_consent
from campaigns.db import utcnow
from campaigns.errors import InvalidInput
from campaigns.messaging.models import Message, MessageStatus, MessageStatusEvent
from campaigns.messaging.twilio_gateway import UNSUBSCRIBED

TWILIO_STATUSES = frozenset(
    {
        "queued",
        "sending",
        "sent",
        "delivered",
        "read",
        "failed",
        "undelivered",
        "accepted",
        "scheduled",
        "canceled",
        "receiving",
        "received",
    }
)


@dataclass(frozen=True)
class StatusResult:
    known: bool
    advanced: bool


def record_status(
    session: Session,
    *,
    form: Mapping[str, str],
    message_hint: int | None = None,
    now: dt.datetime | None = None,
) -> StatusResult:
    now = now or utcnow()
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    raw_status = (form.get("MessageStatus") or form.get("SmsStatus") or "").lower()
    if not sid or len(sid) > 64:
        raise InvalidInput("MessageSid is missing or malformed", field="MessageSid")
    if raw_status not in TWILIO_STATUSES:
        raise InvalidInput(f"unknown MessageStatus {raw_status[:20]!r}", field="MessageStatus")
    if raw_status in ("accepted", "scheduled", "receiving", "received"):
        raw_status = "queued"
    if raw_status == "canceled":
        raw_status = "failed"
    status = MessageStatus(raw_status)
    code_text = form.get("ErrorCode", "")
    error_code = int(code_text) if code_text.isdigit() and len(code_text) < 9 else None

    row = session.execute(
        select(Message.id, Message.organization_id, Message.contact_id).where(
            Message.twilio_sid == sid
        )
    ).first()
    if row is None and message_hint is not None:
        # The crash window: Twilio accepted it, the worker died before saving the SID.
        reconciled = session.execute(
            update(Message)
            .where(Message.id == message_hint, Message.twilio_sid.is_(None))
            .values(twilio_sid=sid)
            .returning(Message.id, Message.organization_id, Message.contact_id)
            .execution_options(synchronize_session=False)
        ).first()
        row = reconciled
    if row is None:
        return StatusResult(known=False, advanced=False)
    message_id, organization_id, contact_id = row
    session.execute(
        insert(MessageStatusEvent).values(
            organization_id=organization_id,
            message_id=message_id,
            status=status,
            error_code=error_code,
            received_at=now,
        )
    )
    values: dict[str, object] = {"status": status, "status_rank": status.rank, "updated_at": now}
    if error_code is not None:
        values["error_code"] = error_code
    advanced = session.execute(
        update(Message)
        .where(Message.id == message_id, Message.status_rank < status.rank)
        .values(**values)
        .returning(Message.id)
        .execution_options(synchronize_session=False)
    ).first()
    if error_code == UNSUBSCRIBED and contact_id is not None:
        contact = session.get(Contact, contact_id)
        if contact is not None:
            set_consent(
                session,
                contact=contact,
                state=ConsentState.opted_out,
                source=ConsentSource.twilio_error,
                detail="21610",
                now=now,
            )
    return StatusResult(known=True, advanced=advanced is not None)
