"""Twilio status callbacks ingested per second, with none lost.

Goal (issue 3): ``POST /webhooks/twilio/status`` takes at least 1,000 callbacks/s, with none lost.

Outbound messages are bulk-inserted as the sender leaves them (``queued``, with Twilio's SID),
each to its own contact.  Then each message's lifecycle is reported as Twilio reports it:
``queued``, ``sent``, ``delivered`` and, for most WhatsApp messages, ``read``; a few end
``undelivered`` (30003) or ``failed`` (30008).  Like Twilio's, the callbacks are signed, carry
Faro's ``?m=<message id>`` in the URL, and arrive duplicated (5%) and out of order (a third of
the messages have their callbacks shuffled, and every message's callbacks interleave with those
of its neighbours).  A fixed number of client connections send them as fast as the server
answers (closed loop, bounded concurrency).

Afterwards ``message_status_event`` must hold exactly one row per callback sent, and every
message must stand at the highest status it was told (the status only moves forward).

    python -m bench.status_callbacks [--messages 6000] [--concurrency 32] [--workers 1,2]
                                     [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from sqlalchemy import create_engine, insert, select, text

from bench.common import (
    SMS_SENDER,
    TWILIO_ACCOUNT_SID,
    WHATSAPP_SENDER,
    PostgresCpu,
    bench_database,
    code_version,
    database_sessions,
    distinct_mobiles,
    flush_redis,
    hot_spots,
    latency_summary,
    load_average,
    make_senders,
    make_tenant,
    print_table,
    profile_path,
    py_spy_recording,
    running_gateway_server,
    self_time_by_package,
    sign,
    tree_cpu_seconds,
    write_json,
)
from campaigns.contacts.models import Channel, ConsentState, Contact
from campaigns.crypto import AddressCipher
from campaigns.messaging.models import Direction, Message, MessageStatus, Purpose
from campaigns.settings import Settings

PATH = "/webhooks/twilio/status"
MESSAGES = 6_000
CONCURRENCY = 32
DUPLICATE_SHARE = 0.05
SHUFFLED_SHARE = 1 / 3
INTERLEAVE = 64  # callbacks of this many neighbouring messages are mixed together
GOAL_PER_S = 1_000
SEED = 20261204


@dataclass(frozen=True)
class Callback:
    message_id: int
    status: str
    path: str  # with ?m=
    body: bytes
    signature: str


@dataclass(frozen=True)
class Outbound:
    message_id: int
    sid: str
    whatsapp: bool
    to: str


def create_messages(database_url: str, count: int) -> list[Outbound]:
    """``count`` outbound campaign messages, ``queued`` with a Twilio SID, one contact each."""
    tenant = make_tenant(database_url)
    senders = make_senders(database_url, tenant.organization_id)
    cipher = AddressCipher.from_settings(Settings())
    numbers = distinct_mobiles(count, seed=SEED)
    rng = random.Random(SEED)
    now = dt.datetime.now(dt.UTC)
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            channels = [Channel.whatsapp if rng.random() < 0.8 else Channel.sms for _ in numbers]
            contact_ids = conn.execute(
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
                        "created_at": now,
                        "updated_at": now,
                    }
                    for number, channel in zip(numbers, channels, strict=True)
                ],
            ).scalars()
            sids = ["SM" + uuid.UUID(int=rng.getrandbits(128)).hex for _ in numbers]
            message_ids = conn.execute(
                insert(Message).returning(Message.id, sort_by_parameter_order=True),
                [
                    {
                        "organization_id": tenant.organization_id,
                        "contact_id": contact_id,
                        "sender_id": senders[channel.value],
                        "direction": Direction.outbound,
                        "channel": channel,
                        "twilio_sid": sid,
                        "status": MessageStatus.queued,
                        "status_rank": MessageStatus.queued.rank,
                        "purpose": Purpose.campaign,
                        "kind": "text",
                        "body": "Recordatorio: la oficina de COMAR abre a las 9:00.",
                        "attempts": 1,
                        "segments": 1,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for contact_id, channel, sid in zip(contact_ids, channels, sids, strict=True)
                ],
            ).scalars()
            return [
                Outbound(message_id, sid, channel == Channel.whatsapp, number)
                for message_id, sid, channel, number in zip(
                    message_ids, sids, channels, numbers, strict=True
                )
            ]
    finally:
        engine.dispose()


def _lifecycle(rng: random.Random, whatsapp: bool) -> tuple[list[str], int | None]:
    pick = rng.random()
    if pick < 0.01:
        return ["queued", "failed"], 30008
    if pick < 0.04:
        return ["queued", "sent", "undelivered"], 30003
    statuses = ["queued", "sent", "delivered"]
    if whatsapp and rng.random() < 0.7:
        statuses.append("read")
    return statuses, None


def build_callbacks(
    base_url: str, messages: list[Outbound]
) -> tuple[list[Callback], dict[int, str]]:
    """The callbacks in sending order, and each message's expected final status."""
    rng = random.Random(SEED + 1)
    expected: dict[int, str] = {}
    per_message: list[list[Callback]] = []
    for m in messages:
        statuses, code = _lifecycle(rng, m.whatsapp)
        expected[m.message_id] = max(statuses, key=lambda s: MessageStatus(s).rank)
        sends = [s for s in statuses for _ in range(2 if rng.random() < DUPLICATE_SHARE else 1)]
        if rng.random() < SHUFFLED_SHARE:
            rng.shuffle(sends)
        path = f"{PATH}?m={m.message_id}"
        callbacks = []
        for status in sends:
            to = f"whatsapp:{m.to}" if m.whatsapp else m.to
            sender = WHATSAPP_SENDER if m.whatsapp else SMS_SENDER
            form = {
                "AccountSid": TWILIO_ACCOUNT_SID,
                "ApiVersion": "2010-04-01",
                "From": f"whatsapp:{sender}" if m.whatsapp else sender,
                "To": to,
                "MessageSid": m.sid,
                "MessageStatus": status,
                "SmsSid": m.sid,
                "SmsStatus": status,
            }
            if m.whatsapp:
                form |= {
                    "ChannelPrefix": "whatsapp",
                    "ChannelToAddress": m.to,
                    "StructuredMessage": "false",
                }
            if status in ("failed", "undelivered") and code:
                form["ErrorCode"] = str(code)
            body, signature = urlencode(form).encode(), sign(base_url + path, form)
            callbacks.append(Callback(m.message_id, status, path, body, signature))
        per_message.append(callbacks)
    # Interleave neighbouring messages, keeping each message's own order.
    ordered: list[Callback] = []
    for start in range(0, len(per_message), INTERLEAVE):
        group = [list(reversed(c)) for c in per_message[start : start + INTERLEAVE]]
        while any(group):
            pending = [c for c in group if c]
            ordered.append(rng.choice(pending).pop())
    return ordered, expected


async def fire(
    base_url: str, callbacks: list[Callback], concurrency: int
) -> tuple[list[float], Counter[str], float]:
    """Send every callback with ``concurrency`` connections; latencies, status codes, wall."""
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60.0)
    latencies: list[float] = []
    codes: Counter[str] = Counter()
    next_index = 0
    async with aiohttp.ClientSession(base_url, connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            nonlocal next_index
            while next_index < len(callbacks):
                callback = callbacks[next_index]
                next_index += 1
                headers = {
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Twilio-Signature": callback.signature,
                    "I-Twilio-Idempotency-Token": uuid.uuid4().hex,
                    "User-Agent": "TwilioProxy/1.1",
                }
                start = time.perf_counter()
                try:
                    async with session.post(
                        callback.path, data=callback.body, headers=headers
                    ) as response:
                        await response.read()
                        codes[str(response.status)] += 1
                except (aiohttp.ClientError, TimeoutError) as exc:
                    codes[type(exc).__name__] += 1
                    continue
                latencies.append(time.perf_counter() - start)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return latencies, codes, wall


def verify(database_url: str, sent: int, expected: dict[int, str]) -> dict[str, Any]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            events = conn.execute(text("SELECT count(*) FROM message_status_event")).scalar_one()
            rows = conn.execute(
                select(Message.id, Message.status).where(Message.direction == Direction.outbound)
            ).all()
    finally:
        engine.dispose()
    wrong = sum(1 for message_id, status in rows if expected.get(message_id) != status.value)
    return {
        "callbacks_sent": sent,
        "events_stored": int(events),
        "events_lost": sent - int(events),
        "messages": len(rows),
        "messages_wrong_status": wrong,
        "final_statuses": dict(Counter(status.value for _, status in rows)),
    }


def measure(
    workers: int, messages: int, concurrency: int, work: Path, py_spy: str | None = None
) -> dict[str, Any]:
    flush_redis()
    with bench_database() as url:
        outbound = create_messages(url, messages)
        with running_gateway_server(url, log_dir=work, workers=workers) as server:
            callbacks, expected = build_callbacks(server.base_url, outbound)
            # Warm-up on the first 300, which are then re-sent in the run: not counted twice.
            warm, _ = build_callbacks(server.base_url, outbound[:1])
            asyncio.run(fire(server.base_url, warm * 50, 8))
            load_before = load_average()
            cpu_before = tree_cpu_seconds(server.pid)
            sessions_before = database_sessions(url)
            profile = profile_path(f"status-{workers}-workers")
            # The run lasts about callbacks / 300 s on 2 CPUs; py-spy stops on its own.
            with (
                py_spy_recording(py_spy, server.pid, profile, seconds=len(callbacks) / 400),
                PostgresCpu(url) as postgres,
            ):
                latencies, codes, wall = asyncio.run(fire(server.base_url, callbacks, concurrency))
            cpu = tree_cpu_seconds(server.pid) - cpu_before
            # Minus the one this count itself opens.
            opened = database_sessions(url) - sessions_before - 1
            result: dict[str, Any] = {
                "workers": workers,
                "code": code_version(),
                "concurrency": concurrency,
                "callbacks": len(callbacks),
                "wall_s": round(wall, 2),
                "per_s": round(len(callbacks) / wall, 1),
                "status_codes": dict(codes),
                **latency_summary(latencies),
                "server_cpu_ms_per_callback": round(cpu / len(callbacks) * 1000, 2),
                "server_cpu_share": round(cpu / wall, 2),
                "postgres_cpu_ms_per_callback": round(postgres.seconds / len(callbacks) * 1000, 2),
                "db_connections_opened": opened,
                "load_before": load_before,
                "load_after": load_average(),
            }
            # The warm-up's events are real rows too: they count as sent.
            result["check"] = verify(url, len(callbacks) + 50 * len(warm), expected)
            if py_spy is not None:
                result["profile"] = hot_spots(profile, top=60)
                result["profile_file"] = str(profile)
                result["profile_packages"] = self_time_by_package(profile)
    flush_redis()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=MESSAGES)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    parser.add_argument("--workers", default="1,2", help="uvicorn --workers, comma-separated")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--py-spy", help="path to py-spy: sample the server during the run")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="faro-bench-") as tmp:
        for workers in (int(w) for w in args.workers.split(",")):
            print(
                f"status callbacks, {workers} worker(s), {args.messages} messages, "
                f"{args.concurrency} connections (load {load_average()})",
                flush=True,
            )
            results.append(
                measure(workers, args.messages, args.concurrency, Path(tmp), args.py_spy)
            )
    report(results)
    write_json(args.json, {"status_callbacks": results})


def report(results: list[dict[str, Any]]) -> None:
    print(f"\nPOST {PATH}, closed loop (ms):")
    print_table(
        (
            "workers",
            "conns",
            "callbacks",
            "per s",
            "p50",
            "p95",
            "p99",
            "codes",
            "CPU ms/cb",
            "PG CPU ms/cb",
            "events lost",
            "wrong status",
            "PG conns opened",
            "load",
        ),
        [
            (
                r["workers"],
                r["concurrency"],
                r["callbacks"],
                r["per_s"],
                r["p50_ms"],
                r["p95_ms"],
                r["p99_ms"],
                r["status_codes"],
                r["server_cpu_ms_per_callback"],
                r["postgres_cpu_ms_per_callback"],
                r["check"]["events_lost"],
                r["check"]["messages_wrong_status"],
                r["db_connections_opened"],
                f"{r['load_before']}->{r['load_after']}",
            )
            for r in results
        ],
    )
    for r in results:
        ok = r["per_s"] >= GOAL_PER_S and r["check"]["events_lost"] == 0
        print(
            f"{r['workers']} worker(s), code {r['code']}: final statuses "
            f"{r['check']['final_statuses']}; goal >= "
            f"{GOAL_PER_S}/s with none lost: {r['per_s']}/s, {'met' if ok else 'NOT met'} "
            f"({r['per_s'] / GOAL_PER_S:.0%} of goal)"
        )
        if "profile_packages" in r:
            print("  CPU by package: " + ", ".join(f"{p} {n}%" for n, p in r["profile_packages"]))
        for inclusive, own, frame in r.get("profile", []):
            print(f"  {inclusive:5.1f}% {own:5.1f}%  {frame}")


if __name__ == "__main__":
    main()
