"""The fake Twilio answering bursts of 429, 500, dropped connections and timeouts while a
campaign sends: every message is eventually sent exactly once.

A timeout is the hard case: Twilio accepted the message but the answer never came in time, so
the row stays ``submitting``.  Twilio's status callback (which carries Faro's message id)
completes it; the send task gives up on the row rather than sending again, and the reaper,
run with its clock past its 10-minute delay, finds nothing left to resend.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from sqlalchemy import func, select

from campaigns.crypto import AddressCipher
from campaigns.messaging import reaper
from campaigns.messaging.models import Message, MessageStatus, Purpose
from campaigns.outbox import install_publisher
from campaigns.outreach import engine
from campaigns.settings import Settings
from tests.conftest import PG_ADMIN_URL
from tests.fakes.twilio import Fault
from tests.resilience.helpers import CAMPAIGN_BODY, campaign_world, verdict
from tests.stack import PrivateRedis, running_stack, wait_for, wait_idle
from workers.celery_app import celery_publisher, make_celery

RECIPIENTS = 400


@pytest.mark.slow
def test_bursts_of_429_500_drops_and_timeouts_lose_and_duplicate_nothing(
    tmp_path_factory: pytest.TempPathFactory, private_redis: PrivateRedis
) -> None:
    logs = tmp_path_factory.mktemp("twilio-faults")
    with running_stack(PG_ADMIN_URL, logs, redis_url=private_redis.url, worker=False) as stack:
        settings = Settings(
            env="test",
            database_url=stack.database_url,
            redis_url=stack.redis_url,
            public_url=stack.base_url,
        )
        cipher = AddressCipher.from_settings(settings)
        world = campaign_world(stack, cipher, recipients=RECIPIENTS, rate=100)
        # Bursts in a row, as an overloaded or failing Twilio gives them: the first 40 calls
        # rate-limited, then 40 server errors, 20 dropped connections, 40 503s, and six
        # answers that come after the client's 15-second timeout (accepted all the same).
        stack.fake.inject(
            Fault("rate_limit", times=40, retry_after=1),
            Fault("server_error", times=40),
            Fault("drop", times=20),
            Fault("unavailable", times=40),
            Fault("timeout", times=6, seconds=20),
        )
        install_publisher(celery_publisher(make_celery(settings)))
        try:
            stack.start_worker("bulk", queues="bulk", concurrency=4)
            assert stack.factory is not None
            assert engine.tick(stack.factory).planned == RECIPIENTS

            def every_message_final() -> bool:
                with stack.session() as db:
                    waiting = db.scalar(
                        select(func.count()).where(
                            Message.purpose == Purpose.campaign,
                            Message.status.in_((MessageStatus.pending, MessageStatus.submitting)),
                        )
                    )
                return waiting == 0

            wait_for(every_message_final, timeout=240, what="every message sent")
            # Beat's reaper, past its 10-minute delay for rows left submitting.
            later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=11)
            reaped = reaper.reap(stack.factory, now=later)
            wait_idle(stack, quiet_for=4)
            engine.tick(stack.factory)
        finally:
            install_publisher(None)

        stats = stack.fake.stats()
        sent = Counter(
            m.params["To"] for m in stack.fake.messages if m.params.get("Body") == CAMPAIGN_BODY
        )
        duplicated = {n: c for n, c in sent.items() if c > 1}
        lost = set(world.numbers) - set(sent)
        with stack.session() as db:
            statuses = dict(
                db.execute(
                    select(Message.status, func.count())
                    .where(Message.purpose == Purpose.campaign)
                    .group_by(Message.status)
                ).all()
            )
        verdict(
            "twilio faults",
            offered=RECIPIENTS,
            processed=len(sent),
            lost=len(lost),
            duplicated=len(duplicated),
            api_calls=stats["calls"],
            faults_fired=stats["faults_fired"],
            reaper_resent=reaped["submitting"],
            final_statuses={str(k): v for k, v in statuses.items()},
        )
        assert stats["faults_fired"] == 146  # every burst happened
        assert duplicated == {}
        assert lost == set()
        assert MessageStatus.failed not in statuses
