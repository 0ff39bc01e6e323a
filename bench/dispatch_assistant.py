"""The assistant's reply latency for ``bench.campaign_dispatch``: idle, then while a big campaign
dispatches (a process of the bench's plays beat: ``campaigns.tick`` every 15 s, as beat does).

A reply's latency runs from the signed inbound webhook leaving this process to the reply's
arrival at the fake Twilio (the moment the fake began handling Faro's call, before the latency it
adds), as ``bench.assistant_latency`` measures it.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from sqlalchemy import text
from twilio.request_validator import RequestValidator

from bench.assistant_latency import QUESTIONS
from bench.assistant_latency import SENDER as WHATSAPP_SENDER
from bench.common import latency_summary, load_average
from bench.dispatch_world import BenchStack, CpuMeter, approved_campaign, wait_callbacks_drained
from campaigns.outreach import engine
from tests.factories import TWILIO_SID, TWILIO_TOKEN, random_mobile

BEAT_EVERY = 15.0  # seconds between beat's campaigns.tick
REPLY_TIMEOUT = 10.0
BODY = "Nadie cobra por una cita migratoria. Denuncia al 089. (big)"


@dataclass
class Reply:
    sent_at: float
    latency: float | None  # to the reply's arrival at Twilio; None: no reply in 10 s
    arrived_at: float | None
    sid: str = ""


class Asker:
    """Signed inbound WhatsApp questions, one at a time; each waits for its reply at the fake."""

    def __init__(self, stack: BenchStack) -> None:
        self.fake = stack.twilio
        self.url = f"{stack.base_url}/webhooks/twilio/messages"
        self.client = httpx.Client(timeout=REPLY_TIMEOUT)
        self.count = 0

    def ask(self) -> Reply:
        country, question = QUESTIONS[self.count % len(QUESTIONS)]
        phone = random_mobile(country)
        form = {
            "MessageSid": f"SM{os.getpid():08x}{self.count:024x}",
            "AccountSid": TWILIO_SID,
            "From": f"whatsapp:{phone}",
            "To": f"whatsapp:{WHATSAPP_SENDER}",
            "Body": question,
            "NumMedia": "0",
        }
        self.count += 1
        signature = RequestValidator(TWILIO_TOKEN).compute_signature(self.url, form)
        cursor = self.fake.stats()["accepted"]
        sent_at = time.time()
        self.client.post(
            self.url,
            content=urlencode(form),
            headers={
                "X-Twilio-Signature": signature,
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        deadline = time.monotonic() + REPLY_TIMEOUT
        # Mexican mobiles come back as +52 1 … on WhatsApp: match the national digits.
        tail = phone[-10:]
        while (left := deadline - time.monotonic()) > 0:
            # A long poll, not a poll every few ms: the fake shares the machine with Faro.
            cursor, messages = self.fake.wait_for_messages(
                cursor, to_prefix="whatsapp:", timeout=left
            )
            for message in messages:
                if message.to.endswith(tail):
                    arrived = message.arrived_at
                    return Reply(sent_at, arrived - sent_at, arrived, form["MessageSid"])
        return Reply(sent_at, None, None, form["MessageSid"])

    def close(self) -> None:
        self.client.close()


STAGES = (
    "webhook (sent -> stored by the API)",
    "assistant (stored -> reply queued)",
    "send task (queued -> submitted)",
    "Twilio call (submitted -> arrived)",
)


def stages(factory: Any, replies: list[Reply]) -> dict[str, dict[str, float]]:
    """Where each answered reply's time went, from the rows' own timestamps (ms, p50/p95)."""
    answered = {r.sid: r for r in replies if r.arrived_at is not None}
    if len(answered) < 2:
        return {}
    with factory() as session:
        rows = session.execute(
            text(
                "SELECT i.twilio_sid, i.created_at, o.created_at, o.submitted_at"
                " FROM message i JOIN message o ON o.contact_id = i.contact_id"
                " AND o.direction = 'outbound' AND o.purpose = 'reply'"
                " WHERE i.twilio_sid = ANY(:sids)"
            ),
            {"sids": list(answered)},
        ).all()
    spans: dict[str, list[float]] = {name: [] for name in STAGES}
    for sid, stored, queued, submitted in rows:
        reply = answered[sid]
        marks = [reply.sent_at, stored, queued, submitted, reply.arrived_at]
        times = [m if isinstance(m, float) else m.replace(tzinfo=dt.UTC).timestamp() for m in marks]
        for name, a, b in zip(STAGES, times, times[1:], strict=False):
            spans[name].append(b - a)
    return {
        name: {k: v for k, v in latency_summary(values).items() if k in ("p50_ms", "p95_ms")}
        for name, values in spans.items()
        if len(values) >= 2
    }


def p95_ms(replies: list[Reply]) -> float | None:
    """p95 with a missing reply counted as the 10 s wait for it."""
    values = [r.latency if r.latency is not None else REPLY_TIMEOUT for r in replies]
    return latency_summary(values)["p95_ms"] if len(values) >= 2 else None


def summary(replies: list[Reply]) -> dict[str, Any]:
    answered = [r.latency for r in replies if r.latency is not None]
    figures: dict[str, Any] = {"asked": len(replies), "unanswered": len(replies) - len(answered)}
    if len(answered) >= 2:
        figures |= latency_summary(answered)
        figures["p95_ms_missing_as_10s"] = p95_ms(replies)
    return figures


def beat(
    database_url: str,
    redis_url: str,
    public_url: str,
    due: dt.datetime,
    big: int,
    *,
    stop: Any,
    out: Any,
) -> None:
    """``campaigns.tick`` every ``BEAT_EVERY`` seconds until ``big`` deliveries are queued."""
    from campaigns.db import make_engine, make_sessionmaker
    from campaigns.outbox import install_publisher
    from campaigns.settings import Settings
    from workers.celery_app import celery_publisher, make_celery

    settings = Settings(
        env="test", database_url=database_url, redis_url=redis_url, public_url=public_url
    )
    install_publisher(celery_publisher(make_celery(settings)))
    factory = make_sessionmaker(make_engine(database_url))
    queued = 0
    while not stop.is_set() and queued < big:
        began = time.time()
        report = engine.tick(factory, now=due + dt.timedelta(minutes=1))
        queued += report.queued
        out.put({"at": began, "s": round(time.time() - began, 2), "queued": report.queued})
        stop.wait(max(0.0, BEAT_EVERY - (time.time() - began)))
    out.put({"beat_cpu_s": round(time.process_time(), 2)})


def assistant_phase(
    stack: BenchStack,
    meter: CpuMeter,
    *,
    org_id: int,
    community_id: int,
    big: int,
    idle: int,
) -> dict[str, Any]:
    asker = Asker(stack)
    try:
        for _ in range(10):  # Rasa's first answers are slow: not measured
            asker.ask()
        load_idle = load_average()
        idle_replies = [asker.ask() for _ in range(idle)]

        due = approved_campaign(stack, org_id=org_id, community_id=community_id, body=BODY)
        start_index = stack.twilio.stats()["accepted"]
        ticks: list[dict[str, float]] = []

        # Beat in a process of its own, as in production: a tick is seconds of Python (planning
        # 50,000 deliveries, publishing 20,000 ids), and in this process it would hold the GIL
        # the Asker needs to time its questions.
        context = multiprocessing.get_context("spawn")
        ticks_out: Any = context.Queue()
        stop_beat = context.Event()
        beat_process = context.Process(
            target=beat,
            args=(stack.database_url, stack.redis_url, stack.base_url, due, big),
            kwargs={"stop": stop_beat, "out": ticks_out},
            name="beat",
            daemon=True,
        )

        load_busy = load_average()
        meter.start()
        started = time.time()
        beat_process.start()
        busy_replies: list[Reply] = []
        sent_sms = 0
        cursor = start_index
        first = last = 0.0
        deadline = time.monotonic() + 1800
        while sent_sms < big and time.monotonic() < deadline:
            busy_replies.append(asker.ask())
            messages = stack.twilio.messages_since(cursor)
            for message in messages:
                if not message.to.startswith("whatsapp:"):
                    sent_sms += 1
                    last = message.received_at
                    first = first or last
            cursor += len(messages)
        cpu = meter.stop()
        stop_beat.set()
        beat_process.join(timeout=120)
        while not ticks_out.empty():
            record = ticks_out.get()
            if "beat_cpu_s" in record:
                cpu["beat process (tick)"] = record["beat_cpu_s"]
            else:
                ticks.append(record)
    finally:
        asker.close()
    during = [r for r in busy_replies if r.sent_at >= first and r.sent_at <= last]
    planning = [r for r in busy_replies if r.sent_at < first]
    drain = wait_callbacks_drained(stack.twilio)
    # The ratio of the answered replies' p95s; the unanswered are reported beside it.
    idle_p95 = summary(idle_replies).get("p95_ms")
    busy_p95 = summary(during).get("p95_ms")
    ratio = busy_p95 / idle_p95 if idle_p95 and busy_p95 else None
    return {
        "idle": summary(idle_replies) | {"load_before": load_idle},
        "during_sending": summary(during),
        "stages_idle": stages(stack.factory, idle_replies),
        "stages_during_sending": stages(stack.factory, during),
        "during_first_tick_before_first_send": summary(planning),
        "campaign": {
            "recipients": big,
            "sent": sent_sms,
            "first_to_last_s": round(last - first, 2),
            "per_s": round((sent_sms - 1) / (last - first), 1) if last > first else None,
            "tick_start_to_first_send_s": round(first - started, 2),
            "ticks": ticks,
            "callbacks_drained_after_s": round(drain, 1),
            "load_before": load_busy,
            "cpu_s": cpu,
        },
        "p95_ratio": round(ratio, 2) if ratio else None,
    }
