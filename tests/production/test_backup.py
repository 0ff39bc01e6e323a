"""Backup and restore mid-campaign (docs/backup.md): ``pg_dump -Fc`` while a campaign sends,
``pg_restore`` into a new database, the campaign resumed there against the same fake Twilio.

Two backups are taken of the same campaign:

- a *hot* one, while the bulk worker is sending.  Restored, it shows the crash window: messages
  Twilio accepted after the snapshot still say ``pending``/``submitting`` in the copy, so
  resuming from it would send them again (docs/backup.md says so; the test counts them);
- a *quiesced* one, taken after the bulk worker was stopped (SIGTERM: it finishes what it holds)
  with the campaign still half sent.  The old system is then killed, the copy restored and
  resumed under the same public URL: every eligible person gets the message exactly once.
"""

from __future__ import annotations

import datetime as dt
import glob
import signal
import subprocess
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs, urlparse
from zoneinfo import ZoneInfo

import pytest
import redis
from sqlalchemy import create_engine, insert, select, text
from sqlalchemy.engine import make_url

from campaigns.contacts.models import Channel, ConsentState, Contact
from campaigns.crypto import AddressCipher
from campaigns.db import make_engine, make_sessionmaker
from campaigns.messaging import reaper
from campaigns.messaging.models import Message, Purpose
from campaigns.organizations.models import Role
from campaigns.outbox import install_publisher
from campaigns.outreach import engine, lifecycle
from campaigns.settings import Settings
from tests.campaigns_engine.factories import make_campaign, make_place
from tests.conftest import PG_ADMIN_URL
from tests.factories import make_organization, make_sender, make_user
from tests.fakes.twilio import CallbackOptions
from tests.stack import PrivateRedis, Stack, running_stack, wait_for, wait_idle

RECIPIENTS = 800
OPTED_OUT = 50
RATE = 40.0  # messages per second: the campaign takes ~20 s, so backups land mid-campaign
BODY = "Nadie cobra por una cita migratoria. Denuncia al 089."  # the factory's SMS text


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        pytest.skip(f"{name} not installed")
    return found[-1]


def _dsn(url: str) -> str:
    """libpq's form of a SQLAlchemy URL (pg_dump does not know ``+psycopg``)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def pg_dump(url: str, path: Path) -> None:
    subprocess.run(
        [_pg_bin("pg_dump"), "-Fc", "--no-owner", "-f", str(path), _dsn(url)], check=True
    )


def pg_restore(path: Path, into: str) -> None:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{make_url(into).database}"'))
    admin.dispose()
    subprocess.run(
        [_pg_bin("pg_restore"), "--no-owner", "--exit-on-error", "-d", _dsn(into), str(path)],
        check=True,
    )


def drop(url: str) -> None:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


def _campaign_ids_at_twilio(stack: Stack, body: str) -> list[int]:
    """Faro's message id of every campaign message the fake Twilio accepted (from ``?m=``)."""
    ids = []
    for m in stack.fake.messages:
        if m.params.get("Body") == body:
            query = parse_qs(urlparse(m.params["StatusCallback"]).query)
            ids.append(int(query["m"][0]))
    return ids


@pytest.fixture
def dumps(tmp_path: Path) -> Path:
    return tmp_path


@pytest.mark.slow
def test_a_backup_taken_mid_campaign_restores_and_resumes_without_duplicates(
    tmp_path_factory: pytest.TempPathFactory, dumps: Path, private_redis: PrivateRedis
) -> None:
    logs = tmp_path_factory.mktemp("backup")
    restored: list[str] = []
    second: Stack | None = None
    with running_stack(
        PG_ADMIN_URL,
        logs / "first",
        redis_url=private_redis.url,
        worker=False,
        callback_options=CallbackOptions(final_only=True),
    ) as stack:
        settings = Settings(
            env="test",
            database_url=stack.database_url,
            redis_url=stack.redis_url,
            public_url=stack.base_url,
        )
        cipher = AddressCipher.from_settings(settings)
        real_now = dt.datetime.now(dt.UTC)
        with stack.session() as db, db.begin():
            org = make_organization(db)
            author = make_user(db, org=org, role=Role.manager)
            make_sender(db, org=org, channel="sms", address="+15005550006", rate=RATE)
            place = make_place(db, org=org, name="Tapachula", timezone="America/Mexico_City")
            numbers = [f"+52962{i:07d}" for i in range(RECIPIENTS + OPTED_OUT)]
            db.execute(
                insert(Contact),
                [
                    {
                        "organization_id": org.id,
                        "channel": Channel.sms,
                        "address_ciphertext": cipher.encrypt(n),
                        "address_hash": cipher.lookup_hash("sms", n),
                        "country": "MX",
                        "language": "es",
                        "consent": ConsentState.opted_in
                        if i < RECIPIENTS
                        else ConsentState.opted_out,
                    }
                    for i, n in enumerate(numbers)
                ],
            )
            db.execute(
                text(
                    "INSERT INTO contact_community (contact_id, community_id, joined_at) "
                    "SELECT id, :c, now() FROM contact WHERE organization_id = :org"
                ),
                {"c": place.id, "org": org.id},
            )
            written = real_now - dt.timedelta(hours=6)
            local = real_now.astimezone(ZoneInfo("America/Mexico_City")) - dt.timedelta(hours=1)
            campaign = make_campaign(
                db,
                org=org,
                author=author,
                communities=[place],
                schedule={"type": "once", "local": local.strftime("%Y-%m-%dT%H:%M")},
                now=written,
            )
            lifecycle.submit_campaign(db, campaign.id, user_id=author.id, now=written)
            approver = make_user(db, org=org, role=Role.manager)
            lifecycle.approve_campaign(db, campaign.id, user_id=approver.id, now=written)
            lifecycle.schedule_campaign(db, campaign.id, now=written)
        eligible = set(numbers[:RECIPIENTS])

        from workers.celery_app import celery_publisher, make_celery

        install_publisher(celery_publisher(make_celery(settings)))
        try:
            stack.start_worker("bulk", queues="bulk", concurrency=4)
            assert stack.factory is not None
            assert engine.tick(stack.factory).planned == RECIPIENTS

            # -- 1. hot backup, while sending -----------------------------------------------
            wait_for(
                lambda: len(_campaign_ids_at_twilio(stack, BODY)) >= 150,
                timeout=120,
                what="150 sends",
            )
            before = set(_campaign_ids_at_twilio(stack, BODY))
            pg_dump(stack.database_url, dumps / "hot.dump")
            after = set(_campaign_ids_at_twilio(stack, BODY))
            hot_url = stack.database_url.replace(stack.db_name, stack.db_name + "_hot")
            pg_restore(dumps / "hot.dump", hot_url)
            restored.append(hot_url)
            hot = make_engine(hot_url)
            with make_sessionmaker(hot)() as db:
                status = dict(
                    db.execute(
                        select(Message.id, Message.status).where(
                            Message.purpose == Purpose.campaign
                        )
                    ).all()
                )
            hot.dispose()
            window = {i for i in after if status.get(i) in ("pending", "submitting")}
            recorded = {i for i, st in status.items() if st not in ("pending", "submitting")}
            # The copy is consistent: every message it says Twilio accepted, Twilio has; what
            # Twilio accepted after the snapshot is the crash window, still to send in the copy.
            assert recorded <= after
            assert recorded | window == after
            print(
                f"\nhot backup: {len(before)} accepted by Twilio when pg_dump started, "
                f"{len(after)} when it ended; the copy says {len(recorded)} sent and "
                f"{len(window)} accepted-but-pending (would be sent again from this copy)"
            )

            # -- 2. quiesced backup: bulk worker stopped, campaign half sent ------------------
            wait_for(
                lambda: len(_campaign_ids_at_twilio(stack, BODY)) >= 300,
                timeout=120,
                what="300 sends",
            )
            stack.kill("bulk", signal.SIGTERM)  # warm shutdown: finishes what it holds
            wait_idle(stack, quiet_for=3)
            sent_before_backup = len(_campaign_ids_at_twilio(stack, BODY))
            assert sent_before_backup < RECIPIENTS, "the campaign finished before the backup"
            pg_dump(stack.database_url, dumps / "quiesced.dump")

            # -- 3. disaster: the old system is gone; restore and resume --------------------
            stack.kill("api", signal.SIGKILL)
            new_url = stack.database_url.replace(stack.db_name, stack.db_name + "_restored")
            pg_restore(dumps / "quiesced.dump", new_url)
            redis.Redis.from_url(stack.redis_url).flushdb()  # the broker did not survive either
            second = Stack(
                admin_url=PG_ADMIN_URL,
                redis_db=0,
                redis_url=private_redis.url,
                fake=stack.fake,
                logs=logs / "second",
                port=stack.port,  # the same public URL: Twilio's callbacks reach the copy
            )
            (logs / "second").mkdir()
            second.db_name = make_url(new_url).database or ""
            second.database_url = new_url
            second.engine = make_engine(new_url)
            second.factory = make_sessionmaker(second.engine)
            second.start_api()
            second.start_worker("worker", queues="conversation,bulk", concurrency=4)
            # What beat does on its own: the tick, and the reaper once its delays have passed.
            engine.tick(second.factory)
            reaper.reap(second.factory, now=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=11))
            wait_for(
                lambda: len(set(_campaign_ids_at_twilio(stack, BODY))) >= RECIPIENTS,
                timeout=180,
                what="every recipient",
            )
            wait_idle(stack)
            engine.tick(second.factory)
        finally:
            install_publisher(None)
            if second is not None:
                second.stop()
            for url in restored:
                drop(url)

        sent_to = Counter(m.params["To"] for m in stack.fake.messages if m.params["Body"] == BODY)
        duplicated = {n: c for n, c in sent_to.items() if c > 1}
        lost = eligible - set(sent_to)
        print(
            f"restore: offered {RECIPIENTS} eligible (+{OPTED_OUT} opted out), sent "
            f"{sum(sent_to.values())} ({sent_before_backup} before the backup), "
            f"lost {len(lost)}, duplicated {len(duplicated)}"
        )
        assert duplicated == {}
        assert lost == set()
        assert set(sent_to) == eligible  # nobody who had opted out


def test_pg_dump_and_pg_restore_are_installed() -> None:
    for name in ("pg_dump", "pg_restore"):
        out = subprocess.run([_pg_bin(name), "--version"], capture_output=True, text=True)
        assert out.returncode == 0 and "PostgreSQL" in out.stdout
