"""Group commit: webhooks that share a transaction still get their own outcome, and a batch
that fails commits nothing and tells every caller."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaigns.batching import GroupCommit
from campaigns.crypto import AddressCipher
from campaigns.errors import FaroError, InvalidInput, NotFound
from campaigns.messaging import inbound, status
from campaigns.messaging.inbound import InboundResult
from campaigns.messaging.models import (
    Direction,
    Message,
    MessageStatus,
    MessageStatusEvent,
)
from campaigns.outbox import Job, install_publisher
from tests.factories import (
    make_organization,
    make_sender,
    random_mobile,
    twilio_form,
)
from tests.messaging.test_status_webhook import _sent_message


def test_concurrent_items_share_batches_and_each_gets_its_own_outcome() -> None:
    seen: list[list[int]] = []

    def work(items: Sequence[int]) -> list[int | BaseException]:
        seen.append(list(items))
        return [InvalidInput(f"{i} is odd") if i % 2 else i * 10 for i in items]

    async def main() -> list[int | BaseException]:
        batcher: GroupCommit[int, int] = GroupCommit(work, max_batch=50)
        return await asyncio.gather(
            *(batcher.submit(i) for i in range(120)), return_exceptions=True
        )

    outcomes = asyncio.run(main())
    for i, outcome in enumerate(outcomes):
        if i % 2:
            assert isinstance(outcome, InvalidInput) and str(i) in str(outcome)
        else:
            assert outcome == i * 10
    # 120 concurrent callers went through in a few shared batches, none over the cap.
    assert sum(len(b) for b in seen) == 120
    assert len(seen) < 120 and max(len(b) for b in seen) <= 50


def test_a_failed_batch_fails_every_caller_of_that_batch_only() -> None:
    calls = 0

    def work(items: Sequence[str]) -> list[str | BaseException]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database went away")
        return [item.upper() for item in items]

    async def main() -> tuple[list[str | BaseException], list[str | BaseException]]:
        batcher: GroupCommit[str, str] = GroupCommit(work)
        first = await asyncio.gather(batcher.submit("a"), return_exceptions=True)
        second = await asyncio.gather(batcher.submit("b"), batcher.submit("c"))
        return list(first), list(second)

    first, second = asyncio.run(main())
    assert isinstance(first[0], ConnectionError)
    assert second == ["B", "C"]


def test_receive_many_refuses_one_form_and_stores_the_others_once(
    db: Session, cipher: AddressCipher
) -> None:
    org = make_organization(db)
    sender = make_sender(db, org=org, channel="whatsapp")
    db.commit()
    phone = random_mobile("GT")
    first = twilio_form(sender=sender, phone=phone, body="¿Dónde pido asilo?")
    unknown_sender = dict(twilio_form(sender=sender, phone=random_mobile("HN"), body="hola"))
    unknown_sender["To"] = "whatsapp:+14155550000"
    bad_number = dict(twilio_form(sender=sender, phone=phone, body="hola"))
    bad_number["From"] = "whatsapp:+1"
    stop = twilio_form(sender=sender, phone=phone, body="BAJA")
    published: list[Job] = []
    install_publisher(published.append)
    try:
        outcomes = inbound.receive_many(
            db, cipher=cipher, forms=[first, unknown_sender, first, bad_number, stop]
        )
        db.commit()
    finally:
        install_publisher(None)

    assert isinstance(outcomes[0], InboundResult) and not outcomes[0].duplicate
    assert isinstance(outcomes[1], NotFound)
    assert isinstance(outcomes[2], InboundResult) and outcomes[2].duplicate
    assert isinstance(outcomes[3], FaroError)
    assert isinstance(outcomes[4], InboundResult) and outcomes[4].keyword is not None
    stored = db.scalars(
        select(Message.twilio_sid).where(
            Message.direction == Direction.inbound, Message.organization_id == org.id
        )
    ).all()
    assert sorted(str(sid) for sid in stored) == sorted([first["MessageSid"], stop["MessageSid"]])
    # One reply asked for the question, one confirmation for BAJA: nothing for the refused.
    handled = [j for j in published if j.task == "conversation.handle"]
    assert handled == [Job("conversation.handle", (outcomes[0].message_id,))]
    assert [j.args for j in published if j.task == "messages.send"] != []


@pytest.mark.parametrize("order", [["read", "sent", "delivered", "read"], ["sent", "failed"]])
def test_record_statuses_in_one_batch_keeps_every_event_and_the_highest_status(
    db: Session, cipher: AddressCipher, order: list[str]
) -> None:
    sid = "SM" + uuid.uuid4().hex
    message = _sent_message(db, cipher, sid)
    orphan = _sent_message(db, cipher, None)  # the crash window: no SID saved, the hint finds it
    orphan_sid = "SM" + uuid.uuid4().hex
    reports = [
        status.parse_status({"MessageSid": sid, "MessageStatus": s, "ErrorCode": "30008"})
        if s == "failed"
        else status.parse_status({"MessageSid": sid, "MessageStatus": s})
        for s in order
    ]
    reports += [
        status.parse_status(
            {"MessageSid": orphan_sid, "MessageStatus": "sent"}, message_hint=orphan.id
        ),
        status.parse_status({"MessageSid": "SM" + uuid.uuid4().hex, "MessageStatus": "sent"}),
    ]
    results = status.record_statuses(db, reports)
    db.commit()
    assert [r.known for r in results] == [True] * len(order) + [True, False]
    db.expire_all()
    expected = max((MessageStatus(s) for s in order), key=lambda s: s.rank)
    assert db.get(Message, message.id).status == expected  # type: ignore[union-attr]
    if expected == MessageStatus.failed:
        assert db.get(Message, message.id).error_code == 30008  # type: ignore[union-attr]
    reconciled = db.get(Message, orphan.id)
    assert reconciled is not None
    assert (reconciled.twilio_sid, reconciled.status) == (orphan_sid, MessageStatus.sent)
    events = db.scalar(
        select(func.count())
        .select_from(MessageStatusEvent)
        .where(MessageStatusEvent.message_id == message.id)
    )
    assert events == len(order)
