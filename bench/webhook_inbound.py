"""Inbound WhatsApp/SMS webhook latency at a sustained rate, and exactly-once storage.

Goal (issue 3): ``POST /webhooks/twilio/messages`` on real PostgreSQL + Redis at p99 < 50 ms at
200 requests/s sustained for 60 s; every message stored exactly once (counted).

The load is open-loop, as Twilio's is: request *i* is sent at ``start + i / rate`` whether or
not earlier ones have been answered, and its latency is counted from that scheduled moment (so a
stalled server cannot hide its stall by slowing the client down).  A request still unanswered
after 15 s is abandoned, as Twilio abandons it.  Every request is a real
signed Twilio form (``X-Twilio-Signature`` over ``FARO_PUBLIC_URL`` + path) from a realistic
mix: a few thousand numbers of the region, some writing often; WhatsApp (with ``ProfileName``)
and SMS; questions in Spanish, Creole, French and English; consent keywords (STOP, BAJA, KANPE,
ARRÊT …, START, AYUDA, rarely BORRAR); media-only messages, button replies and locations.  About
2% of the requests repeat an earlier ``MessageSid`` byte for byte, as Twilio's retries do: half
of them within 50 ms of the original (racing it), half 1 to 15 s later.

At the end the database is counted: each distinct MessageSid offered must be stored exactly
once, and the tasks published to the broker (Redis) are counted by name, so a duplicate that
produced a second ``conversation.handle`` would show.  A race check follows: two different
messages sent at the same moment from each of 200 numbers never seen before (a photo and a
question), one pair at a time; both must be stored.  Then an optional ramp steps the rate up
(15 s a step) until the server no longer answers 90% of what it is offered.

    python -m bench.webhook_inbound [--rate 200] [--duration 60] [--workers 1,2] [--ramp]
                                    [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import redis
from sqlalchemy import create_engine, text

from bench.common import (
    GATEWAY_REDIS_URL,
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

PATH = "/webhooks/twilio/messages"
RATE = 200.0
DURATION = 60.0
WARMUP_SECONDS = 5.0
NUMBERS = 3_000
RETRY_SHARE = 0.02
RACE_PAIRS = 200
# Twilio waits 15 s for a webhook's answer, then gives up (error 11200) and does not retry an
# inbound message: a request this client abandons at 15 s is a message Twilio would have lost.
TWILIO_TIMEOUT = 15.0
GOAL_P99_MS = 50.0
RAMP_RATES = (50, 75, 100, 125, 150, 200, 300, 400)
RAMP_SECONDS = 15.0
SEED = 20261203

QUESTIONS = (
    "Hola, ¿dónde puedo pedir asilo en Tapachula?",
    "¿Cuánto tarda la cita de CBP One?",
    "necesito ayuda con mis papeles",
    "Buenas noches, ¿hay albergue para familias con niños?",
    "¿Es seguro cruzar por el río? me dijeron que sí",
    "¿Dónde está la oficina de COMAR?",
    "Bonjou, mwen bezwen enfòmasyon sou viza travay",
    "Ki kote mwen ka jwenn yon avoka gratis?",
    "Bonjour, où puis-je renouveler mon passeport ?",
    "Hi, is there a legal way to work in Mexico?",
    "gracias 🙏",
    "ok",
    "Me cobraron 500 dólares por un trámite, ¿es normal?",
    "¿Qué documentos necesito para la visa humanitaria?",
    "Mi hijo está enfermo, ¿hay clínica gratuita cerca de la frontera?",
    "¿A qué hora abre el consulado?",
    "Mwen pèdi paspò mwen, kisa pou m fè?",
    "quiero regresar a mi país, ¿hay programa de retorno?",
)
STOP_WORDS = ("STOP", "Baja", "ALTO", "parar", "CANCELAR", "ARRÊT", "Kanpe", "stop!", " baja. ")
START_WORDS = ("START", "Alta", "KÒMANSE", "commencer")
HELP_WORDS = ("AYUDA", "help", "ÈD", "Aide")
ERASE_WORDS = ("BORRAR", "EFASE")
PROFILE_NAMES = ("María", "José Luis", "Wideline", "Jean-Baptiste", "Ana G.", "🌻 Rosa", "Kervens")


@dataclass(frozen=True)
class Request:
    sid: str
    body: bytes
    signature: str
    kind: str  # text, stop, start, help, erase, media, button, location, retry-near, retry-late


@dataclass
class Outcome:
    scheduled: float
    sent: float = 0.0
    done: float = 0.0
    status: int | None = None
    error: str | None = None


@dataclass
class Plan:
    """What will be sent, in order, and what the database must hold afterwards."""

    requests: list[Request] = field(default_factory=list)
    distinct_sids: set[str] = field(default_factory=set)


def _form(rng: random.Random, number: str, whatsapp: bool, kind: str) -> dict[str, str]:
    sid = ("MM" if kind == "media" else "SM") + uuid.UUID(int=rng.getrandbits(128)).hex
    to = f"whatsapp:{WHATSAPP_SENDER}" if whatsapp else SMS_SENDER
    sender = f"whatsapp:{number}" if whatsapp else number
    words = {
        "text": QUESTIONS,
        "stop": STOP_WORDS,
        "start": START_WORDS,
        "help": HELP_WORDS,
        "erase": ERASE_WORDS,
        "button": ("Sí, quiero información",),
    }
    body = rng.choice(words[kind]) if kind in words else ""
    form = {
        "ToCountry": "US",
        "SmsMessageSid": sid,
        "NumMedia": "1" if kind == "media" else "0",
        "SmsSid": sid,
        "SmsStatus": "received",
        "Body": body,
        "To": to,
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": TWILIO_ACCOUNT_SID,
        "From": sender,
        "ApiVersion": "2010-04-01",
    }
    if whatsapp:
        form |= {
            "ProfileName": rng.choice(PROFILE_NAMES),
            "WaId": number.lstrip("+"),
            "MessageType": {"media": "image", "button": "button", "location": "location"}.get(
                kind, "text"
            ),
            "ReferralNumMedia": "0",
        }
    else:
        form |= {"FromCountry": "MX", "FromCity": "", "FromState": "", "FromZip": ""}
    if kind == "media":
        form["MediaContentType0"] = "image/jpeg"
        form["MediaUrl0"] = (
            f"https://api.twilio.com/2010-04-01/Accounts/{TWILIO_ACCOUNT_SID}/Messages/{sid}"
            f"/Media/ME{uuid.UUID(int=rng.getrandbits(128)).hex}"
        )
    if kind == "button":
        form["ButtonText"] = body
        form["ButtonPayload"] = "info_yes"
    if kind == "location":
        form["Latitude"] = f"{14.9 + rng.random() / 10:.6f}"
        form["Longitude"] = f"{-92.26 - rng.random() / 10:.6f}"
    return form


def _kind(rng: random.Random) -> str:
    return rng.choices(
        ("text", "stop", "start", "help", "erase", "media", "button", "location"),
        (86.9, 3.0, 1.0, 1.0, 0.1, 4.5, 2.5, 1.0),
    )[0]


def build_plan(count: int, *, url: str, numbers: list[str], seed: int) -> Plan:
    """``count`` requests: about 2% retries of an earlier MessageSid, the rest new messages."""
    rng = random.Random(seed)
    # A few people write a lot, most write once or twice (Zipf-like), as on a real help line.
    weights = list(itertools.accumulate(1.0 / (rank + 1) ** 0.8 for rank in range(len(numbers))))
    whatsapp = {n: rng.random() < 0.8 for n in numbers}
    plan = Plan()
    originals: list[int] = []
    for i in range(count):
        if originals and rng.random() < RETRY_SHARE:
            near = rng.random() < 0.5
            # Near: the last few (milliseconds apart at 200/s); late: 1 to 15 s back.
            back = rng.randint(1, 3) if near else rng.randint(200, 3_000)
            source = plan.requests[originals[max(0, len(originals) - back)]]
            retry_kind = "retry-near" if near else "retry-late"
            plan.requests.append(Request(source.sid, source.body, source.signature, retry_kind))
            continue
        number = rng.choices(numbers, cum_weights=weights)[0]
        kind = _kind(rng)
        form = _form(rng, number, whatsapp[number], kind)
        plan.requests.append(
            Request(form["MessageSid"], urlencode(form).encode(), sign(url, form), kind)
        )
        plan.distinct_sids.add(form["MessageSid"])
        originals.append(i)
    return plan


async def race(base_url: str, numbers: list[str]) -> dict[str, Any]:
    """Two different messages from each of ``numbers`` (never seen before) at the same moment,
    one pair at a time: a person sending a photo and a question, or two quick lines.  Both must
    be stored; a 409 here is a message lost."""
    rng = random.Random(SEED - 1)
    url = base_url + PATH
    codes: Counter[str] = Counter()
    sids: set[str] = set()
    async with aiohttp.ClientSession(base_url) as session:

        async def post(form: dict[str, str]) -> None:
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": sign(url, form),
            }
            async with session.post(PATH, data=urlencode(form), headers=headers) as response:
                await response.read()
                codes[str(response.status)] += 1

        for number in numbers:
            whatsapp = rng.random() < 0.8
            pair = [_form(rng, number, whatsapp, "media"), _form(rng, number, whatsapp, "text")]
            sids.update(form["MessageSid"] for form in pair)
            await asyncio.gather(*(post(form) for form in pair))
    return {"pairs": len(numbers), "status_codes": dict(codes), "sids": sids}


async def fire(base_url: str, requests: list[Request], rate: float) -> list[Outcome]:
    """Send ``requests`` open-loop at ``rate``; each latency counts from its scheduled time."""
    connector = aiohttp.TCPConnector(limit=4_000, limit_per_host=4_000, force_close=False)
    timeout = aiohttp.ClientTimeout(total=TWILIO_TIMEOUT)
    outcomes = [Outcome(scheduled=0.0) for _ in requests]
    async with aiohttp.ClientSession(base_url, connector=connector, timeout=timeout) as session:

        async def one(i: int) -> None:
            request, outcome = requests[i], outcomes[i]
            outcome.sent = time.perf_counter()
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": request.signature,
                "I-Twilio-Idempotency-Token": request.sid,
                "User-Agent": "TwilioProxy/1.1",
            }
            try:
                async with session.post(PATH, data=request.body, headers=headers) as response:
                    await response.read()
                    outcome.status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                outcome.error = type(exc).__name__
            outcome.done = time.perf_counter()

        tasks: list[asyncio.Task[None]] = []
        start = time.perf_counter() + 0.05
        for i in range(len(requests)):
            due = start + i / rate
            outcomes[i].scheduled = due
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return outcomes


def summarize(outcomes: list[Outcome], requests: list[Request], rate: float) -> dict[str, Any]:
    ok = [o for o in outcomes if o.status == 200]
    codes = Counter(str(o.status or o.error) for o in outcomes)
    span = max(o.done for o in outcomes) - min(o.scheduled for o in outcomes)
    late = [max(0.0, o.sent - o.scheduled) for o in outcomes]
    figures: dict[str, Any] = {
        "offered_rate": rate,
        "requests": len(outcomes),
        "answered_per_s": round(len(ok) / span, 1),
        "status_codes": dict(codes),
        "client_send_lateness_p99_ms": round(sorted(late)[int(len(late) * 0.99) - 1] * 1000, 2),
    }
    if ok:
        figures |= latency_summary([o.done - o.scheduled for o in ok])
        figures["service"] = latency_summary([o.done - o.sent for o in ok])
    by_kind: dict[str, list[float]] = {}
    for request, outcome in zip(requests, outcomes, strict=True):
        if outcome.status == 200:
            by_kind.setdefault(request.kind, []).append(outcome.done - outcome.scheduled)
    figures["by_kind"] = {
        kind: {"n": len(values), **latency_summary(values)}
        for kind, values in sorted(by_kind.items())
        if len(values) >= 2
    }
    return figures


def count_stored(database_url: str, offered: set[str]) -> dict[str, int]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT twilio_sid, count(*) FROM message WHERE direction = 'inbound' "
                    "GROUP BY twilio_sid"
                )
            ).all()
            outbound = conn.execute(
                text("SELECT count(*) FROM message WHERE direction = 'outbound'")
            ).scalar_one()
            contacts = conn.execute(text("SELECT count(*) FROM contact")).scalar_one()
            # Keywords are answered at once (handled_at set); the rest wait for the assistant.
            for_assistant = conn.execute(
                text(
                    "SELECT count(*) FROM message "
                    "WHERE direction = 'inbound' AND handled_at IS NULL"
                )
            ).scalar_one()
    finally:
        engine.dispose()
    stored: dict[str, int] = {str(sid): int(n) for sid, n in rows}
    return {
        "offered_distinct": len(offered),
        "stored_distinct": len(stored.keys() & offered),
        "missing": len(offered - stored.keys()),
        "duplicates_stored": sum(n - 1 for n in stored.values()),
        "unexpected": len(stored.keys() - offered),
        "outbound_confirmations": int(outbound),
        "contacts": int(contacts),
        "for_assistant": int(for_assistant),
    }


def count_published() -> dict[str, int]:
    """Tasks waiting in the broker, by name (no worker consumes them during the benchmark)."""
    client = redis.Redis.from_url(GATEWAY_REDIS_URL)
    names: Counter[str] = Counter()
    try:
        for queue in ("conversation", "bulk"):
            for raw in client.lrange(queue, 0, -1):
                names[json.loads(raw)["headers"]["task"]] += 1
    finally:
        client.close()
    return dict(names)


def measure(
    workers: int,
    rate: float,
    duration: float,
    ramp: bool,
    numbers: list[str],
    race_numbers: list[str],
    work: Path,
    py_spy: str | None = None,
) -> dict[str, Any]:
    flush_redis()
    with bench_database() as url:
        tenant = make_tenant(url)
        make_senders(url, tenant.organization_id)
        with running_gateway_server(url, log_dir=work, workers=workers) as server:
            target = server.base_url + PATH
            rng_seed = SEED + workers
            warm = build_plan(int(rate * WARMUP_SECONDS), url=target, numbers=numbers, seed=1)
            plan = build_plan(int(rate * duration), url=target, numbers=numbers, seed=rng_seed)
            asyncio.run(fire(server.base_url, warm.requests, rate))
            load_before = load_average()
            cpu_before = tree_cpu_seconds(server.pid)
            sessions_before = database_sessions(url)
            profile = profile_path(f"inbound-{workers}-workers")
            with (
                py_spy_recording(py_spy, server.pid, profile, seconds=duration),
                PostgresCpu(url) as postgres,
            ):
                started = time.perf_counter()
                outcomes = asyncio.run(fire(server.base_url, plan.requests, rate))
                wall = time.perf_counter() - started
                cpu = tree_cpu_seconds(server.pid) - cpu_before
            run = summarize(outcomes, plan.requests, rate)
            # Minus the one this count itself opens.
            run["db_connections_opened"] = database_sessions(url) - sessions_before - 1
            run |= {
                "workers": workers,
                "code": code_version(),
                "duration_s": duration,
                "wall_s": round(wall, 1),
                "load_before": load_before,
                "load_after": load_average(),
                "server_cpu_ms_per_request": round(cpu / len(outcomes) * 1000, 2),
                "server_cpu_share": round(cpu / wall, 2),
                "postgres_cpu_ms_per_request": round(postgres.seconds / len(outcomes) * 1000, 2),
            }
            offered = warm.distinct_sids | plan.distinct_sids
            run["storage"] = count_stored(url, offered)
            run["published"] = count_published()
            raced = asyncio.run(race(server.base_url, race_numbers))
            raced["missing"] = count_stored(url, raced.pop("sids"))["missing"]
            run["race"] = raced
            run["kinds_offered"] = dict(Counter(r.kind for r in plan.requests))
            if py_spy is not None:
                run["profile"] = hot_spots(profile, top=60)
                run["profile_file"] = str(profile)
                run["profile_packages"] = self_time_by_package(profile)
            steps: list[dict[str, Any]] = []
            if ramp:
                for n, step_rate in enumerate(RAMP_RATES):
                    step = build_plan(
                        int(step_rate * RAMP_SECONDS), url=target, numbers=numbers, seed=100 + n
                    )
                    step_cpu = tree_cpu_seconds(server.pid)
                    result = summarize(
                        asyncio.run(fire(server.base_url, step.requests, step_rate)),
                        step.requests,
                        step_rate,
                    )
                    result["server_cpu_share"] = round(
                        (tree_cpu_seconds(server.pid) - step_cpu) / RAMP_SECONDS, 2
                    )
                    result["load"] = load_average()
                    result.pop("by_kind")
                    steps.append(result)
                    print(
                        f"  ramp {step_rate}/s: answered {result['answered_per_s']}/s, "
                        f"p99 {result.get('p99_ms')} ms, codes {result['status_codes']}",
                        flush=True,
                    )
                    if result["answered_per_s"] < 0.9 * step_rate:
                        break  # saturated: higher steps only queue more
            run["ramp"] = steps
    flush_redis()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, default=RATE)
    parser.add_argument("--duration", type=float, default=DURATION)
    parser.add_argument("--workers", default="1,2", help="uvicorn --workers, comma-separated")
    parser.add_argument("--ramp", action="store_true", help="then step the rate up to find a max")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--py-spy", help="path to py-spy: sample the server during the run")
    args = parser.parse_args()
    everyone = distinct_mobiles(NUMBERS + RACE_PAIRS, seed=SEED)
    numbers, race_numbers = everyone[:NUMBERS], everyone[NUMBERS:]
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="faro-bench-") as tmp:
        for workers in (int(w) for w in args.workers.split(",")):
            print(
                f"inbound webhook, {workers} worker(s): {args.rate:g}/s for {args.duration:g} s "
                f"(load {load_average()})",
                flush=True,
            )
            results.append(
                measure(
                    workers,
                    args.rate,
                    args.duration,
                    args.ramp,
                    numbers,
                    race_numbers,
                    Path(tmp),
                    args.py_spy,
                )
            )
    report(results)
    write_json(args.json, {"webhook_inbound": results})


def report(results: list[dict[str, Any]]) -> None:
    print(f"\nPOST {PATH}, open-loop, latency from the scheduled send time (ms):")
    print_table(
        (
            "workers",
            "req/s",
            "requests",
            "answered/s",
            "p50",
            "p95",
            "p99",
            "max",
            "codes",
            "CPU ms/req",
            "PG CPU ms/req",
            "PG conns opened",
            "load",
        ),
        [
            (
                r["workers"],
                r["offered_rate"],
                r["requests"],
                r["answered_per_s"],
                r.get("p50_ms"),
                r.get("p95_ms"),
                r.get("p99_ms"),
                r.get("max_ms"),
                r["status_codes"],
                r["server_cpu_ms_per_request"],
                r["postgres_cpu_ms_per_request"],
                r["db_connections_opened"],
                f"{r['load_before']}->{r['load_after']}",
            )
            for r in results
        ],
    )
    for r in results:
        s = r["storage"]
        print(
            f"{r['workers']} worker(s), code {r['code']}: offered {s['offered_distinct']} "
            f"distinct MessageSids, "
            f"stored {s['stored_distinct']}, missing {s['missing']}, duplicates stored "
            f"{s['duplicates_stored']}; confirmations queued {s['outbound_confirmations']}; "
            f"contacts {s['contacts']}; tasks published {r['published']}"
        )
        handles = r["published"].get("conversation.handle", 0)
        print(
            f"  replies asked for: {handles} conversation.handle tasks for "
            f"{s['for_assistant']} stored non-keyword messages "
            f"({'one each' if handles == s['for_assistant'] else 'MISMATCH'})"
        )
        race_figures = r["race"]
        print(
            f"  two messages at once from each of {race_figures['pairs']} new numbers: codes "
            f"{race_figures['status_codes']}, messages lost {race_figures['missing']}"
        )
        print("  p99 by kind: " + ", ".join(f"{k} {v['p99_ms']}" for k, v in r["by_kind"].items()))
        p99 = r.get("p99_ms", float("inf"))
        verdict = "met" if p99 < GOAL_P99_MS and s["missing"] == 0 else "NOT met"
        print(f"  goal p99 < {GOAL_P99_MS} ms at {r['offered_rate']}/s: {p99} ms, {verdict}")
        if "profile_packages" in r:
            print("  CPU by package: " + ", ".join(f"{p} {n}%" for n, p in r["profile_packages"]))
        for inclusive, own, frame in r.get("profile", []):
            print(f"  {inclusive:5.1f}% {own:5.1f}%  {frame}")
        for step in r["ramp"]:
            print(
                f"  ramp {step['offered_rate']:>5}/s: answered {step['answered_per_s']}/s, "
                f"p50 {step.get('p50_ms')} p99 {step.get('p99_ms')} ms, "
                f"CPU {step['server_cpu_share']}, codes {step['status_codes']}"
            )


if __name__ == "__main__":
    main()
