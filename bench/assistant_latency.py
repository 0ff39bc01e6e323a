"""Reply latency of the assistant, end to end, with the real trained Rasa.

From the signed inbound webhook reaching the API to the reply's send request arriving at the fake
Twilio (150 ms of Twilio latency is not added here: the clock stops when Twilio *receives* the
request).  Real PostgreSQL, Redis, a `faro worker`, Rasa's server and action server.  Prints
p50/p95/p99 over N messages sent one after another, in four languages.

    .venv/bin/python -m bench.assistant_latency [--messages 500]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx
from twilio.request_validator import RequestValidator

from campaigns.knowledge.seed import seed_knowledge
from campaigns.messaging.senders import create_sender
from campaigns.organizations.service import create_organization
from tests.conftest import PG_ADMIN_URL
from tests.factories import TWILIO_SID, TWILIO_TOKEN, random_mobile
from tests.stack import Assistant, free_port, running_stack

SENDER = "+14155238899"
QUESTIONS = [
    ("MX", "como pido asilo en mexico"),
    ("GT", "necesito trabajo en canada como aplico"),
    ("HT", "kijan pou m jwenn paspò mwen"),
    ("HT", "patwon an pran paspò m epi li pa kite m ale"),
    ("US", "how do I send money home safely"),
    ("MX", "me ofrecieron una visa si pago 500 dolares es real"),
    ("HN", "donde hay un albergue para dormir hoy"),
    ("GP", "bonjour comment demander l'asile au mexique"),
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=500)
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="faro-bench-assistant-"))
    api_port = free_port()
    assistant = Assistant(logs, faro_url=f"http://127.0.0.1:{api_port}")
    os.environ["FARO_RASA_URL"] = assistant.rasa_url
    with running_stack(PG_ADMIN_URL, logs, redis_db=10, port=api_port) as stack:
        with stack.session() as session, session.begin():
            org = create_organization(session, name="Latency bench", country="MX")
            create_sender(
                session,
                organization_id=org.id,
                channel="whatsapp",
                address=SENDER,
                rate_per_second=1000,
            )
            seed_knowledge(session, organization_id=org.id)
        started = time.perf_counter()
        assistant.start()
        print(f"Rasa ready in {time.perf_counter() - started:.1f} s")
        url = f"{stack.base_url}/webhooks/twilio/messages"
        latencies: list[float] = []
        timeouts = 0
        with httpx.Client(timeout=10) as client:
            for i in range(args.messages):
                country, text = QUESTIONS[i % len(QUESTIONS)]
                phone = random_mobile(country)
                form = {
                    "MessageSid": f"SM{i:032x}",
                    "AccountSid": TWILIO_SID,
                    "From": f"whatsapp:{phone}",
                    "To": f"whatsapp:{SENDER}",
                    "Body": text,
                    "NumMedia": "0",
                }
                signature = RequestValidator(TWILIO_TOKEN).compute_signature(url, form)
                before = len(stack.fake.messages)
                t0 = time.perf_counter()
                client.post(
                    url,
                    content=urlencode(form),
                    headers={
                        "X-Twilio-Signature": signature,
                        "Content-Type": "application/x-www-form-urlencoded",
                    },
                )
                deadline = t0 + 10
                while len(stack.fake.messages) == before and time.perf_counter() < deadline:
                    time.sleep(0.002)
                if len(stack.fake.messages) == before:
                    timeouts += 1
                    continue
                latencies.append((time.perf_counter() - t0) * 1000)
        assistant.stop()
    os.environ.pop("FARO_RASA_URL", None)
    print(f"messages {args.messages}, replies timed {len(latencies)}, no reply in 10 s {timeouts}")
    if latencies:
        print(
            f"first reply at Twilio: p50 {statistics.median(latencies):.0f} ms, "
            f"p95 {percentile(latencies, 0.95):.0f} ms, p99 {percentile(latencies, 0.99):.0f} ms,"
            f" max {max(latencies):.0f} ms"
        )


if __name__ == "__main__":
    main()
