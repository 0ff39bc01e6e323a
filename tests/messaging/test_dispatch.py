"""Sending through the real twilio client to the fake Twilio over HTTP."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import socket
from collections.abc import Iterator, Mapping, Sequence

import pytest
import redis
from sqlalchemy import Connection
from sqlalchemy.orm import Session, sessionmaker

from campaigns.contacts.models import ConsentState, Contact
from campaigns.crypto import AddressCipher
from campaigns.messaging import reaper
from campaigns.messaging.dispatch import UNCONFIRMED, DispatchReport, find_accepted
from campaigns.messaging.models import Message, MessageStatus, Purpose, Sender
from campaigns.messaging.outbound import queue_template, queue_text
from campaigns.messaging.ratelimit import WHILE_CHATTING, RateLimiter
from campaigns.messaging.twilio_gateway import SubmitResult, TwilioGateway
from campaigns.organizations.models import Organization
from campaigns.outbox import Job, install_publisher
from campaigns.settings import Settings
from tests.factories import TWILIO_SID, TWILIO_TOKEN, make_contact, make_organization, make_sender
from tests.fakes.twilio import FakeTwilio, Fault, twilio_client_for
from tests.sending import send_now

NOW = dt.datetime.now(dt.UTC)
TEMPLATE = "HX" + "a" * 32


@pytest.fixture
def factory(connection: Connection) -> sessionmaker[Session]:
    return sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )


@pytest.fixture
def published() -> Iterator[list[Job]]:
    jobs: list[Job] = []
    install_publisher(jobs.append)
    yield jobs
    install_publisher(None)


def _send(
    factory: sessionmaker[Session],
    fake: FakeTwilio,
    cipher: AddressCipher,
    ids: list[int],
    limiter: RateLimiter | None = None,
    rate_while_chatting: float = 0.0,
) -> DispatchReport:
    return send_now(
        factory,
        cipher,
        ids,
        now=NOW,
        fake=fake,
        limiter=limiter,
        rate_while_chatting=rate_while_chatting,
    )


def _world(
    db: Session, cipher: AddressCipher, *, channel: str = "whatsapp", inside_window: bool = True
) -> tuple[Organization, Sender, Contact]:
    org = make_organization(db)
    sender = make_sender(db, org=org, channel=channel)
    contact = make_contact(db, org=org, cipher=cipher, channel=channel)
    if inside_window:
        contact.last_inbound_at = NOW - dt.timedelta(hours=1)
    db.commit()
    return org, sender, contact


def _texts_to_new_people(
    db: Session,
    cipher: AddressCipher,
    *,
    org: Organization,
    sender: Sender,
    purpose: Purpose,
    bodies: Sequence[str],
) -> list[int]:
    """One queued SMS to each of ``len(bodies)`` new contacts; their ids."""
    return [
        queue_text(
            db,
            contact=make_contact(db, org=org, cipher=cipher, channel="sms"),
            sender=sender,
            purpose=purpose,
            body=body,
            publish=False,
        ).id
        for body in bodies
    ]


def _reload(db: Session, message_id: int) -> Message:
    db.expire_all()
    message = db.get(Message, message_id)
    assert message is not None
    return message


def test_a_reply_reaches_twilio_once_even_if_the_task_runs_twice(
    db: Session,
    factory: sessionmaker[Session],
    fake_twilio: FakeTwilio,
    cipher: AddressCipher,
) -> None:
    _, sender, contact = _world(db, cipher)
    message = queue_text(
        db,
        contact=contact,
        sender=sender,
        purpose=Purpose.reply,
        body="Hola, ¿en qué te ayudo?",
        publish=False,
    )
    db.commit()
    first = _send(factory, fake_twilio, cipher, [message.id])
    second = _send(factory, fake_twilio, cipher, [message.id])  # a redelivered task
    assert (first.claimed, first.accepted, second.claimed) == (1, 1, 0)
    assert len(fake_twilio.messages) == 1
    sent = fake_twilio.messages[0].params
    phone = cipher.decrypt(contact.address_ciphertext or b"")
    assert sent["To"] == f"whatsapp:{phone}" and sent["From"] == f"whatsapp:{sender.address}"
    assert sent["Body"] == "Hola, ¿en qué te ayudo?"
    assert sent["StatusCallback"] == f"https://faro.test/webhooks/twilio/status?m={message.id}"
    assert sent["ValidityPeriod"] == "3600"
    row = _reload(db, message.id)
    assert row.twilio_sid == fake_twilio.messages[0].sid
    assert row.status == MessageStatus.queued and row.attempts == 1


def test_whatsapp_outside_the_window_sends_the_template_or_nothing(
    db: Session,
    factory: sessionmaker[Session],
    fake_twilio: FakeTwilio,
    cipher: AddressCipher,
) -> None:
    _, sender, contact = _world(db, cipher, inside_window=False)
    free_text = queue_text(
        db, contact=contact, sender=sender, purpose=Purpose.reply, body="texto libre", publish=False
    )
    template = queue_template(
        db,
        contact=contact,
        sender=sender,
        purpose=Purpose.campaign,
        content_sid=TEMPLATE,
        variables={"1": "Tapachula"},
        fallback_body="texto",
        publish=False,
    )
    contact.consent = ConsentState.opted_in
    db.commit()
    report = _send(factory, fake_twilio, cipher, [free_text.id, template.id])
    assert (report.refused, report.accepted) == (1, 1)
    refused = _reload(db, free_text.id)
    assert refused.status == MessageStatus.failed and refused.error_code == 63016
    [sent] = fake_twilio.messages
    assert sent.params["ContentSid"] == TEMPLATE and "Body" not in sent.params
    assert json.loads(sent.params["ContentVariables"]) == {"1": "Tapachula"}


def test_campaign_messages_only_go_to_people_who_opted_in(
    db: Session,
    factory: sessionmaker[Session],
    fake_twilio: FakeTwilio,
    cipher: AddressCipher,
) -> None:
    org, sender, contact = _world(db, cipher)
    stopped = make_contact(db, org=org, cipher=cipher, consent=False)
    stopped.last_inbound_at = NOW
    ids = [
        queue_text(
            db, contact=c, sender=sender, purpose=Purpose.campaign, body="aviso", publish=False
        ).id
        for c in (contact, stopped)
    ]
    db.commit()
    report = _send(factory, fake_twilio, cipher, ids)
    assert (report.accepted, report.refused) == (1, 1)
    assert len(fake_twilio.messages) == 1


def test_rate_limits_and_server_errors_are_retried_with_backoff(
    db: Session,
    factory: sessionmaker[Session],
    fake_twilio: FakeTwilio,
    cipher: AddressCipher,
    published: list[Job],
) -> None:
    org, sender, first = _world(db, cipher)
    contacts = [first] + [make_contact(db, org=org, cipher=cipher) for _ in range(3)]
    for contact in contacts:
        contact.last_inbound_at = NOW - dt.timedelta(hours=1)
    fake_twilio.inject(
        Fault("rate_limit", retry_after=7, times=1),
        Fault("server_error", times=1),
        Fault("drop", times=1),
    )
    ids = [
        queue_text(
            db, contact=contact, sender=sender, purpose=Purpose.reply, body=f"m{i}", publish=False
        ).id
        for i, contact in enumerate(contacts)
    ]
    db.commit()
    report = _send(factory, fake_twilio, cipher, ids)
    assert (report.accepted, report.retried) == (1, 3)
    retries = [j for j in published if j.task == "messages.send"]
    assert len(retries) == 3 and all(j.countdown and j.countdown > 0 for j in retries)
    assert max(j.countdown or 0 for j in retries) >= 7  # Retry-After is honoured
    pending = [_reload(db, i) for i in ids if _reload(db, i).status == MessageStatus.pending]
    assert len(pending) == 3 and all(m.attempts == 1 for m in pending)
    # Only the dropped connection leaves doubt (the request was written); 429 and 500 do not.
    assert sorted(m.error_code or 0 for m in pending) == [UNCONFIRMED, 20429, 20500]
    again = _send(factory, fake_twilio, cipher, [m.id for m in pending])
    assert again.accepted == 3
    assert sorted(m.params["Body"] for m in fake_twilio.messages) == ["m0", "m1", "m2", "m3"]
    assert all(_reload(db, i).error_code is None for i in ids)


def test_a_contacts_later_messages_wait_for_an_earlier_one_that_must_be_retried(
    db: Session,
    factory: sessionmaker[Session],
    fake_twilio: FakeTwilio,
    cipher: AddressCipher,
    published: list[Job],
) -> None:
    """The hotline before the answer: if the first is refused for now, the second waits."""
    _, sender, contact = _world(db, cipher)
    fake_twilio.inject(Fault("server_error", times=1))
    ids = [
        queue_text(
            db, contact=contact, sender=sender, purpose=Purpose.reply, body=b, publish=False
        ).id
        for b in ("Línea de ayuda: 089", "Tu cita es gratuita.")
    ]
    db.commit()
    report = _send(factory, fake_twilio, cipher, ids)
    assert (report.accepted, report.retried) == (0, 2)
    assert fake_twilio.messages == []
    # One retry carries both, in order; waiting was not an attempt of the second.
    assert [j.args for j in published if j.task == "messages.send"] == [(ids,)]
    assert [_reload(db, i).attempts for i in ids] == [1, 0]
    assert _send(factory, fake_twilio, cipher, ids).accepted == 2
    assert [m.params["Body"] for m in fake_twilio.messages] == [
        "Línea de ayuda: 089",
        "Tu cita es gratuita.",
    ]


def test_a_redis_outage_at_the_rate_limiter_sends_nothing_and_loses_nothing(
    db: Session,
    factory: sessionmaker[Session],
    fake_twilio: FakeTwilio,
    cipher: AddressCipher,
    published: list[Job],
) -> None:
    """Before, the first failed reservation aborted the batch while the other sends went on in
    the background, unrecorded: the reaper then sent them a second time."""
    org, sender, _ = _world(db, cipher, channel="sms")
    ids = _texts_to_new_people(
        db,
        cipher,
        org=org,
        sender=sender,
        purpose=Purpose.reply,
        bodies=[f"m{i}" for i in range(40)],
    )
    db.commit()
    with socket.socket() as closed:  # a port nothing listens on: Redis is down
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    down = RateLimiter(redis.Redis(port=port, socket_connect_timeout=0.2))
    report = _send(factory, fake_twilio, cipher, ids, limiter=down)
    assert (report.claimed, report.retried, report.accepted) == (40, 40, 0)
    assert fake_twilio.messages == []
    assert {_reload(db, i).status for i in ids} == {MessageStatus.pending}
    assert sorted(i for j in published if j.task == "messages.send" for i in j.args[0]) == ids


def test_permanent_errors_are_recorded_and_21610_opts_out(
    db: Session,
    factory: sessionmaker[Session],
    fake_twilio: FakeTwilio,
    cipher: AddressCipher,
    published: list[Job],
) -> None:
    org, sender, contact = _world(db, cipher)
    other = make_contact(db, org=org, cipher=cipher)
    other.last_inbound_at = NOW
    db.commit()
    unsubscribed = cipher.decrypt(contact.address_ciphertext or b"")
    fake_twilio.inject(
        Fault("reject", code=21610, to=f"whatsapp:{unsubscribed}", times=None),
        Fault("reject", code=21211, times=1),
    )
    a = queue_text(
        db, contact=contact, sender=sender, purpose=Purpose.reply, body="a", publish=False
    )
    b = queue_text(db, contact=other, sender=sender, purpose=Purpose.reply, body="b", publish=False)
    db.commit()
    report = _send(factory, fake_twilio, cipher, [a.id, b.id])
    assert (report.failed, report.retried) == (2, 0)
    assert not published
    assert {_reload(db, a.id).error_code, _reload(db, b.id).error_code} == {21610, 21211}
    db.expire_all()
    assert db.get(Contact, contact.id).consent == ConsentState.opted_out  # type: ignore[union-attr]


def test_erasure_completes_once_the_confirmation_left(
    db: Session,
    factory: sessionmaker[Session],
    fake_twilio: FakeTwilio,
    cipher: AddressCipher,
) -> None:
    _, sender, contact = _world(db, cipher)
    message = queue_text(
        db,
        contact=contact,
        sender=sender,
        purpose=Purpose.consent,
        body="Borramos tus datos.",
        then_erase=True,
        publish=False,
    )
    db.commit()
    _send(factory, fake_twilio, cipher, [message.id])
    assert len(fake_twilio.messages) == 1
    db.expire_all()
    row = db.get(Contact, contact.id)
    assert row is not None and row.erased and row.address_ciphertext is None
    assert _reload(db, message.id).body is None


def test_simulated_contacts_never_reach_twilio(
    db: Session,
    factory: sessionmaker[Session],
    fake_twilio: FakeTwilio,
    cipher: AddressCipher,
) -> None:
    _, sender, contact = _world(db, cipher)
    contact.is_simulated = True
    message = queue_text(
        db, contact=contact, sender=sender, purpose=Purpose.reply, body="hi", publish=False
    )
    db.commit()
    report = _send(factory, fake_twilio, cipher, [message.id])
    assert report.simulated == 1 and fake_twilio.messages == []
    assert _reload(db, message.id).status == MessageStatus.simulated


@pytest.mark.parametrize("accepted", [True, False], ids=["twilio-has-it", "never-arrived"])
def test_a_send_that_may_have_reached_twilio_is_looked_up_before_it_is_sent_again(
    db: Session,
    factory: sessionmaker[Session],
    fake_twilio: FakeTwilio,
    cipher: AddressCipher,
    published: list[Job],
    accepted: bool,
) -> None:
    """A timeout after Twilio accepted the message, or a connection dropped before: the
    migrant gets it exactly once either way."""
    _, sender, contact = _world(db, cipher)
    if accepted:  # Twilio takes the message, then answers too late (gateway timeout is 2 s)
        fake_twilio.inject(Fault("timeout", seconds=10, times=1))
    else:  # the connection drops before Twilio has it
        fake_twilio.inject(Fault("drop", times=1))
    message = queue_text(
        db, contact=contact, sender=sender, purpose=Purpose.reply, body="x", publish=False
    )
    db.commit()
    report = _send(factory, fake_twilio, cipher, [message.id])
    assert report.retried == 1
    row = _reload(db, message.id)
    assert (row.status, row.error_code) == (MessageStatus.pending, UNCONFIRMED)
    assert len(fake_twilio.messages) == (1 if accepted else 0)

    again = _send(factory, fake_twilio, cipher, [message.id])  # the retry the task published
    assert again.accepted == 1
    assert len(fake_twilio.messages) == 1
    row = _reload(db, message.id)
    assert row.twilio_sid == fake_twilio.messages[0].sid and row.error_code is None


def test_campaigns_yield_to_conversations_and_replies_do_not_wait(
    db: Session,
    factory: sessionmaker[Session],
    fake_twilio: FakeTwilio,
    cipher: AddressCipher,
    settings: Settings,
) -> None:
    """While someone is talking to the assistant, campaign sends share one slower bucket;
    replies do not; with nobody talking the campaign goes at its sender's own rate."""
    client = redis.Redis.from_url(settings.redis_url or "")
    prefix = f"faro:test-yield-{NOW.timestamp()}"
    limiter = RateLimiter(client, prefix=prefix)
    org, sender, _ = _world(db, cipher, channel="sms")
    sender.rate_per_second = 1000.0

    def batch(tag: str) -> tuple[list[int], int]:
        campaign = _texts_to_new_people(
            db,
            cipher,
            org=org,
            sender=sender,
            purpose=Purpose.campaign,
            bodies=[f"{tag} aviso {i}" for i in range(30)],
        )
        [reply] = _texts_to_new_people(
            db, cipher, org=org, sender=sender, purpose=Purpose.reply, bodies=[f"{tag} respuesta"]
        )
        db.commit()
        return campaign, reply

    def span(tag: str) -> tuple[float, float]:
        """Seconds from the batch's first message at Twilio to its last campaign message, and
        to the reply."""
        sent = [m for m in fake_twilio.messages if m.params["Body"].startswith(tag)]
        first = min(m.received_at for m in sent)
        last = max(m.received_at for m in sent if "aviso" in m.params["Body"])
        [reply] = [m for m in sent if "respuesta" in m.params["Body"]]
        return (last - first).total_seconds(), (reply.received_at - first).total_seconds()

    campaign, reply = batch("quiet")
    _send(factory, fake_twilio, cipher, [*campaign, reply], limiter, rate_while_chatting=20.0)
    quiet, _ = span("quiet")

    limiter.mark_chatting(30)
    campaign, reply = batch("chat")
    report = _send(
        factory, fake_twilio, cipher, [*campaign, reply], limiter, rate_while_chatting=20.0
    )
    busy, reply_after = span("chat")
    client.delete(f"{prefix}:chatting", f"{prefix}:{WHILE_CHATTING}")

    assert report.accepted == 31  # slower, not dropped
    # 30 campaign messages at 20/s (a burst of 2 at once): the last about 1.4 s after the first.
    assert busy > 1.2 and quiet < 0.6
    assert reply_after < 0.5  # the reply did not wait in the campaigns' bucket


def test_rate_limiter_spreads_reservations_across_callers(settings: Settings) -> None:
    client = redis.Redis.from_url(settings.redis_url or "")
    limiter = RateLimiter(client, prefix="faro:test-rate")
    client.delete("faro:test-rate:s1")
    waits = [limiter.reserve("s1", rate=20.0) for _ in range(40)]
    # 40 tokens at 20/s with a burst of 2: the last one waits about 1.9 s.
    assert waits[0] == 0.0
    assert 1.7 < waits[-1] < 2.0
    assert all(b >= a for a, b in itertools.pairwise(waits))


def test_the_reaper_asks_twilio_before_resending_what_a_dead_worker_left(
    db: Session,
    factory: sessionmaker[Session],
    fake_twilio: FakeTwilio,
    cipher: AddressCipher,
    published: list[Job],
) -> None:
    """The crash window: Twilio accepted one message and the worker died before saving its SID;
    the other never reached Twilio.  Only the second may be sent again."""
    _, sender, contact = _world(db, cipher, channel="sms")
    claimed = NOW - dt.timedelta(minutes=12)
    accepted, lost = (
        queue_text(db, contact=contact, sender=sender, purpose=Purpose.reply, body=b, publish=False)
        for b in ("Tu cita es gratuita.", "Llama al 089.")
    )
    for message in (accepted, lost):
        message.status, message.status_rank = MessageStatus.submitting, 1
        message.submitted_at = claimed
    db.commit()
    # What the dead worker had managed: Twilio has the first message (SID never saved).
    client = twilio_client_for(fake_twilio.base_url, TWILIO_SID, TWILIO_TOKEN)
    twilio_sid = client.messages.create(
        to=cipher.decrypt(contact.address_ciphertext or b""),
        from_=sender.address,
        body="Tu cita es gratuita.",
    ).sid

    def reconcile(ids: Sequence[int]) -> Mapping[int, SubmitResult | None]:
        async def ask() -> dict[int, SubmitResult | None]:
            gateway = TwilioGateway(
                account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN, api_url=fake_twilio.base_url
            )
            try:
                return await find_accepted(
                    factory=factory, gateway=gateway, cipher=cipher, message_ids=ids
                )
            finally:
                await gateway.close()

        return asyncio.run(ask())

    def unreachable(ids: Sequence[int]) -> Mapping[int, SubmitResult | None]:
        raise ConnectionError("Twilio is unreachable")

    assert reaper.reap(factory, now=NOW, reconcile=unreachable)["submitting"] == 0
    assert _reload(db, lost.id).status == MessageStatus.submitting  # not resent blind

    counts = reaper.reap(factory, now=NOW, reconcile=reconcile)
    assert (counts["adopted"], counts["submitting"]) == (1, 1)
    adopted = _reload(db, accepted.id)
    # Adopted as Twilio has it now (the fake walks an accepted message on to delivered).
    assert adopted.twilio_sid == twilio_sid
    assert adopted.status == MessageStatus(fake_twilio.message(twilio_sid)["status"])
    assert _reload(db, lost.id).status == MessageStatus.pending
    resent = [j.args[0] for j in published if j.task == "messages.send"]
    assert resent == [[lost.id]]
    assert len(fake_twilio.messages) == 1
