"""The world ``bench.campaign_dispatch`` measures in: real processes, one organization, big
communities, approved campaigns launched by playing beat's tick, and CPU meters per process.

Processes: a private ``redis-server`` on a free port (so nobody else's queue shares the broker),
the API under uvicorn, ``faro worker`` processes started with ``FARO_BENCH_TASKS=1`` (so they
also know ``bench.noop``), a PostgreSQL database of the run's own (created and dropped by
:class:`tests.stack.Stack`) and the fake Twilio over HTTP, in a process of its own (as Twilio is
not in Faro's: in this process, its event loop would share the GIL with the benchmark's own
work, and its latency would grow with the load it measures).
"""

from __future__ import annotations

import asyncio
import cProfile
import datetime as dt
import io
import pstats
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psutil
import redis
from sqlalchemy import insert, select, text

from bench.common import (
    PG_ADMIN_URL,
    FakeTwilioProcess,
    PostgresCpu,
    running_fake_twilio,
    tree_cpu_seconds,
)
from campaigns.communities import Community
from campaigns.contacts.models import Channel, ConsentState, Contact
from campaigns.crypto import AddressCipher
from campaigns.messaging.dispatch import send_batch
from campaigns.messaging.models import Message, MessageStatus
from campaigns.messaging.ratelimit import RateLimiter
from campaigns.messaging.twilio_gateway import SimulatorGateway, TwilioGateway
from campaigns.organizations.models import Organization, Role
from campaigns.outreach import engine, lifecycle, runs
from campaigns.outreach.dispatch import JOB_SIZE
from campaigns.outreach.validation import ContentInput
from campaigns.settings import Settings
from tests.campaigns_engine.factories import SID, make_campaign, make_place
from tests.factories import TWILIO_SID, TWILIO_TOKEN, make_user
from tests.stack import Stack, free_port, wait_for

TIMEZONE = "America/Mexico_City"
FAKE_TWILIO_NICE = -10


@dataclass
class PrivateRedis:
    url: str
    pid: int


@contextmanager
def private_redis(workdir: Path) -> Iterator[PrivateRedis]:
    """A ``redis-server`` of the run's own on a free port, without persistence."""
    port = free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            *("--port", str(port), "--bind", "127.0.0.1", "--save", ""),
            *("--appendonly", "no", "--dir", str(workdir)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)

    def up() -> bool:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    try:
        wait_for(up, timeout=15, what="the private redis-server")
        yield PrivateRedis(f"redis://127.0.0.1:{port}/0", proc.pid)
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=15)


class BenchStack(Stack):
    """``tests.stack.Stack`` whose workers also register ``bench.noop``, with the fake Twilio
    in another process (``twilio``)."""

    def __init__(self, *, twilio: FakeTwilioProcess, **kwargs: Any) -> None:
        super().__init__(fake=None, twilio_url=twilio.base_url, **kwargs)
        self.twilio = twilio
        self.fake_nice = 0
        self.extra_env: dict[str, str] = {}  # for the processes started from now on

    @property
    def env(self) -> dict[str, str]:
        return super().env | {"FARO_BENCH_TASKS": "1"} | self.extra_env

    def pid(self, name: str) -> int:
        return self.processes[name].pid


@contextmanager
def bench_stack(
    logs: Path, *, redis_url: str, port: int, fake_nice: int = FAKE_TWILIO_NICE
) -> Iterator[BenchStack]:
    """The API up, no worker yet; status callbacks on, but only each message's final one."""
    logs.mkdir(parents=True, exist_ok=True)
    with running_fake_twilio(
        log_dir=logs,
        callbacks={"final_only": True},
        account_sid=TWILIO_SID,
        auth_token=TWILIO_TOKEN,
    ) as fake:
        # Twilio is another company's machines: its latency does not grow with Faro's load.
        # On a shared 2-core box the fake would queue behind Faro's processes for CPU; a higher
        # priority keeps its answer times its own (needs root; noted in the results if not).
        try:
            psutil.Process(fake.process.pid).nice(fake_nice)
        except psutil.AccessDenied:
            fake_nice = 0
        stack = BenchStack(
            admin_url=PG_ADMIN_URL,
            redis_db=0,
            twilio=fake,
            logs=logs,
            port=port,
            redis_url=redis_url,
        )
        stack.fake_nice = fake_nice
        try:
            stack.start(worker=False)
            yield stack
        finally:
            stack.stop()


def numbers(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i:07d}" for i in range(count)]


def seed_community(
    stack: Stack, cipher: AddressCipher, *, org_id: int, name: str, phones: list[str]
) -> int:
    """A community of opted-in SMS contacts, inserted with one executemany."""
    with stack.session() as db, db.begin():
        org = db.get(Organization, org_id)
        assert org is not None
        community = make_place(db, org=org, name=name, timezone=TIMEZONE)
        community_id = community.id
    now = dt.datetime.now(dt.UTC)
    rows = [
        {
            "organization_id": org_id,
            "channel": Channel.sms,
            "address_ciphertext": cipher.encrypt(n),
            "address_hash": cipher.lookup_hash(Channel.sms.value, n),
            "country": "MX",
            "language": "es",
            "consent": ConsentState.opted_in,
            "is_simulated": False,
            "erased": False,
            "created_at": now,
            "updated_at": now,
        }
        for n in phones
    ]
    with stack.session() as db, db.begin():
        db.execute(insert(Contact), rows)
        db.execute(
            text(
                "INSERT INTO contact_community (contact_id, community_id, joined_at) "
                "SELECT id, :c, now() FROM contact WHERE organization_id = :org "
                "AND channel = 'sms' AND id NOT IN (SELECT contact_id FROM contact_community)"
            ),
            {"c": community_id, "org": org_id},
        )
    with stack.engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()
    return community_id


def approved_campaign(stack: Stack, *, org_id: int, community_id: int, body: str) -> dt.datetime:
    """An announcement to one community, approved and scheduled for tomorrow; its due time."""
    now = dt.datetime.now(dt.UTC)
    local = now.astimezone(ZoneInfo(TIMEZONE)) + dt.timedelta(days=1)
    schedule = {"type": "once", "local": local.strftime("%Y-%m-%dT%H:%M")}
    with stack.session() as db, db.begin():
        org = db.get(Organization, org_id)
        community = db.get(Community, community_id)
        assert org is not None and community is not None
        author = make_user(db, org=org, role=Role.manager)
        content = ContentInput(
            language="es",
            sms_text=body,
            whatsapp_content_sid=SID,
            whatsapp_variables={"1": "089"},
            whatsapp_text="Nadie cobra por una cita migratoria. Denuncia al {{1}}.",
        )
        campaign = make_campaign(
            db,
            org=org,
            author=author,
            communities=[community],
            schedule=schedule,
            contents=[content],
            now=now,
        )
        lifecycle.submit_campaign(db, campaign.id, user_id=author.id, now=now)
        approver = make_user(db, org=org, role=Role.manager)
        lifecycle.approve_campaign(db, campaign.id, user_id=approver.id, now=now)
        lifecycle.schedule_campaign(db, campaign.id, now=now)
        return max(r.due_at for r in runs.list_runs(db, campaign.id))


def wait_callbacks_drained(fake: FakeTwilioProcess, *, timeout: float = 600) -> float:
    """Until every accepted message reached its final status and had its callback sent."""
    started = time.monotonic()
    wait_for(
        lambda: fake.stats()["lifecycles"] == 0,
        timeout=timeout,
        what="the status callbacks to drain",
    )
    return time.monotonic() - started


@dataclass
class CpuMeter:
    """CPU seconds per component over a stretch of the run (PostgreSQL by backend title)."""

    pids: dict[str, list[int]]
    database_url: str
    _start: dict[str, float] = field(default_factory=dict)
    _pg: PostgresCpu | None = None

    def _read(self) -> dict[str, float]:
        readings = {
            name: sum(tree_cpu_seconds(p) for p in pids) for name, pids in self.pids.items()
        }
        times = psutil.Process().cpu_times()
        readings["bench process (beat's tick in the dispatch phase)"] = times.user + times.system
        return readings

    def start(self) -> None:
        self._start = self._read()
        self._pg = PostgresCpu(self.database_url, interval=0.5)
        self._pg.__enter__()

    def stop(self) -> dict[str, float]:
        assert self._pg is not None
        self._pg.__exit__(None, None, None)
        end = self._read()
        spent = {k: round(end[k] - self._start.get(k, 0.0), 2) for k in end}
        spent["postgresql"] = round(self._pg.seconds, 2)
        return spent


def profile_send_batch(
    stack: BenchStack,
    *,
    settings: Settings,
    pause: Callable[[], None],
    resume: Callable[[], object],
    broker: redis.Redis[bytes],
    org_id: int,
    community_id: int,
    count: int,
    body: str,
) -> dict[str, Any]:
    """``send_batch`` in this process under cProfile (this thread's CPU time), ``JOB_SIZE``
    ids at a time, one ``asyncio.run`` each as the ``messages.send`` task does.  The bulk
    workers stop consuming meanwhile; the jobs the tick published for these messages are
    dropped from the queue afterwards."""
    assert stack.factory is not None
    pause()
    try:
        due = approved_campaign(stack, org_id=org_id, community_id=community_id, body=body)
        engine.tick(stack.factory, now=due + dt.timedelta(minutes=1))
        with stack.session() as db:
            ids = list(
                db.scalars(
                    select(Message.id)
                    .where(Message.status == MessageStatus.pending)
                    .order_by(Message.id)
                )
            )
        cipher = AddressCipher.from_settings(settings)
        limiter = RateLimiter(broker)

        async def one(chunk: list[int]) -> None:
            gateway = TwilioGateway(
                account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN, api_url=stack.twilio_url
            )
            try:
                await send_batch(
                    factory=stack.factory,  # type: ignore[arg-type]
                    gateway=gateway,
                    simulator=SimulatorGateway(),
                    limiter=limiter,
                    cipher=cipher,
                    public_url=stack.base_url,
                    message_ids=chunk,
                )
            finally:
                await gateway.close()

        profiler = cProfile.Profile(time.thread_time)
        started, cpu = time.perf_counter(), time.thread_time()
        profiler.enable()
        for start in range(0, len(ids), JOB_SIZE):
            asyncio.run(one(ids[start : start + JOB_SIZE]))
        profiler.disable()
        elapsed, cpu = time.perf_counter() - started, time.thread_time() - cpu
        broker.delete("bulk")
    finally:
        resume()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(35)
    return {
        "messages": len(ids),
        "seconds": round(elapsed, 2),
        "per_s": round(len(ids) / elapsed, 1),
        "sender_cpu_ms_per_message": round(cpu * 1000 / max(1, len(ids)), 3),
        "top_cumulative": out.getvalue(),
    }
