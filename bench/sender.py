"""The sender against the fake Twilio: throughput per worker process, and the shared rate limit.

Goals (issue 3): at least 500 messages/s per worker process unthrottled; with a limit of N/s
across 4 worker processes, the observed rate within ±5% of N.

The fake Twilio (``python -m tests.fakes.twilio``) runs as its own process, answering each
create call after ``--latency`` seconds (Twilio answers in roughly 100 to 300 ms; 0 shows the
sender's own ceiling).  Its status callbacks are switched off.  The messages are real rows,
created with ``queue_text(..., publish=False)`` for contacts that opted in and wrote within the
last 24 hours (so WhatsApp free text is allowed), and sent by the real ``send_batch``: claim,
re-check, decrypt the number, submit through the official ``twilio`` client
(``TwilioGateway``), record.  Each configuration runs in fresh worker processes (spawned), so
one run's connections and caches never help another.

1. **Unthrottled, one process**, no rate limiter, batches of ``--batch``:
   - ``loop``: K batches at a time in one event loop with one gateway;
   - ``threads``: K threads each running one batch at a time the way the ``messages.send`` task
     does (``asyncio.run`` per batch, a new ``TwilioGateway`` per batch), i.e. a Celery worker
     with ``--pool threads -c K``.
2. **Rate-limited across 4 processes**: the sender's ``rate_per_second`` is N; 4 processes
   each run ``send_batch`` over a quarter of the messages with the real Redis ``RateLimiter``.
   The observed rate comes from the fake's own records: (accepted - 1) / (last accept - first
   accept); the busiest 1-second window is reported too.
3. **Baseline**: a plain sequential loop of the ``twilio`` client's ``messages.create``.

    python -m bench.sender [--messages 6000] [--batch 500] [--rates 50,200] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import datetime as dt
import io
import itertools
import multiprocessing
import pstats
import random
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import create_engine, insert, text

from bench.common import (
    GATEWAY_REDIS_URL,
    TWILIO_ACCOUNT_SID,
    TWILIO_AUTH_TOKEN,
    WHATSAPP_SENDER,
    FakeTwilioProcess,
    bench_database,
    code_version,
    distinct_mobiles,
    flush_redis,
    load_average,
    make_senders,
    make_tenant,
    print_table,
    running_fake_twilio,
    write_json,
)
from campaigns.contacts.models import Channel, ConsentState, Contact
from campaigns.crypto import AddressCipher
from campaigns.db import make_engine, make_sessionmaker, unit_of_work
from campaigns.logging import configure_logging
from campaigns.messaging.dispatch import DispatchReport, send_batch
from campaigns.messaging.models import Purpose, Sender
from campaigns.messaging.outbound import queue_text
from campaigns.messaging.ratelimit import RateLimiter
from campaigns.messaging.twilio_gateway import (
    OutboundRequest,
    SimulatorGateway,
    SubmitResult,
    TwilioGateway,
)
from campaigns.settings import Settings

MESSAGES = 6_000
BATCH = 500
CONTACTS = 6_000
LATENCIES = (0.0, 0.15)
UNTHROTTLED = (("loop", 1), ("loop", 4), ("threads", 4))
RATES = (50.0, 200.0)
RATE_SECONDS = 30.0
PROCESSES = 4
BASELINE_CALLS = 40
GOAL_PER_PROCESS = 500.0
GOAL_TOLERANCE = 0.05
PUBLIC_URL = "https://faro.bench.example.org"
SEED = 20261205
BODIES = (
    "Recordatorio: la oficina de COMAR en Tapachula abre de 9:00 a 15:00.",
    "Enfòmasyon: konsila a louvri lendi a 8è.",
    "Aviso: no pague a nadie por la cita de CBP One; es gratuita.",
    "Info: la clinique gratuite de Tecún Umán ouvre samedi.",
)


@dataclass(frozen=True)
class Fixture:
    database_url: str
    organization_id: int
    senders: dict[str, int]
    whatsapp_contacts: list[int]
    sms_contacts: list[int]


@dataclass(frozen=True)
class SenderJob:
    """What one worker process sends, and how."""

    database_url: str
    fake_url: str
    message_ids: list[int]
    batch: int
    mode: str  # loop | threads
    parallel: int  # batches at a time (loop) or threads
    limited: bool
    profile: str | None = None  # write cProfile stats of the process here (loop mode)


@dataclass(frozen=True)
class SenderResult:
    sent: int
    claimed: int
    failed: int
    retried: int
    refused: int
    wall_s: float
    cpu_s: float
    first: float  # time.time() of the start and end, to combine processes
    last: float
    submitted: list[float]  # time.time() as each create call left, after the rate limiter


class TimedTwilioGateway(TwilioGateway):
    """The real gateway, noting when each call leaves (after the limiter's wait)."""

    def __init__(self, submitted: list[float], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._submitted = submitted

    async def submit(self, request: OutboundRequest) -> SubmitResult:
        self._submitted.append(time.time())
        return await super().submit(request)


# --- fixture -------------------------------------------------------------------------------------


def make_fixture(database_url: str) -> Fixture:
    """An organization with a WhatsApp and an SMS sender and CONTACTS opted-in contacts who
    wrote an hour ago (80% WhatsApp), bulk-inserted with encrypted numbers."""
    tenant = make_tenant(database_url)
    senders = make_senders(database_url, tenant.organization_id)
    cipher = AddressCipher.from_settings(Settings())
    rng = random.Random(SEED)
    now = dt.datetime.now(dt.UTC)
    numbers = distinct_mobiles(CONTACTS, seed=SEED)
    channels = [Channel.whatsapp if rng.random() < 0.8 else Channel.sms for _ in numbers]
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            ids = conn.execute(
                insert(Contact).returning(Contact.id, sort_by_parameter_order=True),
                [
                    {
                        "organization_id": tenant.organization_id,
                        "channel": channel,
                        "address_ciphertext": cipher.encrypt(number),
                        "address_hash": cipher.lookup_hash(channel.value, number),
                        "country": "MX",
                        "language": "es",
                        "consent": ConsentState.opted_in,
                        "consent_changed_at": now,
                        "last_inbound_at": now - dt.timedelta(hours=1),
                        "created_at": now,
                        "updated_at": now,
                    }
                    for number, channel in zip(numbers, channels, strict=True)
                ],
            ).scalars()
            pairs = list(zip(ids, channels, strict=True))
    finally:
        engine.dispose()
    return Fixture(
        database_url=database_url,
        organization_id=tenant.organization_id,
        senders=senders,
        whatsapp_contacts=[i for i, c in pairs if c == Channel.whatsapp],
        sms_contacts=[i for i, c in pairs if c == Channel.sms],
    )


def queue_messages(fixture: Fixture, count: int, *, whatsapp_only: bool, seed: int) -> list[int]:
    """``count`` pending campaign messages through ``queue_text`` (nothing published)."""
    rng = random.Random(seed)
    contact_ids = list(fixture.whatsapp_contacts)
    if not whatsapp_only:
        contact_ids += fixture.sms_contacts
    rng.shuffle(contact_ids)
    engine = make_engine(fixture.database_url, pool_size=1, max_overflow=0)
    try:
        with unit_of_work(make_sessionmaker(engine)) as session:
            senders = {
                channel: session.get_one(Sender, i) for channel, i in fixture.senders.items()
            }
            contacts = {
                c.id: c
                for c in session.query(Contact).filter(Contact.id.in_(contact_ids[:count])).all()
            }
            ids = []
            for contact_id in itertools.islice(itertools.cycle(contact_ids), count):
                contact = contacts.get(contact_id) or session.get_one(Contact, contact_id)
                message = queue_text(
                    session,
                    contact=contact,
                    sender=senders[contact.channel.value],
                    purpose=Purpose.campaign,
                    body=rng.choice(BODIES),
                    publish=False,
                )
                ids.append(message.id)
            return ids
    finally:
        engine.dispose()


def set_sender_rate(fixture: Fixture, rate: float) -> None:
    engine = create_engine(fixture.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE sender SET rate_per_second = :rate WHERE id = :id"),
                {"rate": rate, "id": fixture.senders["whatsapp"]},
            )
    finally:
        engine.dispose()


def status_counts(database_url: str, ids: Sequence[int]) -> dict[str, int]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT status, count(*) FROM message WHERE id = ANY(:ids) GROUP BY status"),
                {"ids": list(ids)},
            ).all()
    finally:
        engine.dispose()
    return {str(status): int(n) for status, n in rows}


# --- one worker process --------------------------------------------------------------------------


def _batches(ids: Sequence[int], size: int) -> list[list[int]]:
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]


def _add(total: DispatchReport, report: DispatchReport) -> None:
    total.claimed += report.claimed
    total.accepted += report.accepted
    total.failed += report.failed
    total.retried += report.retried
    total.refused += report.refused


def sender_process(job: SenderJob) -> SenderResult:
    """The body of one spawned worker process: send ``job.message_ids``; figures back."""
    configure_logging(Settings(log_level="WARNING"))
    engine = make_engine(job.database_url, pool_size=job.parallel + 2)
    factory = make_sessionmaker(engine)
    cipher = AddressCipher.from_settings(Settings())
    redis_client = redis.Redis.from_url(GATEWAY_REDIS_URL)
    limiter = RateLimiter(redis_client) if job.limited else None
    batches = _batches(job.message_ids, job.batch)
    total = DispatchReport()
    lock = threading.Lock()

    submitted: list[float] = []

    def gateway() -> TwilioGateway:
        return TimedTwilioGateway(
            submitted,
            account_sid=TWILIO_ACCOUNT_SID,
            auth_token=TWILIO_AUTH_TOKEN,
            api_url=job.fake_url,
        )

    async def one_batch(ids: list[int], twilio: TwilioGateway) -> None:
        report = await send_batch(
            factory=factory,
            gateway=twilio,
            simulator=SimulatorGateway(),
            limiter=limiter,
            cipher=cipher,
            public_url=PUBLIC_URL,
            message_ids=ids,
        )
        with lock:
            _add(total, report)

    async def in_one_loop() -> None:
        twilio = gateway()
        pending = iter(batches)

        async def lane() -> None:
            for ids in pending:
                await one_batch(ids, twilio)

        try:
            await asyncio.gather(*(lane() for _ in range(job.parallel)))
        finally:
            await twilio.close()

    def thread_lane(pending: Any) -> None:
        # As the messages.send task does: a new event loop and a new gateway per batch.
        for ids in pending:

            async def task(ids: list[int] = ids) -> None:
                twilio = gateway()
                try:
                    await one_batch(ids, twilio)
                finally:
                    await twilio.close()

            asyncio.run(task())

    cpu_start, wall_start, first = time.process_time(), time.perf_counter(), time.time()
    if job.mode == "loop" and job.profile:
        profiler = cProfile.Profile()
        profiler.runcall(asyncio.run, in_one_loop())
        profiler.dump_stats(job.profile)
    elif job.mode == "loop":
        asyncio.run(in_one_loop())
    else:
        shared = iter(batches)
        feed = threading.Lock()

        def next_batches() -> Any:
            while True:
                with feed:
                    ids = next(shared, None)
                if ids is None:
                    return
                yield ids

        threads = [
            threading.Thread(target=thread_lane, args=(next_batches(),))
            for _ in range(job.parallel)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    result = SenderResult(
        sent=total.accepted,
        claimed=total.claimed,
        failed=total.failed,
        retried=total.retried,
        refused=total.refused,
        wall_s=time.perf_counter() - wall_start,
        cpu_s=time.process_time() - cpu_start,
        first=first,
        last=time.time(),
        submitted=submitted,
    )
    redis_client.close()
    engine.dispose()
    return result


def run_processes(jobs: list[SenderJob]) -> list[SenderResult]:
    """Each job in its own freshly spawned process, all at once."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=len(jobs), mp_context=context) as pool:
        # Spawned processes import the app first; start them all before any job begins.
        list(pool.map(_noop, range(len(jobs))))
        return list(pool.map(sender_process, jobs))


def _noop(_: int) -> None:
    return None


# --- the fake's records --------------------------------------------------------------------------


def _parse(stamp: str) -> float:
    return dt.datetime.fromisoformat(stamp).timestamp()


def timeline(times: Sequence[float]) -> dict[str, Any]:
    """(count - 1) / span, and the busiest 1-second window, of sorted moments."""
    times = sorted(times)
    if len(times) < 2:
        return {"count": len(times)}
    span = times[-1] - times[0]
    busiest, j = 0, 0
    for i, t in enumerate(times):
        while times[j] < t - 1.0:
            j += 1
        busiest = max(busiest, i - j + 1)
    return {
        "count": len(times),
        "span_s": round(span, 3),
        "rate": round((len(times) - 1) / span, 2),
        "busiest_1s": busiest,
    }


def observed_rate(fake: FakeTwilioProcess) -> dict[str, Any]:
    """The rate at which the fake accepted messages, from its own records."""
    records = fake.control("GET", "messages")
    seen = timeline([_parse(m["received_at"]) for m in records])
    seen["accepted"] = seen.pop("count")
    return seen


# --- the measurements ----------------------------------------------------------------------------


def unthrottled(
    fixture: Fixture, fake: FakeTwilioProcess, messages: int, batch: int
) -> list[dict[str, Any]]:
    rows = []
    for n, (latency, (mode, parallel)) in enumerate(itertools.product(LATENCIES, UNTHROTTLED)):
        fake.control("POST", "config", {"latency": latency})
        fake.control("POST", "reset")
        ids = queue_messages(fixture, messages, whatsapp_only=False, seed=SEED + n)
        job = SenderJob(fixture.database_url, fake.base_url, ids, batch, mode, parallel, False)
        load_before = load_average()
        fake_cpu = fake.cpu_seconds()
        (result,) = run_processes([job])
        seen = observed_rate(fake)
        row = {
            "latency_s": latency,
            "mode": mode,
            "parallel": parallel,
            "batch": batch,
            "messages": messages,
            "sent": result.sent,
            "per_s": round(result.sent / result.wall_s, 1),
            "wall_s": round(result.wall_s, 2),
            "process_cpu_s": round(result.cpu_s, 2),
            "cpu_ms_per_message": round(result.cpu_s / max(1, result.sent) * 1000, 3),
            "fake_cpu_s": round(fake.cpu_seconds() - fake_cpu, 2),
            "fake_accepted": seen.get("accepted"),
            "statuses": status_counts(fixture.database_url, ids),
            "load_before": load_before,
            "load_after": load_average(),
        }
        rows.append(row)
        print(
            f"  latency {latency:g} s, {mode} x{parallel}: {row['per_s']} msgs/s "
            f"({row['sent']} in {row['wall_s']} s, CPU {row['cpu_ms_per_message']} ms/msg, "
            f"load {load_before})",
            flush=True,
        )
    return rows


def rate_limited(
    fixture: Fixture,
    fake: FakeTwilioProcess,
    rates: Sequence[float],
    batch: int,
    seconds: float = RATE_SECONDS,
) -> list[dict[str, Any]]:
    rows = []
    fake.control("POST", "config", {"latency": 0.15})
    for n, rate in enumerate(rates):
        count = int(rate * seconds)
        set_sender_rate(fixture, rate)
        flush_redis()
        fake.control("POST", "reset")
        ids = queue_messages(fixture, count, whatsapp_only=True, seed=SEED + 100 + n)
        shares = [ids[i::PROCESSES] for i in range(PROCESSES)]
        jobs = [
            SenderJob(fixture.database_url, fake.base_url, share, batch, "loop", 1, True)
            for share in shares
        ]
        load_before = load_average()
        results = run_processes(jobs)
        seen = observed_rate(fake)
        left = timeline([t for r in results for t in r.submitted])
        row = {
            "limit": rate,
            "processes": PROCESSES,
            "messages": count,
            "sent": sum(r.sent for r in results),
            **seen,
            "error_pct": round(100 * (seen["rate"] - rate) / rate, 2),
            "sender_side": left,
            "statuses": status_counts(fixture.database_url, ids),
            "load_before": load_before,
            "load_after": load_average(),
        }
        rows.append(row)
        print(
            f"  limit {rate:g}/s over {PROCESSES} processes: observed {row['rate']}/s "
            f"({row['error_pct']:+}%), busiest second {row['busiest_1s']} at the fake, "
            f"{left.get('busiest_1s')} as sent; load {load_before}",
            flush=True,
        )
    return rows


def profile(
    fixture: Fixture, fake: FakeTwilioProcess, messages: int, batch: int, work: Path
) -> str:
    """One unthrottled run (latency 0, one batch at a time) under cProfile: where CPU goes."""
    fake.control("POST", "config", {"latency": 0.0})
    fake.control("POST", "reset")
    ids = queue_messages(fixture, messages, whatsapp_only=False, seed=SEED + 50)
    path = work / "sender.prof"
    job = SenderJob(fixture.database_url, fake.base_url, ids, batch, "loop", 1, False, str(path))
    (result,) = run_processes([job])
    out = io.StringIO()
    out.write(f"{result.sent} messages in {result.wall_s:.2f} s under cProfile\n")
    stats = pstats.Stats(str(path), stream=out)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(45)
    return out.getvalue()


def baseline(fake: FakeTwilioProcess, calls: int) -> dict[str, Any]:
    """The naive sender: one ``messages.create`` after another, at 150 ms latency."""
    from tests.fakes.twilio import twilio_client_for

    fake.control("POST", "config", {"latency": 0.15})
    fake.control("POST", "reset")
    client = twilio_client_for(fake.base_url, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN)
    numbers = distinct_mobiles(calls, seed=SEED + 7)
    sender = f"whatsapp:{WHATSAPP_SENDER}"
    client.messages.create(to=f"whatsapp:{numbers[0]}", from_=sender, body=".")  # connects
    start = time.perf_counter()
    for number in numbers:
        client.messages.create(to=f"whatsapp:{number}", from_=sender, body=BODIES[0])
    wall = time.perf_counter() - start
    return {"calls": calls, "latency_s": 0.15, "per_s": round(calls / wall, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=MESSAGES)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--rates", default=",".join(f"{r:g}" for r in RATES))
    parser.add_argument("--rate-seconds", type=float, default=RATE_SECONDS)
    parser.add_argument("--skip", default="", help="comma-separated: unthrottled,limited,baseline")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--profile", action="store_true", help="cProfile one sender process")
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    figures: dict[str, Any] = {"code": code_version()}
    print(f"code {figures['code']}", flush=True)
    flush_redis()
    with tempfile.TemporaryDirectory(prefix="faro-bench-") as tmp, bench_database() as url:
        fixture = make_fixture(url)
        with running_fake_twilio(log_dir=Path(tmp)) as fake:
            if args.profile:
                print(profile(fixture, fake, args.messages, args.batch, Path(tmp)))
                return
            if "unthrottled" not in skip:
                print(f"unthrottled, one process, {args.messages} messages", flush=True)
                figures["unthrottled"] = unthrottled(fixture, fake, args.messages, args.batch)
            if "limited" not in skip:
                print(f"rate-limited across {PROCESSES} processes", flush=True)
                rates = [float(r) for r in args.rates.split(",")]
                figures["limited"] = rate_limited(
                    fixture, fake, rates, args.batch, args.rate_seconds
                )
            if "baseline" not in skip:
                figures["baseline"] = baseline(fake, BASELINE_CALLS)
    flush_redis()
    report(figures)
    write_json(args.json, {"sender": figures})


def report(figures: dict[str, Any]) -> None:
    if "unthrottled" in figures:
        print("\nunthrottled, one worker process (no rate limiter):")
        print_table(
            ("latency", "mode", "parallel", "sent", "msgs/s", "CPU ms/msg", "fake CPU s", "load"),
            [
                (
                    r["latency_s"],
                    r["mode"],
                    r["parallel"],
                    r["sent"],
                    r["per_s"],
                    r["cpu_ms_per_message"],
                    r["fake_cpu_s"],
                    r["load_before"],
                )
                for r in figures["unthrottled"]
            ],
        )
        for latency in LATENCIES:
            best = max(
                (r for r in figures["unthrottled"] if r["latency_s"] == latency),
                key=lambda r: r["per_s"],
            )
            ok = best["per_s"] >= GOAL_PER_PROCESS
            print(
                f"goal >= {GOAL_PER_PROCESS:g}/s per process at latency {latency:g} s: best "
                f"{best['per_s']}/s ({best['mode']} x{best['parallel']}), "
                f"{'met' if ok else 'NOT met'}"
            )
    if "limited" in figures:
        print(f"\nrate-limited, {PROCESSES} processes, fake latency 0.15 s:")
        print_table(
            (
                "limit/s",
                "messages",
                "accepted",
                "span s",
                "observed/s",
                "error",
                "busiest 1 s",
                "as sent: rate",
                "busiest 1 s",
            ),
            [
                (
                    r["limit"],
                    r["messages"],
                    r["accepted"],
                    r["span_s"],
                    r["rate"],
                    f"{r['error_pct']:+}%",
                    r["busiest_1s"],
                    r["sender_side"].get("rate"),
                    r["sender_side"].get("busiest_1s"),
                )
                for r in figures["limited"]
            ],
        )
        for r in figures["limited"]:
            ok = abs(r["error_pct"]) <= GOAL_TOLERANCE * 100
            print(
                f"goal within ±{GOAL_TOLERANCE:.0%} of {r['limit']:g}/s: {r['rate']}/s, "
                f"{'met' if ok else 'NOT met'}"
            )
    if "baseline" in figures:
        b = figures["baseline"]
        print(
            f"\nbaseline: sequential messages.create at {b['latency_s']} s latency: "
            f"{b['per_s']} msgs/s"
        )


if __name__ == "__main__":
    main()
