"""``GET /metrics``: behind its token, labelled by route template (never an id or a number),
with queue depths, outbound counts by status and error code, and Twilio and assistant latency.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import http.server
import threading
from typing import Any

import pytest
import redis as redis_lib
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api.app import create_app
from campaigns import metrics
from campaigns.analytics.models import Watermark
from campaigns.bot_client import AssistantUnavailable, BotClient
from campaigns.contacts.models import Channel
from campaigns.messaging.models import Direction, Message, MessageStatus, Purpose
from campaigns.messaging.twilio_gateway import OutboundRequest, TwilioGateway
from campaigns.settings import Settings
from tests.factories import (
    TWILIO_SID,
    TWILIO_TOKEN,
    auth,
    make_organization,
    make_sender,
    make_token,
    make_user,
    random_mobile,
    signed_post,
    twilio_form,
)
from tests.fakes.twilio import FakeTwilio, Fault

TOKEN = "metrics-token-0123456789-abcdefghijklmnop"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(client: TestClient) -> str:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return str(response.text)


@pytest.fixture
def metered(client: TestClient, settings: Settings) -> TestClient:
    """The real app over the test's transaction, with a metrics token set."""
    app: Any = client.app
    app.state.settings = settings.model_copy(update={"metrics_token": SecretStr(TOKEN)})
    return client


def test_metrics_need_the_token(metered: TestClient) -> None:
    assert metered.get("/metrics").status_code == 401
    wrong = metered.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["message"].startswith("send Authorization: Bearer")
    assert metered.get("/metrics", headers={"Authorization": TOKEN}).status_code == 401
    text = scrape(metered)
    assert "faro_http_requests_total" in text
    # Read at scrape time from the test's PostgreSQL and Redis: both answered.
    assert value(text, "faro_metrics_source_up", source="database") == 1
    assert value(text, "faro_metrics_source_up", source="redis") == 1
    for family in ("faro_queue_depth", "faro_outbound_messages", "faro_rollup_lag_seconds"):
        assert f"# TYPE {family} gauge" in text, family


def test_with_rabbitmq_as_broker_no_redis_queue_is_read(
    client: TestClient, settings: Settings
) -> None:
    app: Any = client.app
    app.state.settings = settings.model_copy(
        update={"metrics_token": SecretStr(TOKEN), "broker_url": "amqp://faro:pw@rabbitmq:5672//"}
    )
    text = scrape(client)
    assert "faro_queue_depth" not in text, "Redis lists say nothing about RabbitMQ's queues"
    assert value(text, "faro_metrics_source_up", source="database") == 1


def test_production_without_a_token_serves_no_metrics(engine: Engine, redis_url: str) -> None:
    settings = Settings(
        env="production",
        database_url=str(engine.url.render_as_string(hide_password=False)),
        redis_url=redis_url,
        public_url="https://faro.example.org",
        secret_key="s" * 8 + "0123456789abcdefghijklmnopqrstuvwxyz",
        hash_key="h" * 8 + "0123456789abcdefghijklmnopqrstuvwxyz",
        actions_token="a" * 8 + "0123456789abcdefghijklmnopqrstuvwxyz",
        encryption_keys="MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=",
        twilio_account_sid=TWILIO_SID,
        twilio_auth_token=TWILIO_TOKEN,
    )
    with TestClient(create_app(settings, engine=engine)) as client:
        response = client.get("/metrics")
    assert response.status_code == 404
    assert "FARO_METRICS_TOKEN" in response.json()["error"]["message"]


def test_development_without_a_token_serves_metrics(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 200


def test_requests_are_counted_by_route_template_without_ids_or_numbers(
    metered: TestClient, db: Session
) -> None:
    org = make_organization(db)
    token = make_token(db, user=make_user(db, org=org))
    sender = make_sender(db, org=org)
    db.commit()
    route = "/v1/contacts/{contact_id}"
    before = scrape(metered)
    for contact_id in (987654321, 987654322, 987654323):
        assert metered.get(f"/v1/contacts/{contact_id}", headers=auth(token)).status_code == 404
    phone = random_mobile("MX")
    form = twilio_form(sender=sender, phone=phone, body="hola")
    assert signed_post(metered, "/webhooks/twilio/messages", form).status_code == 200
    metered.get("/no/such/page/5512345678")
    after = scrape(metered)
    counted = "faro_http_requests_total"
    assert value(after, counted, method="GET", route=route, status="404") - value(
        before, counted, method="GET", route=route, status="404"
    ) == pytest.approx(3)
    webhook = {"method": "POST", "route": "/webhooks/twilio/messages", "status": "200"}
    assert value(after, counted, **webhook) - value(before, counted, **webhook) == 1
    assert value(after, counted, method="GET", route="unmatched", status="404") >= 1
    assert value(after, "faro_http_request_duration_seconds_count", route=route) >= 3
    for leaked in ("987654321", phone, phone[1:], "5512345678"):
        assert leaked not in after, f"{leaked} reached a metric label"


def test_odd_methods_share_one_label(metered: TestClient) -> None:
    metered.request("PROPFIND", "/healthz")
    after = scrape(metered)
    assert "PROPFIND" not in after
    assert value(after, "faro_http_requests_total", method="other", route="/healthz", status="405")


def test_queue_depth_is_read_from_redis_at_scrape_time(redis_url: str) -> None:
    client = redis_lib.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/11")
    keys = ["conversation", "bulk", "bulk\x06\x163", "unacked"]
    client.delete(*keys)
    try:
        client.rpush("bulk", *[f"task-{n}" for n in range(5)])
        client.rpush("bulk\x06\x163", "prioritised")
        client.rpush("conversation", "reply")
        client.hset("unacked", mapping={"t1": "x", "t2": "y"})
        registry_text = _collect(metrics.StateCollector(engine=None, redis=client))
    finally:
        client.delete(*keys)
        client.close()
    assert value(registry_text, "faro_queue_depth", queue="bulk") == 6
    assert value(registry_text, "faro_queue_depth", queue="conversation") == 1
    assert value(registry_text, "faro_queue_unacked") == 2
    assert value(registry_text, "faro_metrics_source_up", source="redis") == 1


def test_a_redis_that_is_down_shows_as_down_and_the_scrape_still_answers() -> None:
    dead = redis_lib.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    text = _collect(metrics.StateCollector(engine=None, redis=dead))
    assert value(text, "faro_metrics_source_up", source="redis") == 0
    assert "faro_queue_depth" not in text


def _collect(collector: metrics.StateCollector) -> str:
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry).decode()


def test_outbound_messages_by_status_and_error_code(db: Session) -> None:
    org = make_organization(db)
    before = _counts(db)
    now = dt.datetime.now(dt.UTC)
    rows = [
        (MessageStatus.failed, 30007, now),
        (MessageStatus.failed, 30007, now),
        (MessageStatus.undelivered, 63016, now),
        (MessageStatus.delivered, None, now),
        (MessageStatus.delivered, None, now - dt.timedelta(days=2)),  # outside the window
    ]
    for status, code, created in rows:
        db.add(
            Message(
                organization_id=org.id,
                direction=Direction.outbound,
                channel=Channel.whatsapp,
                status=status,
                error_code=code,
                purpose=Purpose.campaign,
                created_at=created,
            )
        )
    db.add(  # inbound messages are not sends
        Message(
            organization_id=org.id,
            direction=Direction.inbound,
            channel=Channel.whatsapp,
            status=MessageStatus.received,
            created_at=now,
        )
    )
    db.flush()
    after = _counts(db)
    added = {key: after[key] - before.get(key, 0) for key in after}
    assert {k: v for k, v in added.items() if v} == {
        ("failed", "30007"): 2,
        ("undelivered", "63016"): 1,
        ("delivered", "none"): 1,  # the one from two days ago is outside the 24 hours
    }


def _counts(db: Session) -> dict[tuple[str, str], int]:
    return {(s, c): n for s, c, n in metrics.outbound_counts(db.connection())}


def test_rollup_lag_per_source_from_the_watermarks(db: Session) -> None:
    now = dt.datetime.now(dt.UTC)
    db.query(Watermark).delete()
    db.add_all(
        [
            Watermark(source="message_status_event", last_id=10, seen_id=12, seen_at=now),
            Watermark(source="turn", last_id=0, seen_id=0, seen_at=now - dt.timedelta(minutes=5)),
            Watermark(source="link_click", last_id=0, seen_id=0, seen_at=None),  # never looked
        ]
    )
    db.flush()
    lag = dict(metrics.rollup_lag(db.connection(), now=now + dt.timedelta(seconds=30)))
    assert lag == {"message_status_event": 30.0, "turn": 330.0}


def _histogram_count(histogram_name: str, outcome: str) -> float:
    from prometheus_client import REGISTRY

    got = REGISTRY.get_sample_value(f"{histogram_name}_count", {"outcome": outcome})
    return got or 0.0


def test_twilio_calls_are_timed_by_outcome(fake_twilio: FakeTwilio) -> None:
    name = "faro_twilio_request_duration_seconds"
    ok, rejected = _histogram_count(name, "ok"), _histogram_count(name, "rejected")
    request = OutboundRequest(
        message_id=1,
        to="+15550001111",
        channel="sms",
        from_address="+15005550006",
        messaging_service_sid=None,
        body="Hola",
        content_sid=None,
        content_variables=None,
        status_callback=None,
        validity_period=None,
    )

    async def two_sends() -> list[bool]:
        gateway = TwilioGateway(
            account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN, api_url=fake_twilio.base_url
        )
        try:
            first = await gateway.submit(request)
            fake_twilio.inject(Fault("reject", code=21211))
            second = await gateway.submit(request)
        finally:
            await gateway.close()
        return [first.ok, second.ok]

    assert asyncio.run(two_sends()) == [True, False]
    assert _histogram_count(name, "ok") == ok + 1
    assert _histogram_count(name, "rejected") == rejected + 1


class _Rasa(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b'[{"recipient_id": "x", "text": "hola"}]'
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


def test_assistant_turns_are_timed_by_outcome() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Rasa)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    bot = BotClient(f"http://127.0.0.1:{server.server_address[1]}", timeout=2)
    name = "faro_bot_reply_duration_seconds"
    before = {o: _histogram_count(name, o) for o in ("ok", "rejected", "failed")}
    try:
        assert bot.turn(sender="p", text="hola", metadata={})[0]["text"] == "hola"
        _Rasa.status = 500
        with pytest.raises(AssistantUnavailable):
            bot.turn(sender="p", text="hola", metadata={})
    finally:
        _Rasa.status = 200
        server.shutdown()
        server.server_close()
    with pytest.raises(AssistantUnavailable):
        bot.turn(sender="p", text="hola", metadata={})  # nobody listens any more
    bot.close()
    after = {o: _histogram_count(name, o) for o in ("ok", "rejected", "failed")}
    assert {o: after[o] - before[o] for o in after} == {"ok": 1, "rejected": 1, "failed": 1}
