"""Sending: claim pending rows, re-check them, submit concurrently, record what happened.

``send_batch`` is what the ``messages.send`` task runs, for one id or a batch:

1. **Claim** — one ``UPDATE … SET status='submitting' WHERE id IN (…) AND status='pending'
   RETURNING id``, committed before any network call.  Only rows this call moved are sent, so
   a redelivered or duplicated task finds nothing to do: no message is sent twice.
2. **Re-check** each claimed message at send time: the contact not erased; campaign messages
   only to contacts who opted in; WhatsApp free text only inside the 24-hour window since the
   contact last wrote (outside it the message's approved template goes instead, or the message
   fails with 63016 without calling Twilio).  Campaign messages also ask
   ``campaigns.outreach.sendcheck`` (one query per batch): a paused campaign's message is
   refused and its delivery waits for resume, a stale one (campaign edited, cancelled) is
   refused for good, and one whose community is in quiet hours goes back to ``pending`` and is
   re-published for the end of the window — deferred, never dropped.  A campaign message that
   waited over ``RECHECK_AFTER`` seconds for its rate limit asks again just before it goes, so
   a pause stops what a worker already claimed within seconds.
3. **Submit** concurrently (asyncio), each after taking a token from its sender's rate limit
   (shared by every worker through Redis).  A message whose previous attempt timed out or lost
   its connection after the request was written (``UNCONFIRMED``) is first looked up at Twilio
   and adopted if Twilio has it.  One contact's messages go in order, and a temporary failure
   holds back that contact's later messages of the batch.  Nothing raised by one submission
   stops the others or outlives the batch (a Redis outage at the rate limiter is a temporary
   failure of those messages, not sent).
4. **Record** every outcome in one transaction: accepted → Twilio's SID and status (never
   moving a status backwards if a callback got there first); temporary failure → back to
   ``pending`` and re-published with exponential backoff and jitter, honouring
   ``Retry-After`` (marked ``UNCONFIRMED`` when Twilio may have it); permanent failure →
   ``failed`` with Twilio's code (21610 also opts the contact out).  An erasure confirmation
   erases the contact once it has left.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

from sqlalchemy import Boolean, Integer, Table, bindparam, case, func, null, select, update
from sqlalchemy.orm import Session, sessionmaker

from campaigns.contacts.models import ConsentSource, ConsentState, Contact
from campaigns.contacts.service import erase_contact, set_consent
from campaigns.crypto import AddressCipher
from campaigns.db import retry_on_deadlock, utcnow
from campaigns.logging import get_logger
from campaigns.messaging.models import Message, MessageStatus, Purpose, Sender
from campaigns.messaging.ratelimit import WHILE_CHATTING, RateLimiter
from campaigns.messaging.twilio_gateway import (
    OUTSIDE_WINDOW,
    UNSUBSCRIBED,
    Gateway,
    OutboundRequest,
    SubmitResult,
)
from campaigns.outbox import publish_after_commit
from campaigns.outreach.sendcheck import Hold, campaign_holds

log = get_logger(__name__)

WHATSAPP_WINDOW = dt.timedelta(hours=24)
MAX_ATTEMPTS = 8
# Calls in flight per batch (so per worker thread).  At Twilio's ~150 ms a call, 32 allow ~210
# sends/s per thread, more than a worker's CPU sends (~290/s per bulk worker here).  More only
# queues at Twilio: with 256 a reply waited behind ~2,000 campaign calls (1.1 s p50), and
# Twilio refuses an account's excess concurrent requests (error 20429).  docs/benchmarks.md.
CONCURRENCY = 32
# A campaign message that waited this long for a rate-limit token asks again whether its
# campaign may still send before it goes (one query for the batch): a pause or a cancel stops
# even the messages a worker already claimed within about this long.
RECHECK_AFTER = 2.0
# Faro's own codes for messages it refused to send (Twilio's codes are 5 digits).
REFUSED_ERASED = 1
REFUSED_NO_CONSENT = 2
REFUSED_GAVE_UP = 3
REFUSED_PAUSED = 4
REFUSED_STALE = 5
# Not a refusal: on a ``pending`` message, its last attempt may have reached Twilio (timeout,
# connection dropped after the request), so the next one asks Twilio before sending.
UNCONFIRMED = 6
_TWILIO_STATUSES = frozenset(s.value for s in MessageStatus) - {
    "pending",
    "submitting",
    "received",
    "simulated",
}


def adopted_status(twilio_status: str | None) -> MessageStatus:
    """The status of a message adopted from Twilio's records (``queued`` if Twilio's is one
    Faro does not track)."""
    if twilio_status in _TWILIO_STATUSES:
        return MessageStatus(twilio_status)
    return MessageStatus.queued


@dataclass
class DispatchReport:
    claimed: int = 0
    accepted: int = 0
    simulated: int = 0
    retried: int = 0
    failed: int = 0
    refused: int = 0
    skipped_ids: list[int] = field(default_factory=list)


@dataclass
class _Item:
    message: Message
    contact: Contact | None
    sender: Sender | None
    request: OutboundRequest | None = None
    refused_code: int | None = None
    result: SubmitResult | None = None
    defer_until: dt.datetime | None = None
    # Held back behind an earlier message of the same contact that must be retried; that one's
    # retry carries this one with it, so the two keep their order.
    held: bool = False
    behind: list[_Item] = field(default_factory=list)


def backoff_seconds(attempt: int, retry_after: float | None = None) -> float:
    """Full-jitter exponential backoff (2 s … 5 min), never sooner than ``Retry-After``."""
    ceiling = min(300.0, 2.0 * 2 ** max(0, attempt - 1))
    delay = random.uniform(ceiling / 2, ceiling)
    return max(delay, retry_after or 0.0)


def _claim(session: Session, ids: Sequence[int], now: dt.datetime) -> list[int]:
    rows = session.execute(
        update(Message)
        .where(Message.id.in_(list(ids)), Message.status == MessageStatus.pending)
        .values(
            status=MessageStatus.submitting,
            status_rank=MessageStatus.submitting.rank,
            attempts=Message.attempts + 1,
            submitted_at=now,
            updated_at=now,
        )
        .returning(Message.id)
        .execution_options(synchronize_session=False)
    )
    return [r[0] for r in rows]


def _prepare(item: _Item, *, cipher: AddressCipher, public_url: str, now: dt.datetime) -> None:
    message, contact, sender = item.message, item.contact, item.sender
    if contact is None or contact.erased or contact.address_ciphertext is None or sender is None:
        item.refused_code = REFUSED_ERASED
        return
    if message.purpose == Purpose.campaign and contact.consent != ConsentState.opted_in:
        item.refused_code = REFUSED_NO_CONSENT
        return
    body, content_sid = message.body, message.content_sid
    if message.channel.value == "whatsapp":
        inside = (
            contact.last_inbound_at is not None and now - contact.last_inbound_at < WHATSAPP_WINDOW
        )
        if inside and body:
            content_sid = None  # free text is allowed and reads better than a template
        elif content_sid is None:
            item.refused_code = OUTSIDE_WINDOW  # Twilio would reject it with 63016
            return
    elif body:
        content_sid = None  # SMS: the text itself; a Content template only when there is none
    item.request = OutboundRequest(
        message_id=message.id,
        to=cipher.decrypt(contact.address_ciphertext),
        channel=message.channel.value,
        from_address=sender.address,
        messaging_service_sid=sender.messaging_service_sid,
        body=body,
        content_sid=content_sid,
        content_variables=message.content_variables if content_sid else None,
        status_callback=f"{public_url}/webhooks/twilio/status?m={message.id}",
        validity_period=14400 if message.purpose == Purpose.campaign else 3600,
    )


def _hold(item: _Item, hold: Hold | None) -> bool:
    if hold is None:
        return False
    if hold.stale:
        item.refused_code = REFUSED_STALE
    elif hold.paused:
        item.refused_code = REFUSED_PAUSED
    else:
        item.defer_until = hold.quiet_until
    return True


async def send_batch(
    *,
    factory: sessionmaker[Session],
    gateway: Gateway,
    simulator: Gateway,
    limiter: RateLimiter | None,
    cipher: AddressCipher,
    public_url: str,
    message_ids: Sequence[int],
    now: dt.datetime | None = None,
    rate_while_chatting: float = 0.0,
    recheck_after: float = RECHECK_AFTER,
) -> DispatchReport:
    """Claim ``message_ids`` (the pending ones), send them, record every outcome.

    ``rate_while_chatting``: while the assistant is answering someone, campaign messages also
    share one deployment-wide bucket at this rate (see `campaigns.messaging.ratelimit`); 0 never.
    ``recheck_after``: seconds after which a campaign message that waited for its rate limit
    asks again whether its campaign is paused, cancelled or in quiet hours.
    """
    report = DispatchReport()
    now = now or utcnow()
    started = time.monotonic()
    with factory() as session, session.begin():
        claimed = _claim(session, message_ids, now)
    report.claimed = len(claimed)
    report.skipped_ids = sorted(set(message_ids) - set(claimed))
    if not claimed:
        return report

    with factory() as session:
        rows = session.execute(
            select(Message, Contact, Sender)
            .outerjoin(Contact, Contact.id == Message.contact_id)
            .outerjoin(Sender, Sender.id == Message.sender_id)
            .where(Message.id.in_(claimed))
        ).all()
        items = [_Item(message=m, contact=c, sender=s) for m, c, s in rows]
        holds = campaign_holds(
            session, [i.message.id for i in items if i.message.purpose == Purpose.campaign], now=now
        )
        session.expunge_all()
    for item in items:
        if not _hold(item, holds.get(item.message.id)):
            _prepare(item, cipher=cipher, public_url=public_url, now=now)

    semaphore = asyncio.Semaphore(CONCURRENCY)
    await _adopt_unconfirmed(factory, gateway, items, semaphore)
    recheck = _Recheck(factory, items, checked=started, after=recheck_after)
    yielding = limiter is not None and await _yielding(limiter, items, rate_while_chatting)

    def simulated(item: _Item) -> bool:
        assert item.sender is not None
        return (
            gateway.simulated
            or item.sender.is_simulated
            or (item.contact is not None and item.contact.is_simulated)
        )

    async def submit(item: _Item) -> None:
        assert item.request is not None and item.sender is not None
        async with semaphore:
            if simulated(item):
                item.result = await simulator.submit(item.request)
                return
            if limiter is not None:
                try:
                    if yielding and item.message.purpose == Purpose.campaign:
                        await limiter.acquire(WHILE_CHATTING, rate=rate_while_chatting)
                    await limiter.acquire(
                        f"sender:{item.sender.id}", rate=item.sender.rate_per_second
                    )
                except Exception as exc:  # Redis unreachable: not sent, try again later
                    log.warning("messages.rate_limiter_failed", error_type=type(exc).__name__)
                    item.result = SubmitResult(ok=False, temporary=True)
                    return
                if item.message.purpose == Purpose.campaign and recheck.holds(
                    item, now + dt.timedelta(seconds=time.monotonic() - started)
                ):
                    return  # paused, stale or quiet since the batch began: recorded as such
            try:
                item.result = await gateway.submit(item.request)
            except Exception as exc:  # the gateway classifies what it knows; this it did not
                log.error("messages.submit_failed", error_type=type(exc).__name__)
                item.result = SubmitResult(ok=False, temporary=True, uncertain=True)

    # One contact's messages go out one after the other, in the order they were written (a
    # hotline before the answer); different contacts' messages overlap.
    by_contact: dict[int | None, list[_Item]] = {}
    for item in sorted(items, key=lambda i: i.message.id):
        if item.request is not None and item.result is None:
            by_contact.setdefault(item.message.contact_id, []).append(item)

    async def submit_in_order(group: list[_Item]) -> None:
        for position, item in enumerate(group):
            await submit(item)
            if item.result is not None and item.result.temporary:
                item.behind = group[position + 1 :]  # not before the one that has to wait
                for later in item.behind:
                    later.result, later.held = SubmitResult(ok=False, temporary=True), True
                return

    await asyncio.gather(*(submit_in_order(g) for g in by_contact.values()))

    def record() -> None:
        # Counted afresh on each attempt: a deadlock retry records the whole batch again.
        report.accepted = report.simulated = report.retried = report.failed = report.refused = 0
        with factory() as session, session.begin():
            accepted: list[dict[str, object]] = []
            # Ascending ids, as the status webhook writes them, so the two cannot deadlock.
            for item in sorted(items, key=lambda i: i.message.id):
                _record(session, item, report, now, accepted)
            _record_accepted(session, accepted, now)

    retry_on_deadlock(record)
    log.info(
        "messages.dispatched",
        claimed=report.claimed,
        accepted=report.accepted,
        simulated=report.simulated,
        retried=report.retried,
        failed=report.failed,
        refused=report.refused,
    )
    return report


class _Recheck:
    """The campaign checks of a batch, asked again once they are ``after`` seconds old.

    Runs on the batch's event loop (one short query, at most once per ``after`` seconds), so a
    pause reaches the messages still waiting for their tokens.
    """

    def __init__(
        self,
        factory: sessionmaker[Session],
        items: Sequence[_Item],
        *,
        checked: float,
        after: float,
    ) -> None:
        self.factory, self.items, self.checked, self.after = factory, items, checked, after
        self.current: dict[int, Hold] = {}

    def holds(self, item: _Item, now: dt.datetime) -> bool:
        """Whether ``item`` may no longer go (and marks it refused or deferred if so)."""
        if time.monotonic() - self.checked >= self.after:
            waiting = [
                i.message.id
                for i in self.items
                if i.request is not None
                and i.result is None
                and i.message.purpose == Purpose.campaign
            ]
            try:
                with self.factory() as session:
                    self.current = campaign_holds(session, waiting, now=now)
            except Exception as exc:  # the database is away: go by the batch's first answer
                log.warning("messages.recheck_failed", error_type=type(exc).__name__)
            self.checked = time.monotonic()
        return _hold(item, self.current.get(item.message.id))


async def _yielding(limiter: RateLimiter, items: Sequence[_Item], rate: float) -> bool:
    """Whether this batch's campaign messages yield to conversations (asked once a batch)."""
    if rate <= 0 or not any(
        i.request is not None and i.message.purpose == Purpose.campaign for i in items
    ):
        return False
    try:
        return await asyncio.to_thread(limiter.chatting)
    except Exception as exc:  # Redis unreachable: the sender's own bucket will say so
        log.warning("messages.chatting_unknown", error_type=type(exc).__name__)
        return False


async def _adopt_unconfirmed(
    factory: sessionmaker[Session],
    gateway: Gateway,
    items: Sequence[_Item],
    semaphore: asyncio.Semaphore,
) -> None:
    """Messages whose last attempt may have reached Twilio: adopt what Twilio has.

    Each is looked up (recipient, sender and body, since it was written); one found takes
    Twilio's SID and status and is not sent again.  One Twilio does not have is sent.  One the
    lookup failed for waits for the next attempt, still unconfirmed.
    """
    unsure = [
        i
        for i in items
        if i.request is not None and i.message.error_code == UNCONFIRMED and not gateway.simulated
    ]
    if not unsure:
        return

    async def look(item: _Item) -> SubmitResult | None:
        assert item.request is not None
        async with semaphore:
            try:
                return await gateway.find(
                    item.request, since=item.message.created_at - dt.timedelta(minutes=1)
                )
            except Exception as exc:
                log.warning("messages.lookup_failed", error_type=type(exc).__name__)
                return SubmitResult(ok=False, temporary=True, uncertain=True)

    answers = await asyncio.gather(*(look(i) for i in unsure))
    sids = [a.sid for a in answers if a is not None and a.ok and a.sid]
    with factory() as session:  # a SID already saved on another message is not this one
        taken = set(session.scalars(select(Message.twilio_sid).where(Message.twilio_sid.in_(sids))))
    for item, answer in zip(unsure, answers, strict=True):
        if answer is not None and answer.ok and answer.sid not in taken:
            status = adopted_status(answer.status).value
            item.result = SubmitResult(ok=True, sid=answer.sid, status=status)
            log.info("messages.adopted", message_id=item.message.id)
        elif answer is not None and not answer.ok:
            item.result = answer


def _set_status(
    session: Session,
    message_id: int,
    status: MessageStatus,
    *,
    sid: str | None = None,
    error_code: int | None = None,
    segments: int | None = None,
    now: dt.datetime,
) -> None:
    """Move forward only: a status callback may have arrived before this write."""
    values: dict[str, object] = {
        "status": case((Message.status_rank < status.rank, status), else_=Message.status),
        "status_rank": case(
            (Message.status_rank < status.rank, status.rank), else_=Message.status_rank
        ),
        "updated_at": now,
    }
    if sid is not None:
        values["twilio_sid"] = sid
    if error_code is not None:
        values["error_code"] = error_code
    if segments is not None:
        values["segments"] = segments
    if status == MessageStatus.simulated:
        values["simulated"] = True
    session.execute(
        update(Message)
        .where(Message.id == message_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def _record_accepted(session: Session, rows: list[dict[str, object]], now: dt.datetime) -> None:
    """Every accepted send of a batch in one executemany (the common case, and the hot one).

    Forward only, as ``_set_status``: a status callback may already have moved the message on.
    """
    if not rows:
        return
    table = cast(Table, Message.__table__)
    rank = bindparam("rank", type_=Integer)
    ahead = table.c.status_rank < rank
    stmt = (
        update(table)
        .where(table.c.id == bindparam("mid"))
        .values(
            status=case(
                (ahead, bindparam("status", type_=table.c.status.type)), else_=table.c.status
            ),
            status_rank=case((ahead, rank), else_=table.c.status_rank),
            twilio_sid=bindparam("sid"),
            segments=func.coalesce(bindparam("segments", type_=Integer), table.c.segments),
            # A retry's error (429, UNCONFIRMED) is history once Twilio has the message.
            error_code=case((ahead, null()), else_=table.c.error_code),
            simulated=case((bindparam("sim", type_=Boolean), True), else_=table.c.simulated),
            updated_at=now,
        )
    )
    session.connection().execute(stmt, sorted(rows, key=lambda r: int(r["mid"])))  # type: ignore[call-overload]


def _back_to_pending(session: Session, message_id: int, now: dt.datetime, **values: object) -> None:
    """Hand a claimed message back (``submitting`` → ``pending``), with ``values`` besides."""
    session.execute(
        update(Message)
        .where(Message.id == message_id, Message.status == MessageStatus.submitting)
        .values(
            status=MessageStatus.pending,
            status_rank=MessageStatus.pending.rank,
            updated_at=now,
            **values,
        )
        .execution_options(synchronize_session=False)
    )


def _record(
    session: Session,
    item: _Item,
    report: DispatchReport,
    now: dt.datetime,
    accepted: list[dict[str, object]],
) -> None:
    message = item.message
    finished = False
    if not (
        item.defer_until is None
        and item.refused_code is None
        and item.result is not None
        and item.result.ok
    ):
        # This row is written now: first the accepted ones before it, to keep the id order.
        _record_accepted(session, accepted, now)
        accepted.clear()
    if item.defer_until is not None:
        # Not an attempt: hand the claim back and come back when the quiet hours end.
        _back_to_pending(session, message.id, now, attempts=Message.attempts - 1)
        delay = (item.defer_until - now).total_seconds() + random.uniform(0, 30)
        publish_after_commit(session, "messages.send", [message.id], queue="bulk", countdown=delay)
        report.retried += 1
    elif item.refused_code is not None:
        _set_status(
            session, message.id, MessageStatus.failed, error_code=item.refused_code, now=now
        )
        report.refused += 1
        finished = True
    elif item.result is not None and item.result.ok:
        status = (
            MessageStatus.simulated
            if item.result.status == "simulated"
            else MessageStatus(item.result.status or "queued")
        )
        accepted.append(
            {
                "mid": message.id,
                "rank": status.rank,
                "status": status,
                "sid": item.result.sid,
                "segments": item.result.segments,
                "sim": status == MessageStatus.simulated,
            }
        )
        if status == MessageStatus.simulated:
            report.simulated += 1
        else:
            report.accepted += 1
        finished = True
    elif item.held:
        # Not an attempt: back to ``pending``; the retry of the message it waits for takes it.
        _back_to_pending(session, message.id, now, attempts=Message.attempts - 1)
        report.retried += 1
    elif item.result is not None and item.result.temporary and message.attempts < MAX_ATTEMPTS:
        code = UNCONFIRMED if item.result.uncertain else item.result.error_code
        _back_to_pending(session, message.id, now, error_code=code)
        delay = backoff_seconds(message.attempts, item.result.retry_after)
        queue = (message.purpose or Purpose.reply).queue
        ids = [message.id, *(later.message.id for later in item.behind)]
        publish_after_commit(session, "messages.send", ids, queue=queue, countdown=delay)
        report.retried += 1
    else:
        code = item.result.error_code if item.result else None
        if item.result is not None and item.result.temporary:
            code = code or REFUSED_GAVE_UP
        _set_status(session, message.id, MessageStatus.failed, error_code=code, now=now)
        report.failed += 1
        finished = True
        if item.behind:  # what waited for it goes now
            queue = (message.purpose or Purpose.reply).queue
            held = [later.message.id for later in item.behind]
            publish_after_commit(session, "messages.send", held, queue=queue)
        if code == UNSUBSCRIBED and item.contact is not None:
            contact = session.get(Contact, item.contact.id)
            if contact is not None:
                set_consent(
                    session,
                    contact=contact,
                    state=ConsentState.opted_out,
                    source=ConsentSource.twilio_error,
                    detail="21610",
                    now=now,
                )
    if finished and message.then_erase and item.contact is not None:
        contact = session.get(Contact, item.contact.id)
        if contact is not None:
            erase_contact(session, contact=contact, now=now)


async def find_accepted(
    *,
    factory: sessionmaker[Session],
    gateway: Gateway,
    cipher: AddressCipher,
    message_ids: Sequence[int],
    concurrency: int = 16,
) -> dict[int, SubmitResult | None]:
    """For messages left ``submitting`` without a SID: did Twilio accept them?

    The reaper asks before it resends, which closes the crash window (a worker killed between
    Twilio accepting a message and saving its SID).  Each id maps to Twilio's record of the
    message, or to None if Twilio has none (safe to send again).  An id whose question failed
    (Twilio unreachable) is left out: neither resent nor given up.
    """
    with factory() as session:
        rows = session.execute(
            select(Message, Contact, Sender)
            .outerjoin(Contact, Contact.id == Message.contact_id)
            .outerjoin(Sender, Sender.id == Message.sender_id)
            .where(Message.id.in_(list(message_ids)))
        ).all()
        session.expunge_all()
    answers: dict[int, SubmitResult | None] = {}
    semaphore = asyncio.Semaphore(concurrency)

    async def ask(message: Message, contact: Contact | None, sender: Sender | None) -> None:
        if (
            contact is None
            or contact.address_ciphertext is None
            or sender is None
            or message.submitted_at is None
        ):
            answers[message.id] = None  # nobody to have sent it to
            return
        request = OutboundRequest(
            message_id=message.id,
            to=cipher.decrypt(contact.address_ciphertext),
            channel=message.channel.value,
            from_address=sender.address,
            messaging_service_sid=sender.messaging_service_sid,
            body=message.body,
            content_sid=message.content_sid,
            content_variables=None,
            status_callback=None,
            validity_period=None,
        )
        async with semaphore:
            try:
                answers[message.id] = await gateway.find(
                    request, since=message.submitted_at - dt.timedelta(minutes=1)
                )
            except Exception as exc:  # unreachable, 5xx, timeout: ask again next round
                log.warning("reaper.lookup_failed", error_type=type(exc).__name__)

    await asyncio.gather(*(ask(m, c, s) for m, c, s in rows))
    return answers
