"""The campaign fault test: 20,000 recipients, workers killed, Redis restarted, people opting out
mid-run, one community in quiet hours — and still exactly one message per eligible person.

Real processes over loopback: the API (uvicorn), two bulk workers and a conversation worker
(``faro worker``), a private ``redis-server`` (so restarting it disturbs nobody else), a
PostgreSQL database of its own, and the fake Twilio over HTTP.  The test process plays beat: it
runs the tick and, once the system is idle, the reaper with a clock 11 minutes ahead (what beat
does on its own after the reaper's delays).

Faults, in order: SIGKILL of bulk worker 1 and of bulk worker 2 mid-send (each restarted);
200 people text BAJA/STOP while their message is still waiting; Redis killed and started empty
(every queued task is lost); the reaper re-publishes; worker 1 is killed once more mid-send.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import signal
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.orm import Session

from campaigns.communities import Community
from campaigns.contacts.models import Channel, ConsentState, Contact
from campaigns.crypto import AddressCipher
from campaigns.messaging import reaper
from campaigns.messaging.dispatch import REFUSED_NO_CONSENT, find_accepted
from campaigns.messaging.models import Direction, Message, MessageStatus, Purpose, Sender
from campaigns.messaging.twilio_gateway import SubmitResult, TwilioGateway
from campaigns.organizations.models import Role
from campaigns.outbox import install_publisher
from campaigns.outreach import engine, lifecycle, runs
from campaigns.outreach.models import CampaignDelivery, CampaignRun
from campaigns.settings import Settings
from tests.campaigns_engine.factories import make_campaign, make_place
from tests.conftest import PG_ADMIN_URL
from tests.factories import (
    TWILIO_SID,
    TWILIO_TOKEN,
    make_organization,
    make_sender,
    make_user,
    signed_post,
    twilio_form,
)
from tests.fakes.twilio import CallbackOptions
from tests.stack import PrivateRedis, Stack, running_stack, wait_for, wait_idle

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")

RECIPIENTS = 20_000
PRE_OPTED_OUT = 300
QUIET_SIZE = 1_500
STOPPERS = 200
BODY = "Nadie cobra por una cita migratoria. Denuncia al 089."


def _numbers(prefix: str, start: int, count: int) -> list[str]:
    return [f"{prefix}{start + i:07d}" for i in range(count)]


def _seed_contacts(
    stack: Stack,
    cipher: AddressCipher,
    org_id: int,
    community: Community,
    numbers: list[str],
    *,
    consent: ConsentState = ConsentState.opted_in,
) -> None:
    now = dt.datetime.now(dt.UTC)
    rows = [
        {
            "organization_id": org_id,
            "channel": Channel.sms,
            "address_ciphertext": cipher.encrypt(n),
            "address_hash": cipher.lookup_hash(Channel.sms.value, n),
            "country": community.country,
            "language": community.default_language,
            "consent": consent,
            "is_simulated": False,
            "erased": False,
            "created_at": now,
            "updated_at": now,
        }
        for n in numbers
    ]
    with stack.session() as db, db.begin():
        db.execute(insert(Contact), rows)
        db.execute(
            text(
                "INSERT INTO contact_community (contact_id, community_id, joined_at) "
                "SELECT id, :c, now() FROM contact WHERE organization_id = :org "
                "AND id NOT IN (SELECT contact_id FROM contact_community)"
            ),
            {"c": community.id, "org": org_id},
        )


def _sent_count(stack: Stack) -> int:
    return sum(1 for m in stack.fake.messages if m.params.get("Body") == BODY)


def _wait_sent(stack: Stack, at_least: int, timeout: float = 240) -> None:
    wait_for(lambda: _sent_count(stack) >= at_least, timeout=timeout, what=f"{at_least} sends")


def _restart_worker(stack: Stack, name: str) -> None:
    stack.kill(name, signal.SIGKILL)
    stack.start_worker(name, queues="bulk", concurrency=4)


def test_twenty_thousand_recipients_survive_kills_restarts_and_opt_outs(
    tmp_path_factory: pytest.TempPathFactory, private_redis: PrivateRedis
) -> None:
    logs = tmp_path_factory.mktemp("fault")
    with running_stack(
        PG_ADMIN_URL,
        logs,
        redis_url=private_redis.url,
        worker=False,
        callback_options=CallbackOptions(final_only=True),
    ) as stack:
        settings = Settings(
            env="test",
            database_url=stack.database_url,
            redis_url=private_redis.url,
            public_url=stack.base_url,
        )
        cipher = AddressCipher.from_settings(settings)
        factory = stack.factory
        assert factory is not None

        # -- the world: three communities, one of them in quiet hours right now ------------
        real_now = dt.datetime.now(dt.UTC)
        with stack.session() as db, db.begin():
            org = make_organization(db)
            author = make_user(db, org=org, role=Role.manager)
            sender = make_sender(db, org=org, channel="sms", address="+15005550006", rate=1000)
            tapachula = make_place(db, org=org, name="Tapachula", timezone="America/Mexico_City")
            haiti = make_place(
                db,
                org=org,
                name="Port-au-Prince",
                timezone="America/Port-au-Prince",
                country="HT",
                language="ht",
            )
            local = real_now.astimezone(ZoneInfo("America/Guatemala"))
            quiet = (
                (local - dt.timedelta(minutes=30)).time().replace(second=0, microsecond=0),
                (local + dt.timedelta(hours=3)).time().replace(second=0, microsecond=0),
            )
            asleep = make_place(
                db,
                org=org,
                name="Quetzaltenango",
                timezone="America/Guatemala",
                country="GT",
                quiet=quiet,
            )
            org_id, sender_id = org.id, sender.id
            places = (tapachula, haiti, asleep)
            db.expunge_all()
        a_size = (RECIPIENTS - QUIET_SIZE) // 2
        numbers = {
            tapachula.id: _numbers("+52962", 0, a_size),
            haiti.id: _numbers("+5093", 0, RECIPIENTS - QUIET_SIZE - a_size),
            asleep.id: _numbers("+502", 5_000_000, QUIET_SIZE),
        }
        opted_out_before = _numbers("+52963", 0, PRE_OPTED_OUT)
        for place in places:
            _seed_contacts(stack, cipher, org_id, place, numbers[place.id])
        _seed_contacts(
            stack, cipher, org_id, tapachula, opted_out_before, consent=ConsentState.opted_out
        )

        # Written and approved hours ago, due an hour ago in every community: the tick plans
        # it now, on the real clock the workers use.  The quiet community is deferred.
        written = real_now - dt.timedelta(hours=6)
        start_local = real_now.astimezone(ZoneInfo("America/Port-au-Prince")) - dt.timedelta(
            hours=3
        )
        schedule = {"type": "once", "local": start_local.strftime("%Y-%m-%dT%H:%M")}
        with stack.session() as db, db.begin():
            campaign = make_campaign(
                db, org=org, author=author, communities=places, schedule=schedule, now=written
            )
            lifecycle.submit_campaign(db, campaign.id, user_id=author.id, now=written)
            approver = make_user(db, org=org, role=Role.manager)
            lifecycle.approve_campaign(db, campaign.id, user_id=approver.id, now=written)
            lifecycle.schedule_campaign(db, campaign.id, now=written)
            assert all(r.due_at < real_now for r in runs.list_runs(db, campaign.id))
            campaign_id = campaign.id

        def reconcile(ids: Sequence[int]) -> Mapping[int, SubmitResult | None]:
            # What beat's reaper does in the worker (workers.tasks.reap): ask Twilio first.
            async def ask() -> dict[int, SubmitResult | None]:
                gateway = TwilioGateway(
                    account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN, api_url=stack.fake.base_url
                )
                try:
                    return await find_accepted(
                        factory=factory, gateway=gateway, cipher=cipher, message_ids=ids
                    )
                finally:
                    await gateway.close()

            return asyncio.run(ask())

        from workers.celery_app import celery_publisher, make_celery

        install_publisher(celery_publisher(make_celery(settings)))
        try:
            for name in ("bulk-1", "bulk-2"):
                stack.start_worker(name, queues="bulk", concurrency=4)
            stack.start_worker("conversation", queues="conversation", concurrency=4)

            report = engine.tick(factory)
            assert report.planned == RECIPIENTS  # the 300 who had opted out were never planned

            # -- faults while it sends ---------------------------------------------------
            _wait_sent(stack, 1_500)
            _restart_worker(stack, "bulk-1")
            _wait_sent(stack, 3_000)
            stop_acks = _opt_out_while_waiting(stack, sender_id, numbers[haiti.id])
            _wait_sent(stack, 4_500)
            _restart_worker(stack, "bulk-2")
            _wait_sent(stack, 7_000)
            private_redis.stop()  # every queued and unacknowledged task is gone
            time.sleep(1)
            private_redis.start()
            wait_idle(stack, quiet_for=6.0)
            before_reaper = _sent_count(stack)
            assert before_reaper < RECIPIENTS - QUIET_SIZE, "the Redis restart lost nothing?"

            # -- beat's reaper brings back what the lost tasks left -----------------------
            ahead = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=11)
            assert reaper.reap(factory, now=ahead, reconcile=reconcile)["pending"] > 0
            _wait_sent(stack, before_reaper + 2_000)
            _restart_worker(stack, "bulk-1")
            wait_idle(stack, quiet_for=6.0)
            reaper.reap(
                factory, now=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=11), reconcile=reconcile
            )
            wait_idle(stack, quiet_for=6.0)

            # Nothing went to the community in quiet hours, and nothing of it was dropped.
            asleep_numbers = set(numbers[asleep.id])
            sent_to = [m.params["To"] for m in stack.fake.messages if m.params.get("Body") == BODY]
            assert not asleep_numbers & set(sent_to), "a message went out in quiet hours"
            with stack.session() as db:
                held = db.scalar(
                    select(func.count())
                    .select_from(CampaignDelivery)
                    .where(
                        CampaignDelivery.community_id == asleep.id,
                        CampaignDelivery.status.in_(("planned", "queued")),
                    )
                )
            assert held == QUIET_SIZE

            # -- the quiet hours end: the held deliveries go, once ------------------------
            # Rather than wait three hours, the test ends the window and brings the deferred
            # deliveries' time forward to now, as the clock would.
            with stack.session() as db, db.begin():
                db.execute(
                    update(Community)
                    .where(Community.id == asleep.id)
                    .values(quiet_start=None, quiet_end=None)
                )
                db.execute(
                    update(CampaignDelivery)
                    .where(CampaignDelivery.community_id == asleep.id)
                    .values(send_after=dt.datetime.now(dt.UTC))
                )
            engine.tick(factory)  # the held deliveries are dispatched now
            wait_idle(stack, quiet_for=6.0)
            engine.tick(factory)  # deliveries follow their messages; runs close
        finally:
            install_publisher(None)

        # -- the verdict ---------------------------------------------------------------------
        sent_to = [m.params["To"] for m in stack.fake.messages if m.params.get("Body") == BODY]
        per_number = Counter(sent_to)
        duplicated = {n: c for n, c in per_number.items() if c > 1}
        stopped = set(stop_acks)
        with stack.session() as db:
            claimed_after_stop = _claimed_after_stop(db, cipher, stop_acks)
        eligible = {n for place in places for n in numbers[place.id]} - stopped
        lost = eligible - set(per_number)
        print(
            f"\nfault test: offered {RECIPIENTS + PRE_OPTED_OUT} recipients, "
            f"sent {len(sent_to)}, distinct {len(per_number)}, eligible {len(eligible)}, "
            f"lost {len(lost)}, duplicated {len(duplicated)}, opted out mid-run {len(stopped)} "
            f"(of whom {sum(1 for n in stopped if n in per_number)} had already been claimed), "
            f"sends before the reaper {before_reaper}"
        )
        answers = Counter(c.status_code for c in stack.fake.callbacks)
        print(f"fake twilio: {stack.fake.stats()}, callback answers {dict(answers)}")
        assert duplicated == {}
        assert lost == set()
        assert not set(opted_out_before) & set(per_number)
        assert claimed_after_stop == [], "a message was claimed after its person said stop"
        # Most of the people who said stop had not been reached yet, so the test means something.
        assert sum(1 for n in stopped if n not in per_number) >= STOPPERS // 2

        with stack.session() as db:
            campaign_messages = db.execute(
                select(Message.status, func.count())
                .join(CampaignDelivery, CampaignDelivery.message_id == Message.id)
                .where(Message.direction == Direction.outbound, Message.purpose == Purpose.campaign)
                .group_by(Message.status)
            ).all()
            statuses = dict(campaign_messages)
            # Nothing is left waiting or half-sent.  Every message that reached the fake Twilio
            # stands at what Twilio said (its callback, or the answer to the send when the
            # callback was lost); the only failures are the people who said stop in time.
            assert set(statuses) <= {
                MessageStatus.queued,
                MessageStatus.sent,
                MessageStatus.delivered,
                MessageStatus.failed,
            }, statuses
            assert sum(n for st, n in statuses.items() if st != MessageStatus.failed) == len(
                per_number
            )
            refusals = db.execute(
                select(Message.error_code, func.count())
                .where(Message.purpose == Purpose.campaign, Message.status == MessageStatus.failed)
                .group_by(Message.error_code)
            ).all()
            assert dict(refusals) == {REFUSED_NO_CONSENT: statuses.get(MessageStatus.failed, 0)}
            runs_done = db.scalar(
                select(func.count())
                .select_from(CampaignRun)
                .where(CampaignRun.campaign_id == campaign_id, CampaignRun.status == "done")
            )
            assert runs_done == len(places)


def _opt_out_while_waiting(stack: Stack, sender_id: int, numbers: list[str]) -> dict[str, float]:
    """STOP from people whose message is still pending; when each one was acknowledged."""
    with stack.session() as db:
        sender = db.get(Sender, sender_id)
        assert sender is not None
        db.expunge(sender)
    reached = {m.params["To"] for m in stack.fake.messages}
    waiting = [n for n in reversed(numbers) if n not in reached][:STOPPERS]
    acks: dict[str, float] = {}
    words = ["BAJA", "STOP", "Kanpe", "arrêt", "alto"]
    # Sixteen at a time, as people write: one after the other took seconds, in which a campaign
    # sending ~600 messages a second reached most of them before their STOP did.
    with httpx.Client(base_url=stack.base_url, timeout=15) as client:

        def stop(i: int, number: str) -> None:
            form = twilio_form(sender=sender, phone=number, body=words[i % len(words)])
            response = signed_post(
                client, "/webhooks/twilio/messages", form, public_url=stack.base_url
            )
            assert response.status_code == 200, response.text
            acks[number] = time.time()

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(stop, range(len(waiting)), waiting))
    return acks


def _claimed_after_stop(db: Session, cipher: AddressCipher, acks: dict[str, float]) -> list[str]:
    """Numbers whose campaign message was claimed for sending after their STOP was answered."""
    hashes = {cipher.lookup_hash(Channel.sms.value, n): n for n in acks}
    rows = db.execute(
        select(Contact.address_hash, Message.submitted_at)
        .join(Message, Message.contact_id == Contact.id)
        .where(
            Contact.address_hash.in_(list(hashes)),
            Message.purpose == Purpose.campaign,
            Message.status.notin_((MessageStatus.failed, MessageStatus.pending)),
        )
    ).all()
    late = []
    for address_hash, submitted_at in rows:
        number = hashes[str(address_hash)]
        if submitted_at is not None and submitted_at.timestamp() > acks[number]:
            late.append(number)
    return late
