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
from campaigns.errors import InvalidInput
from campaigns.messaging import status
from campaigns.messaging.models import (
    Message,
    MessageStatus,
    MessageStatusEvent,
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


@pytest.mark.parametrize("linger", [0.0, 0.1])
def test_linger_gathers_a_trickle_into_batches_and_bounds_the_wait(linger: float) -> None:
    """Status callbacks arriving one by one: without linger each is a transaction of its own;
    with it they share a few, and none waits much longer than the linger."""
    seen: list[int] = []

    def work(items: Sequence[int]) -> list[int | BaseException]:
        seen.append(len(items))
        return list(items)

    async def main() -> list[float]:
        batcher: GroupCommit[int, int] = GroupCommit(work, linger=linger)
        loop = asyncio.get_running_loop()

        async def one(i: int) -> float:
            await asyncio.sleep(i * 0.01)  # a trickle: one every 10 ms
            began = loop.time()
            assert await batcher.submit(i) == i
            return loop.time() - began

        return await asyncio.gather(*(one(i) for i in range(30)))

    waits = asyncio.run(main())
    assert sum(seen) == 30
    if linger:
        assert len(seen) <= 6 and max(waits) < linger + 0.08
    else:
        assert len(seen) >= 25 and max(waits) < 0.05


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


def test_one_poisoned_item_fails_alone_and_its_batch_mates_are_stored() -> None:
    """A value the database refuses fails the whole shared transaction; the batch is then tried
    one by one, so its neighbours (legitimate messages, which Twilio would not resend after a
    4xx) are stored and only the poisoned one gets its error.  An unreachable database still
    fails every caller at once, without a round of lone retries."""
    committed: list[str] = []

    def work(items: Sequence[str]) -> list[str | BaseException]:
        if "down" in items:
            raise ConnectionError("database went away")
        if "poison" in items:
            raise ValueError("a value the database refuses")  # the whole transaction is lost
        committed.extend(items)
        return [item.upper() for item in items]

    async def main(words: list[str]) -> list[str | BaseException]:
        batcher: GroupCommit[str, str] = GroupCommit(work, alone_on=(ValueError,))
        return list(
            await asyncio.gather(*(batcher.submit(w) for w in words), return_exceptions=True)
        )

    outcomes = asyncio.run(main(["a", "poison", "b"]))
    assert outcomes[0] == "A" and outcomes[2] == "B"
    assert isinstance(outcomes[1], ValueError)
    assert committed == ["a", "b"]

    committed.clear()
    outcomes = asyncio.run(main(["c", "down"]))
    assert all(isinstance(o, ConnectionError) for o in outcomes)
    assert committed == []


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
