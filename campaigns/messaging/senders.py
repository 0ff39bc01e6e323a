"""Senders: the organization's Twilio numbers and WhatsApp senders, and their send rates."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.contacts.models import Channel
from campaigns.db import get_or_404, session_org
from campaigns.errors import Conflict, InvalidInput
from campaigns.messaging.models import Sender
from campaigns.phones import parse_mobile

MAX_RATE = 1000.0


def _rate(value: float) -> float:
    if not 0 < value <= MAX_RATE:
        raise InvalidInput(
            f"rate_per_second must be above 0 and at most {MAX_RATE}", field="rate_per_second"
        )
    return value


def create_sender(
    session: Session,
    *,
    channel: str,
    address: str,
    rate_per_second: float = 10.0,
    messaging_service_sid: str | None = None,
    is_simulated: bool = False,
    organization_id: int | None = None,
) -> Sender:
    org_id = organization_id or session_org(session)
    if org_id is None:
        raise InvalidInput("organization is required", field="organization_id")
    try:
        ch = Channel(channel)
    except ValueError as exc:
        raise InvalidInput(
            f"unknown channel {channel!r}: use whatsapp or sms", field="channel"
        ) from exc
    number = address.strip().removeprefix("whatsapp:")
    try:
        e164 = parse_mobile(number, field="address").e164
    except InvalidInput:
        # Twilio numbers may be toll-free or short codes; accept any +E.164.
        if not (number.startswith("+") and number[1:].isdigit() and 6 <= len(number) <= 16):
            raise
        e164 = number
    if messaging_service_sid is not None and not re.fullmatch(
        r"MG[0-9a-fA-F]{32}", messaging_service_sid
    ):
        raise InvalidInput(
            "messaging_service_sid must look like MG + 32 hex characters",
            field="messaging_service_sid",
        )
    taken = session.scalar(
        select(Sender.id)
        .where(Sender.channel == ch, Sender.address == e164)
        .execution_options(skip_org_scope=True)
    )
    if taken is not None:
        raise Conflict("this number is already a sender", field="address")
    sender = Sender(
        organization_id=org_id,
        channel=ch,
        address=e164,
        rate_per_second=_rate(rate_per_second),
        messaging_service_sid=messaging_service_sid,
        is_simulated=is_simulated,
    )
    session.add(sender)
    session.flush()
    return sender


def update_sender(session: Session, *, sender_id: int, rate_per_second: float | None) -> Sender:
    sender = get_or_404(session, Sender, sender_id, "sender")
    if rate_per_second is not None:
        sender.rate_per_second = _rate(rate_per_second)
    session.flush()
    return sender
