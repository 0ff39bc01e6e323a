"""Campaign dispatch (issue 5): sending rate against its baselines, and replies during a campaign.

    .venv/bin/python -m bench.campaign_dispatch [--recipients 20000] [--big 50000]
        [--baseline-calls 200] [--noop-tasks 20000] [--replies 200] [--skip assistant]
        [--json PATH]

Real processes (see ``bench/dispatch_world.py``): two ``faro worker --queues bulk
--concurrency 4``, the API, PostgreSQL, a private Redis as the broker, the fake Twilio over
HTTP in a process of its own with status callbacks on (only each message's final one, so the API's
callback path is not what limits the send).  This process plays beat: it runs
``campaigns.outreach.engine.tick`` (plan, then dispatch ``JOB_SIZE`` ids per ``messages.send``
task); the workers send.  In one run:

1. **Latency 150 ms** on every Twilio API call: a sequential loop of ``twilio`` client
   ``messages.create`` calls, then a campaign of ``--recipients``; campaign messages/s (first to
   last message accepted at the fake) against the loop's calls/s.  Goal: >= 50x.
2. **Latency 0**: ``--noop-tasks`` ``bench.noop`` tasks drained from the bulk queue by the same
   two workers (published while both had stopped consuming, then released together), then a
   second campaign of ``--recipients``.  Goal: campaign messages/s >= 50 % of no-op tasks/s.
3. **The assistant** (real Rasa from ``bot/models/current.tar.gz``, a ``faro worker --queues
   conversation``), latency 150 ms: reply latency p95 idle, then while a ``--big`` campaign
   dispatches (beat's tick every 15 s, as beat does).  Goal: p95 during <= 2x idle.

CPU seconds per process over each phase say where the time goes.  Prints figures and verdicts;
asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import redis
from celery import Celery
from sqlalchemy import text

from bench.assistant_latency import SENDER as WHATSAPP_SENDER
from bench.common import (
    FakeTwilioProcess,
    autoanalyze,
    load_average,
    print_table,
    write_json,
)
from bench.dispatch_assistant import assistant_phase
from bench.dispatch_world import (
    FAKE_TWILIO_NICE,
    BenchStack,
    CpuMeter,
    approved_campaign,
    bench_stack,
    numbers,
    private_redis,
    profile_send_batch,
    seed_community,
    wait_callbacks_drained,
)
from campaigns.crypto import AddressCipher
from campaigns.knowledge.seed import seed_knowledge
from campaigns.messaging.senders import create_sender
from campaigns.organizations.service import create_organization
from campaigns.outbox import install_publisher
from campaigns.outreach import engine
from campaigns.outreach.dispatch import JOB_SIZE
from campaigns.settings import Settings
from tests.factories import TWILIO_SID, TWILIO_TOKEN
from tests.fakes.twilio import twilio_client_for
from tests.stack import Assistant, free_port, wait_for

LATENCY = 0.15
SMS_SENDER = "+15005550006"
# The most a sender may be given (`create_sender` refuses more): the campaign cannot pass it.
SENDER_RATE = 1000.0
BODY = "Nadie cobra por una cita migratoria. Denuncia al 089. ({})"
BULK_WORKERS = ("bulk-1", "bulk-2")
GOAL_SPEEDUP, GOAL_CEILING, GOAL_RATIO = 50.0, 0.5, 2.0


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


# --- phases -----------------------------------------------------------------------------------


def sequential_loop(fake: FakeTwilioProcess, calls: int) -> dict[str, Any]:
    """One ``messages.create`` after another with the official client (one connection)."""
    client = twilio_client_for(fake.base_url, TWILIO_SID, TWILIO_TOKEN)
    phones = numbers("+52965", calls + 1)
    client.messages.create(to=phones[0], from_=SMS_SENDER, body="warm-up")
    started = time.perf_counter()
    for phone in phones[1:]:
        client.messages.create(to=phone, from_=SMS_SENDER, body="baseline")
    elapsed = time.perf_counter() - started
    return {"calls": calls, "seconds": round(elapsed, 2), "per_s": round(calls / elapsed, 2)}


def campaign(
    stack: BenchStack, meter: CpuMeter, *, org_id: int, community_id: int, count: int, tag: str
) -> dict[str, Any]:
    """Launch an approved campaign with one tick and time its sends at the fake."""
    due = approved_campaign(stack, org_id=org_id, community_id=community_id, body=BODY.format(tag))
    assert stack.factory is not None
    start_index = accepted = stack.twilio.stats()["accepted"]
    load = load_average()
    meter.start()
    started = time.time()
    report = engine.tick(stack.factory, now=due + dt.timedelta(minutes=1))
    tick_s = time.time() - started
    wait_for(
        lambda: stack.twilio.stats()["accepted"] >= accepted + count,
        timeout=1800,
        what=f"{count} campaign messages at the fake",
    )
    cpu = meter.stop()
    sent = stack.twilio.messages_since(start_index)
    first, last = sent[0].received_at, sent[-1].received_at
    rate = (len(sent) - 1) / (last - first)
    drain = wait_callbacks_drained(stack.twilio)
    return {
        "recipients": count,
        "planned": report.planned,
        "queued_by_tick": report.queued,
        "sent": len(sent),
        "distinct": len({m.to for m in sent}),
        "tick_s": round(tick_s, 2),
        "first_to_last_s": round(last - first, 2),
        "tick_start_to_last_s": round(last - started, 2),
        "per_s": round(rate, 1),
        "callbacks_drained_after_s": round(drain, 1),
        "cpu_s": cpu,
        "cpu_ms_per_message": {k: round(v * 1000 / count, 3) for k, v in cpu.items()},
        "load_before": load,
    }


def pause_bulk(app: Celery) -> None:
    """Both bulk workers stop taking tasks from the bulk queue (``add_consumer`` resumes)."""
    replies = app.control.cancel_consumer("bulk", reply=True, timeout=5, limit=len(BULK_WORKERS))
    if len(replies or []) != len(BULK_WORKERS):
        raise RuntimeError(f"cancel_consumer answered by {len(replies or [])} workers")


def noop_tasks(app: Celery, broker: redis.Redis[bytes], count: int) -> dict[str, Any]:
    """``count`` no-op tasks queued while both workers stopped consuming, then released."""
    pause_bulk(app)
    started = time.perf_counter()
    for _ in range(count):
        app.send_task("bench.noop", queue="bulk")
    publish_s = time.perf_counter() - started
    wait_for(lambda: broker.llen("bulk") >= count, timeout=60, what="the no-op tasks queued")
    load = load_average()
    started = time.perf_counter()
    app.control.add_consumer("bulk", reply=False)
    first = None
    while True:
        queued = broker.llen("bulk")
        if first is None and queued < count:
            first = time.perf_counter()
        if queued == 0 and broker.hlen("unacked") == 0:
            break
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    return {
        "tasks": count,
        "publish_s": round(publish_s, 2),
        "release_to_first_s": round((first or started) - started, 3),
        "seconds": round(elapsed, 2),
        "per_s": round(count / elapsed, 1),
        "load_before": load,
    }


# --- the run ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--big", type=int, default=50_000)
    parser.add_argument("--baseline-calls", type=int, default=200)
    parser.add_argument("--noop-tasks", type=int, default=20_000)
    parser.add_argument(
        "--profile", type=int, default=2000, help="messages sent under cProfile (0: none)"
    )
    parser.add_argument("--replies", type=int, default=200, help="idle replies timed")
    parser.add_argument(
        "--campaign-rate",
        type=float,
        default=SENDER_RATE,
        help="the SMS sender's messages/s during the assistant phase (its big campaign)",
    )
    parser.add_argument(
        "--rate-while-chatting",
        type=float,
        default=None,
        help="FARO_CAMPAIGN_RATE_WHILE_CHATTING for the workers (default: Faro's own, "
        f"{Settings().campaign_rate_while_chatting:g}/s; 0: campaigns never yield)",
    )
    parser.add_argument(
        "--fake-nice",
        type=int,
        default=FAKE_TWILIO_NICE,
        help="the fake Twilio's CPU priority (negative: before Faro's processes, as if it ran "
        "elsewhere; its CPU is then taken from Faro's share)",
    )
    parser.add_argument("--skip", default="", help="comma-separated: dispatch, assistant")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    # SIGTERM (a timeout, Ctrl-C's cousin) unwinds normally: workers stopped, database dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    skip = {s for s in args.skip.split(",") if s}
    results: dict[str, Any] = {
        "machine": f"{platform.node()}, {psutil.cpu_count()} CPUs, {platform.python_version()}",
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "load_before": [round(x, 2) for x in os.getloadavg()],
        "job_size": JOB_SIZE,
        "bulk_workers": "2 x faro worker --queues bulk --concurrency 4",
        "callbacks": "on, final status only",
    }
    workdir = Path(tempfile.mkdtemp(prefix="faro-bench-dispatch-"))
    api_port = free_port()
    assistant = Assistant(workdir, faro_url=f"http://127.0.0.1:{api_port}")
    os.environ["FARO_RASA_URL"] = assistant.rasa_url
    with (
        private_redis(workdir) as broker_server,
        bench_stack(
            workdir / "logs", redis_url=broker_server.url, port=api_port, fake_nice=args.fake_nice
        ) as stack,
        autoanalyze(stack.database_url),
    ):
        settings = Settings(
            env="test",
            database_url=stack.database_url,
            redis_url=broker_server.url,
            public_url=stack.base_url,
        )
        results["fake_twilio"] = f"own process, nice {stack.fake_nice}"
        if args.rate_while_chatting is not None:
            stack.extra_env["FARO_CAMPAIGN_RATE_WHILE_CHATTING"] = str(args.rate_while_chatting)
        results["campaign_rate_while_chatting"] = (
            args.rate_while_chatting
            if args.rate_while_chatting is not None
            else Settings().campaign_rate_while_chatting
        )
        cipher = AddressCipher.from_settings(settings)
        with stack.session() as db, db.begin():
            org = create_organization(db, name="Dispatch bench", country="MX")
            create_sender(
                db,
                organization_id=org.id,
                channel="sms",
                address=SMS_SENDER,
                rate_per_second=SENDER_RATE,
            )
            create_sender(
                db,
                organization_id=org.id,
                channel="whatsapp",
                address=WHATSAPP_SENDER,
                rate_per_second=1000,
            )
            seed_knowledge(db, organization_id=org.id)
            org_id = org.id
        seeded = time.perf_counter()
        places = {}
        if "dispatch" not in skip:
            for name, prefix, size in (
                ("slow", "+52962", args.recipients),
                ("fast", "+52961", args.recipients),
                ("profile", "+52964", args.profile),
            ):
                if not size:
                    continue
                phones = numbers(prefix, size)
                places[name] = seed_community(
                    stack, cipher, org_id=org_id, name=name, phones=phones
                )
        if "assistant" not in skip:
            places["big"] = seed_community(
                stack, cipher, org_id=org_id, name="big", phones=numbers("+52963", args.big)
            )
        print(f"seeded {len(places)} communities in {time.perf_counter() - seeded:.1f} s")

        from workers.celery_app import celery_publisher, make_celery

        celery = make_celery(settings)
        broker = redis.Redis.from_url(broker_server.url)
        install_publisher(celery_publisher(celery))
        try:
            for name in BULK_WORKERS:
                stack.start_worker(name, queues="bulk", concurrency=4)
            wait_for(
                lambda: len(celery.control.ping(timeout=1) or []) >= len(BULK_WORKERS),
                timeout=120,
                what="two bulk workers",
            )
            pids = {"bulk workers": [stack.pid(n) for n in BULK_WORKERS]}
            pids |= {"api": [stack.pid("api")], "redis": [broker_server.pid]}
            pids |= {"fake Twilio": [stack.twilio.process.pid]}
            meter = CpuMeter(pids, stack.database_url)
            if "dispatch" not in skip:
                stack.twilio.set_latency(LATENCY)
                print("latency 150 ms: sequential loop …", flush=True)
                results["loop_150ms"] = sequential_loop(stack.twilio, args.baseline_calls)
                print("latency 150 ms: campaign …", flush=True)
                results["campaign_150ms"] = campaign(
                    stack,
                    meter,
                    org_id=org_id,
                    community_id=places["slow"],
                    count=args.recipients,
                    tag="slow",
                )
                results["fake_max_in_flight"] = stack.twilio.stats()["max_in_flight"]
                stack.twilio.set_latency(0.0)
                print("latency 0: no-op tasks …", flush=True)
                results["noop_tasks"] = noop_tasks(celery, broker, args.noop_tasks)
                print("latency 0: campaign …", flush=True)
                results["campaign_0ms"] = campaign(
                    stack,
                    meter,
                    org_id=org_id,
                    community_id=places["fast"],
                    count=args.recipients,
                    tag="fast",
                )
                for key in ("loop_150ms", "campaign_150ms", "noop_tasks", "campaign_0ms"):
                    print(f"{key}: {results[key]}", flush=True)
                if args.profile:
                    print(f"latency 0: send_batch under cProfile, {args.profile} …", flush=True)
                    results["profile_0ms"] = profile_send_batch(
                        stack,
                        settings=settings,
                        pause=lambda: pause_bulk(celery),
                        resume=lambda: celery.control.add_consumer("bulk", reply=False),
                        broker=broker,
                        org_id=org_id,
                        community_id=places["profile"],
                        count=args.profile,
                        body=BODY.format("profile"),
                    )
                    print(results["profile_0ms"]["top_cumulative"], flush=True)
            if "assistant" not in skip:
                print("starting Rasa …", flush=True)
                began = time.perf_counter()
                assistant.start()
                results["rasa_ready_s"] = round(time.perf_counter() - began, 1)
                stack.start_worker("conversation", queues="conversation", concurrency=4)
                wait_for(
                    lambda: len(celery.control.ping(timeout=1) or []) >= 3,
                    timeout=120,
                    what="the conversation worker",
                )
                meter.pids["conversation worker"] = [stack.pid("conversation")]
                meter.pids["rasa"] = [p.pid for p in assistant.processes]
                stack.twilio.set_latency(LATENCY)
                with stack.session() as db, db.begin():
                    db.execute(
                        text("UPDATE sender SET rate_per_second = :r WHERE channel = 'sms'"),
                        {"r": args.campaign_rate},
                    )
                print("assistant: idle, then during the big campaign …", flush=True)
                results["assistant"] = assistant_phase(
                    stack,
                    meter,
                    org_id=org_id,
                    community_id=places["big"],
                    big=args.big,
                    idle=args.replies,
                )
                results["assistant"]["campaign"]["sender_rate_per_s"] = args.campaign_rate
        finally:
            install_publisher(None)
            assistant.stop()
            broker.close()
    os.environ.pop("FARO_RASA_URL", None)
    results["load_after"] = [round(x, 2) for x in os.getloadavg()]
    results["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    report(results)
    write_json(args.json, results)


def report(results: dict[str, Any]) -> None:
    print(f"\n{results['machine']}; {results['started']} → {results['finished']}")
    print(f"load average before {results['load_before']}, after {results['load_after']}")
    print(
        f"{results['bulk_workers']}, {results['job_size']} messages per task; callbacks: "
        f"{results['callbacks']}; fake Twilio: {results.get('fake_twilio')}; campaigns "
        f"while someone chats: {results.get('campaign_rate_while_chatting')}/s (0: no yielding)"
    )
    rows: list[list[object]] = []
    if "campaign_150ms" in results:
        loop, slow = results["loop_150ms"], results["campaign_150ms"]
        speedup = slow["per_s"] / loop["per_s"]
        rows.append(["sequential twilio loop, 150 ms", f"{loop['per_s']}/s", "", ""])
        rows.append(
            [
                f"campaign {slow['recipients']:,}, 150 ms",
                f"{slow['per_s']}/s = {speedup:.0f}x the loop",
                f">= {GOAL_SPEEDUP:.0f}x",
                verdict(speedup >= GOAL_SPEEDUP),
            ]
        )
        noop, fast = results["noop_tasks"], results["campaign_0ms"]
        rows.append([f"{noop['tasks']:,} no-op tasks, 2 workers", f"{noop['per_s']}/s", "", ""])
        if noop["per_s"]:  # --noop-tasks 0 skips the baseline, and with it the verdict
            share = fast["per_s"] / noop["per_s"]
            rows.append(
                [
                    f"campaign {fast['recipients']:,}, 0 ms",
                    f"{fast['per_s']}/s = {share:.0%} of no-op",
                    f">= {GOAL_CEILING:.0%}",
                    verdict(share >= GOAL_CEILING),
                ]
            )
    if "assistant" in results:
        a = results["assistant"]
        idle, busy = a["idle"], a["during_sending"]
        rows.append(
            [
                f"reply p95 idle ({idle['asked'] - idle['unanswered']} of {idle['asked']})",
                f"{idle.get('p95_ms')} ms",
                "",
                "",
            ]
        )
        ratio = a["p95_ratio"]
        answered = busy["asked"] - busy["unanswered"]
        rows.append(
            [
                f"reply p95 during {a['campaign']['recipients']:,} at "
                f"{a['campaign'].get('sender_rate_per_s', SENDER_RATE):,.0f}/s "
                f"({answered} of {busy['asked']})",
                f"{busy.get('p95_ms')} ms = {ratio}x idle",
                f"<= {GOAL_RATIO:.0f}x",
                # Replies that never came within 10 s fail it too (more than 1 in 20).
                verdict(
                    ratio is not None
                    and ratio <= GOAL_RATIO
                    and busy["unanswered"] <= busy["asked"] // 20
                ),
            ]
        )
    print()
    print_table(["what", "figure", "goal", "verdict"], rows)
    for key in ("campaign_150ms", "campaign_0ms"):
        if key in results:
            figures = {k: v for k, v in results[key].items() if k not in ("cpu_s",)}
            print(f"\n{key}: {figures}")
    if "noop_tasks" in results:
        print(f"\nnoop_tasks: {results['noop_tasks']}")
    if "assistant" in results:
        for key, value in results["assistant"].items():
            print(f"\nassistant {key}: {value}")


if __name__ == "__main__":
    main()
