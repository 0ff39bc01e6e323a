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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Integer, Table, bindparam, case, func, insert, or_, select, update
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
    """Whether the callback was for a message Faro knows (else it was ignored, and logged)."""

    known: bool


@dataclass(frozen=True)
class StatusReport:
    """One callback, checked: Twilio's SID, the status it reports, its error code, the hint."""

    sid: str
    status: MessageStatus
    error_code: int | None
    message_hint: int | None


def parse_status(form: Mapping[str, str], *, message_hint: int | None = None) -> StatusReport:
    """Check a callback's fields; ``InvalidInput`` names the one that is wrong."""
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
    code_text = form.get("ErrorCode", "")
    error_code = int(code_text) if code_text.isdigit() and len(code_text) < 9 else None
    return StatusReport(
        sid=sid, status=MessageStatus(raw_status), error_code=error_code, message_hint=message_hint
    )


def record_status(
    session: Session,
    *,
    form: Mapping[str, str],
    message_hint: int | None = None,
    now: dt.datetime | None = None,
) -> StatusResult:
    """One callback (see ``record_statuses``)."""
    report = parse_status(form, message_hint=message_hint)
    return record_statuses(session, [report], now=now)[0]


# The statements, built once: building them (and their cache keys) for every batch cost more
# CPU than running them when batches are small.
_MESSAGE = cast(Table, Message.__table__)
_KNOWN = select(
    _MESSAGE.c.twilio_sid, _MESSAGE.c.id, _MESSAGE.c.organization_id, _MESSAGE.c.contact_id
).where(_MESSAGE.c.twilio_sid.in_(bindparam("sids", expanding=True)))
_RANK = bindparam("rank", type_=Integer)
_FORWARD = {  # to the reported status only if it is further along than where the row stands
    "status": case(
        (_MESSAGE.c.status_rank < _RANK, bindparam("status", type_=_MESSAGE.c.status.type)),
        else_=_MESSAGE.c.status,
    ),
    "status_rank": case((_MESSAGE.c.status_rank < _RANK, _RANK), else_=_MESSAGE.c.status_rank),
    "updated_at": bindparam("now", type_=_MESSAGE.c.updated_at.type),
    "error_code": case(
        (
            _MESSAGE.c.status_rank < _RANK,
            func.coalesce(bindparam("code", type_=Integer), _MESSAGE.c.error_code),
        ),
        else_=_MESSAGE.c.error_code,
    ),
}
_ADVANCE = update(_MESSAGE).where(_MESSAGE.c.id == bindparam("mid")).values(**_FORWARD)
_ADOPT = (  # the crash window: the row gets Twilio's SID with its status
    update(_MESSAGE)
    .where(
        _MESSAGE.c.id == bindparam("mid"),
        or_(_MESSAGE.c.twilio_sid.is_(None), _MESSAGE.c.twilio_sid == bindparam("sid")),
    )
    .values(twilio_sid=bindparam("sid"), **_FORWARD)
    .returning(_MESSAGE.c.id, _MESSAGE.c.organization_id, _MESSAGE.c.contact_id)
)
_EVENTS = insert(cast(Table, MessageStatusEvent.__table__))


def record_statuses(
    session: Session, reports: Sequence[StatusReport], *, now: dt.datetime | None = None
) -> list[StatusResult]:
    """Many callbacks in a few statements, whatever their order and however often repeated.

    Each report is appended to the event log; each message then moves to the highest status
    reported for it, if that is higher than where it stands.  21610 ("unsubscribed") opts the
    contact out.  Message rows are written in ascending id order, as the sender records its
    batches, so the two never deadlock on each other.
    """
    now = now or utcnow()
    if not reports:
        return []
    sids = sorted({r.sid for r in reports})
    conn = session.connection()
    known: dict[str, tuple[int, int, int | None]] = {
        sid: (mid, org, contact)
        for sid, mid, org, contact in conn.execute(_KNOWN, {"sids": sids})
        if sid is not None
    }
    # The crash window: Twilio accepted a message and the worker died before saving its SID.
    # The callback's URL names Faro's message (``?m=``); the SID is filled in below.
    orphans: dict[str, int] = {
        r.sid: r.message_hint for r in reports if r.sid not in known and r.message_hint is not None
    }
    best: dict[int, StatusReport] = {}
    for report in reports:
        message_id = known[report.sid][0] if report.sid in known else orphans.get(report.sid)
        if message_id is None:
            continue
        current = best.get(message_id)
        if current is None or report.status.rank > current.status.rank:
            best[message_id] = report

    pending: list[dict[str, object]] = []
    for message_id, report in sorted(best.items()):
        params = {
            "mid": message_id,
            "rank": report.status.rank,
            "status": report.status,
            "code": report.error_code,
            "now": now,
        }
        if report.sid in known:
            pending.append(params)
            continue
        if pending:  # keep ascending order: the adopted row comes after the smaller ids
            conn.execute(_ADVANCE, pending)
            pending = []
        adopted = conn.execute(_ADOPT, params | {"sid": report.sid}).first()
        if adopted is not None:
            known[report.sid] = (adopted[0], adopted[1], adopted[2])
    if pending:
        conn.execute(_ADVANCE, pending)

    events: list[dict[str, object]] = []
    unsubscribed: set[int] = set()
    results: list[StatusResult] = []
    for report in reports:
        row = known.get(report.sid)
        if row is None:
            results.append(StatusResult(known=False))
            continue
        message_id, organization_id, contact_id = row
        events.append(
            {
                "organization_id": organization_id,
                "message_id": message_id,
                "status": report.status,
                "error_code": report.error_code,
                "received_at": now,
            }
        )
        if report.error_code == UNSUBSCRIBED and contact_id is not None:
            unsubscribed.add(contact_id)
        results.append(StatusResult(known=True))
    if events:
        conn.execute(_EVENTS, events)
    for contact_id in sorted(unsubscribed):
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
    return results
