"""PostgreSQL restarted while webhooks stream in: the API and the worker recover on their own
(pool pre-ping), and nothing Twilio retried is lost or stored twice.

The cluster is private (initdb in a temporary directory, its own port and socket directory);
the machine's shared server is never restarted.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import func, select

from campaigns.messaging.models import Direction, Message
from campaigns.messaging.senders import create_sender
from campaigns.organizations.service import create_organization
from tests.resilience.helpers import (
    Delivery,
    PrivatePostgres,
    TwilioLikeClient,
    percentile,
    verdict,
)
from tests.stack import PrivateRedis, running_stack, wait_for

SENDER = "+14155230901"
MESSAGES = 400
RATE = 20.0  # webhooks per second offered
OUTAGE = 3.0  # seconds the server is down


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    server.init()
    server.start()
    yield server
    server.destroy()


@pytest.mark.slow
def test_webhooks_survive_a_postgres_restart(
    private_pg: PrivatePostgres,
    private_redis: PrivateRedis,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    logs = tmp_path_factory.mktemp("pg-restart")
    with running_stack(private_pg.admin_url, logs, redis_url=private_redis.url) as stack:
        with stack.session() as db, db.begin():
            org = create_organization(db, name="PG restart", country="MX")
            create_sender(db, organization_id=org.id, channel="whatsapp", address=SENDER)
        client = TwilioLikeClient(stack, give_up_after=120)
        forms = [
            client.form(
                sid="SM" + uuid.uuid4().hex,
                phone=f"+52155{i % 80:08d}",
                to=SENDER,
                body=f"pregunta {i}",
            )
            for i in range(MESSAGES)
        ]
        restarted = threading.Event()
        outage: dict[str, float] = {}

        def restart() -> None:
            time.sleep(MESSAGES / RATE / 3)
            outage["start"] = time.monotonic()
            private_pg.stop("fast")  # every connection of the API and the worker drops
            time.sleep(OUTAGE)
            private_pg.start()
            outage["end"] = time.monotonic()
            restarted.set()

        results: list[Delivery] = []
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=32) as pool:
            restarter = threading.Thread(target=restart)
            restarter.start()
            futures = []
            for i, form in enumerate(forms):
                delay = started + i / RATE - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                futures.append(pool.submit(client.deliver, form))
            results = [f.result() for f in futures]
            restarter.join()
        client.close()
        assert restarted.is_set()

        # No manual step: the same API process is ready and answers a new webhook at once.
        ready = httpx.get(f"{stack.base_url}/readyz", timeout=5).json()
        assert ready["checks"]["database"] == "ok", ready

        sids = [f["MessageSid"] for f in forms]
        with stack.session() as db:
            stored = dict(
                db.execute(
                    select(Message.twilio_sid, func.count())
                    .where(Message.twilio_sid.in_(sids))
                    .group_by(Message.twilio_sid)
                ).all()
            )
        lost = [s for s in sids if s not in stored]
        duplicated = [s for s, n in stored.items() if n > 1]
        retried = [r for r in results if r.attempts > 1]
        refused = [r for r in results if r.status != 200]

        # The worker recovers too: every stored message is handled (the assistant is not
        # running here, so each gets the apology), by the conversation tasks' own retries: a
        # task that lost the database retries within seconds and takes over its own lease.
        # The reaper (beat, every 30 s, two-minute leases) is not run: it is the last resort.
        def all_handled() -> bool:
            with stack.session() as db:
                waiting = db.scalar(
                    select(func.count()).where(
                        Message.twilio_sid.in_(sids), Message.handled_at.is_(None)
                    )
                )
            return waiting == 0

        waited = time.monotonic()
        wait_for(all_handled, timeout=90, what="every inbound message handled, without the reaper")
        handled_after = round(time.monotonic() - waited)
        with stack.session() as db:
            replies = db.scalar(
                select(func.count()).where(
                    Message.direction == Direction.outbound, Message.organization_id == org.id
                )
            )
        latencies = [x for r in results for x in r.latencies]
        verdict(
            "postgres restart",
            offered=MESSAGES,
            processed=len(stored),
            lost=len(lost),
            duplicated=len(duplicated),
            retried_by_client=len(retried),
            client_attempts=sum(r.attempts for r in results),
            outage_s=round(outage["end"] - outage["start"], 1),
            replies=replies,
            all_handled_after_s=handled_after,
            p50_ms=round(percentile(latencies, 0.5) * 1000),
            p99_ms=round(percentile(latencies, 0.99) * 1000),
        )
        assert refused == []
        assert lost == []
        assert duplicated == []
        assert retried, "the restart happened while nothing was being sent?"
        assert replies == MESSAGES  # one answer per message, none twice
