"""The fake Twilio, driven through the real ``twilio`` client and the real ``RequestValidator``."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from .twilio import CallbackOptions, FakeTwilio, Fault, twilio_client_for

SID = "AC" + "1f" * 16
TOKEN = "test-auth-token"
FROM = "+15005550006"
TO = "+34600111222"
SERVICE = "MG" + "2e" * 16
TEMPLATE = "HX" + "3d" * 16


class CallbackSink:
    """A tiny HTTP server standing in for Faro's status-callback endpoint.

    It answers 200, or 500 on ``/fail``, and keeps what arrived in arrival order.
    """

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str], str]] = []  # url, params, signature
        self._arrived = threading.Condition()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                url = f"{sink.base_url}{self.path}"
                with sink._arrived:
                    params = dict(parse_qsl(body, keep_blank_values=True))
                    sink.received.append((url, params, self.headers["X-Twilio-Signature"]))
                    sink._arrived.notify_all()
                self.send_response(500 if self.path == "/fail" else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.url = f"{self.base_url}/twilio/status"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def wait_for(self, count: int) -> list[tuple[str, dict[str, str], str]]:
        with self._arrived:
            assert self._arrived.wait_for(lambda: len(self.received) >= count, timeout=10)
            return list(self.received)

    def statuses(self, sid: str) -> list[str]:
        return [p["MessageStatus"] for _, p, _ in self.received if p["MessageSid"] == sid]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio(account_sid=SID, auth_token=TOKEN, seed=1234) as server:
        yield server


@pytest.fixture
def client(fake: FakeTwilio) -> Client:
    return twilio_client_for(fake.base_url, SID, TOKEN)


@pytest.fixture
def sink() -> Iterator[CallbackSink]:
    server = CallbackSink()
    yield server
    server.close()


def send(client: Client, to: str = TO, **options: Any) -> Any:
    return client.messages.create(to=to, **({"from_": FROM, "body": "Hola"} | options))


def outcome(client: Client, **options: Any) -> object:
    """``"queued"`` when the message is accepted, else the Twilio error code."""
    try:
        return send(client, **options).status
    except TwilioRestException as exc:
        return exc.code


def test_create_answers_like_twilio_and_is_recorded(fake: FakeTwilio, client: Client) -> None:
    message = send(client, body="Tu cita es el lunes", validity_period=600)

    assert re.fullmatch(r"SM[0-9a-f]{32}", message.sid)
    assert (message.account_sid, message.to, message.from_) == (SID, TO, FROM)
    assert (message.status, message.direction, message.num_segments) == (
        "queued",
        "outbound-api",
        "1",
    )
    assert (message.price, message.error_code, message.api_version) == (None, None, "2010-04-01")
    assert message.uri == f"/2010-04-01/Accounts/{SID}/Messages/{message.sid}.json"
    assert message.subresource_uris["media"].endswith(f"/Messages/{message.sid}/Media.json")
    assert message.date_created.tzinfo is not None  # parsed from RFC 2822 by the client
    [recorded] = fake.messages
    assert recorded.sid == message.sid
    assert recorded.params == {
        "To": TO,
        "From": FROM,
        "Body": "Tu cita es el lunes",
        "ValidityPeriod": "600",
    }
    assert client.messages(message.sid).fetch().body == "Tu cita es el lunes"


def test_segments_media_and_whatsapp_templates(fake: FakeTwilio, client: Client) -> None:
    assert send(client, body="a" * 161).num_segments == "2"
    assert send(client, body="ñ" * 160).num_segments == "1"  # ñ is in the GSM alphabet
    assert send(client, body="€" * 81).num_segments == "2"  # € takes two GSM septets
    assert send(client, body="ş" * 71).num_segments == "2"  # UCS-2: 70 per single SMS

    media = send(client, body=None, media_url=["https://x.test/a.jpg", "https://x.test/b.jpg"])
    assert (media.sid[:2], media.num_media) == ("MM", "2")
    assert fake.messages[-1].media_urls == ("https://x.test/a.jpg", "https://x.test/b.jpg")

    variables = json.dumps({"1": "Ana"})
    template = client.messages.create(
        to=f"whatsapp:{TO}",
        messaging_service_sid=SERVICE,
        content_sid=TEMPLATE,
        content_variables=variables,
    )
    assert (template.from_, template.messaging_service_sid) == ("whatsapp:+15005550006", SERVICE)
    assert fake.messages[-1].params["ContentVariables"] == variables


@pytest.mark.parametrize(("account_sid", "token"), [(SID, "wrong"), ("AC" + "9" * 32, TOKEN)])
def test_wrong_credentials_are_refused(fake: FakeTwilio, account_sid: str, token: str) -> None:
    with pytest.raises(TwilioRestException) as caught:
        send(twilio_client_for(fake.base_url, account_sid, token))

    assert (caught.value.status, caught.value.code) == (401, 20003)
    assert fake.messages == []
    assert fake.stats()["calls"] == 1


@pytest.mark.parametrize(
    ("options", "code"),
    [
        ({"to": ""}, 21604),
        ({"from_": None}, 21603),
        ({"body": None}, 21602),
    ],
)
def test_incomplete_requests_get_twilio_validation_errors(
    fake: FakeTwilio, client: Client, options: dict[str, Any], code: int
) -> None:
    with pytest.raises(TwilioRestException) as caught:
        send(client, **options)

    assert (caught.value.status, caught.value.code) == (400, code)
    assert fake.messages == []
    assert fake.stats()["rejected"] == 1


def test_error_body_has_twilio_shape(fake: FakeTwilio) -> None:
    fake.inject(Fault("rate_limit", retry_after=7))
    response = httpx.post(
        f"{fake.base_url}/2010-04-01/Accounts/{SID}/Messages.json",
        data={"To": TO, "From": FROM, "Body": "x"},
        auth=(SID, TOKEN),
    )

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert response.json() == {
        "code": 20429,
        "message": "Too Many Requests",
        "more_info": "https://www.twilio.com/docs/errors/20429",
        "status": 429,
    }


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        (Fault("rate_limit"), 429, 20429),
        (Fault("server_error"), 500, 20500),
        (Fault("unavailable"), 503, 20503),
        (Fault("reject", code=21610), 400, 21610),
        (Fault("reject", code=21211), 400, 21211),
        (Fault("reject", code=21614), 400, 21614),
        (Fault("reject", code=63003), 400, 63003),
        (Fault("reject", code=63024), 400, 63024),
    ],
)
def test_injected_fault_hits_the_next_call_only(
    fake: FakeTwilio, client: Client, fault: Fault, status: int, code: int
) -> None:
    fake.inject(fault)

    with pytest.raises(TwilioRestException) as caught:
        send(client)
    assert (caught.value.status, caught.value.code) == (status, code)
    assert send(client).status == "queued"
    assert len(fake.messages) == 1
    assert fake.stats()["calls"] == 2


def test_whatsapp_window_error_only_hits_whatsapp(fake: FakeTwilio, client: Client) -> None:
    fake.inject(Fault("reject", code=63016, times=None))

    assert send(client).status == "queued"
    with pytest.raises(TwilioRestException) as caught:
        send(client, to=f"whatsapp:{TO}", from_=f"whatsapp:{FROM}")
    assert caught.value.code == 63016


def test_faults_can_target_a_recipient_a_count_and_a_fraction(
    fake: FakeTwilio, client: Client
) -> None:
    unsubscribed = "+34600999888"
    fake.inject(Fault("reject", code=21610, to=unsubscribed, times=None))
    fake.inject(Fault("server_error", times=2))

    for _ in range(2):
        with pytest.raises(TwilioRestException, match="unsubscribed"):
            send(client, to=unsubscribed)
    assert [outcome(client) for _ in range(3)] == [20500, 20500, "queued"]

    fake.reset()
    fake.inject(Fault("unavailable", rate=0.5, times=None))
    outcomes = [outcome(client) for _ in range(40)]
    assert set(outcomes) == {"queued", 20503}
    assert fake.stats()["accepted"] == outcomes.count("queued") == len(fake.messages)
    assert fake.stats()["calls"] == 40


def test_dropped_connection_sends_nothing(fake: FakeTwilio, client: Client) -> None:
    fake.inject(Fault("drop"))

    with pytest.raises(requests.exceptions.ConnectionError):
        send(client)
    assert fake.messages == []
    assert send(client).status == "queued"


def test_timeout_leaves_a_message_the_client_never_heard_of(fake: FakeTwilio) -> None:
    fake.inject(Fault("timeout", seconds=5))

    with pytest.raises(requests.exceptions.ReadTimeout):
        send(twilio_client_for(fake.base_url, SID, TOKEN, timeout=0.3))
    assert len(fake.messages) == 1  # what a retry would send a second time


def test_latency_is_added_to_every_call(fake: FakeTwilio, client: Client) -> None:
    fake.latency = 0.2

    started = time.perf_counter()
    send(client)
    assert time.perf_counter() - started >= 0.2


def test_slow_calls_are_served_concurrently(fake: FakeTwilio, client: Client) -> None:
    fake.latency = 0.5

    with ThreadPoolExecutor(max_workers=50) as pool:
        sids = list(pool.map(lambda _: send(client).sid, range(50)))

    assert len(set(sids)) == len(fake.messages) == 50
    assert fake.stats()["max_in_flight"] > 25  # 1 if the latency blocked the server


def test_status_callbacks_are_signed_and_follow_the_lifecycle(
    fake: FakeTwilio, client: Client, sink: CallbackSink
) -> None:
    message = send(client, status_callback=sink.url)

    received = sink.wait_for(3)
    assert sink.statuses(message.sid) == ["queued", "sent", "delivered"]
    for url, params, signature in received:
        assert RequestValidator(TOKEN).validate(url, params, signature)
        assert not RequestValidator("another-token").validate(url, params, signature)
        assert params["SmsSid"] == params["MessageSid"] == message.sid
        assert (params["AccountSid"], params["To"], params["From"]) == (SID, TO, FROM)
        assert params["ApiVersion"] == "2010-04-01"
        assert "ErrorCode" not in params
    assert [record.status_code for record in fake.wait_for_callbacks(3)] == [200, 200, 200]
    assert client.messages(message.sid).fetch().status == "delivered"


def test_whatsapp_callbacks_go_on_to_read(
    fake: FakeTwilio, client: Client, sink: CallbackSink
) -> None:
    message = client.messages.create(
        to=f"whatsapp:{TO}", messaging_service_sid=SERVICE, body="Hola", status_callback=sink.url
    )

    received = sink.wait_for(4)
    assert sink.statuses(message.sid) == ["queued", "sent", "delivered", "read"]
    params = received[-1][1]
    assert (params["ChannelPrefix"], params["ChannelToAddress"]) == ("whatsapp", TO)
    assert params["MessagingServiceSid"] == SERVICE


@pytest.mark.parametrize(
    ("fault", "lifecycle", "code"),
    [
        (Fault("failed"), ["queued", "failed"], 30008),
        (Fault("undelivered", code=63024), ["queued", "sent", "undelivered"], 63024),
    ],
)
def test_delivery_failures_report_an_error_code(
    fake: FakeTwilio,
    client: Client,
    sink: CallbackSink,
    fault: Fault,
    lifecycle: list[str],
    code: int,
) -> None:
    fake.inject(fault)
    message = send(client, status_callback=sink.url)

    received = sink.wait_for(len(lifecycle))
    assert message.status == "queued"
    assert sink.statuses(message.sid) == lifecycle
    assert [p.get("ErrorCode") for _, p, _ in received] == [None] * (len(lifecycle) - 1) + [
        str(code)
    ]
    fetched = client.messages(message.sid).fetch()
    assert (fetched.status, fetched.error_code) == (lifecycle[-1], code)


def test_callbacks_can_come_twice_and_out_of_order(
    fake: FakeTwilio, client: Client, sink: CallbackSink
) -> None:
    fake.callback_options = CallbackOptions(duplicate_rate=1.0, shuffle=True)
    sids = [send(client, status_callback=sink.url).sid for _ in range(5)]

    for url, params, signature in sink.wait_for(30):
        assert RequestValidator(TOKEN).validate(url, params, signature)
    lifecycle = ["queued", "sent", "delivered"]
    orders = [sink.statuses(sid) for sid in sids]
    assert all(sorted(order) == sorted(lifecycle * 2) for order in orders)
    assert any(order != sorted(order, key=lifecycle.index) for order in orders)
    assert client.messages(sids[0]).fetch().status == "delivered"


def test_callback_delay_and_disabling(fake: FakeTwilio, client: Client, sink: CallbackSink) -> None:
    fake.callback_options = CallbackOptions(delay=0.1)
    send(client, status_callback=sink.url)
    records = fake.wait_for_callbacks(3)
    assert (records[-1].sent_at - records[0].sent_at).total_seconds() >= 0.2

    fake.reset()
    fake.callback_options = CallbackOptions(enabled=False)
    message = send(client, status_callback=sink.url)
    while client.messages(message.sid).fetch().status != "delivered":
        time.sleep(0.05)
    assert fake.callbacks == []
    assert len(sink.received) == 3


def test_callback_answers_are_recorded(
    fake: FakeTwilio, client: Client, sink: CallbackSink
) -> None:
    send(client, status_callback=f"{sink.base_url}/fail")
    send(client, status_callback="http://127.0.0.1:9/nobody-listens")

    records = fake.wait_for_callbacks(6)
    answers = {(r.url.rsplit("/", 1)[-1], r.status_code) for r in records}
    assert answers == {("fail", 500), ("nobody-listens", None)}
    assert fake.stats()["callbacks_unanswered"] == 3


def test_http_control_api(fake: FakeTwilio, client: Client) -> None:
    with httpx.Client(base_url=f"{fake.base_url}/_fake") as control:
        answer = control.post("/config", json={"latency": 0.05, "callbacks": {"shuffle": True}})
        assert answer.status_code == 200
        assert (fake.latency, fake.callback_options.shuffle) == (0.05, True)
        assert control.post("/config", json={"callbacks": {"bogus": 1}}).status_code == 400
        assert control.post("/faults", json={"kind": "nope"}).status_code == 400

        faults = [{"kind": "reject", "code": 21211}, {"kind": "rate_limit", "retry_after": 2}]
        assert control.post("/faults", json=faults).status_code == 200
        assert [outcome(client) for _ in range(3)] == [21211, 20429, "queued"]

        [listed] = control.get("/messages").json()
        assert (listed["sid"], listed["params"]["To"]) == (fake.messages[0].sid, TO)
        stats = control.get("/stats").json()
        assert (stats["calls"], stats["accepted"], stats["rejected"]) == (3, 1, 2)

        assert control.post("/reset").status_code == 200
        assert control.get("/messages").json() == []
        assert control.get("/stats").json()["calls"] == 0


# twilio 9.13's asyncio client still builds aiohttp's deprecated BasicAuth on every call.
@pytest.mark.filterwarnings("ignore::DeprecationWarning:twilio")
def test_the_asyncio_client_reaches_it_the_same_way(fake: FakeTwilio) -> None:
    async def scenario() -> tuple[Any, TwilioRestException]:
        http = AsyncTwilioHttpClient()
        client = Client(SID, TOKEN, http_client=http)
        client.api.base_url = fake.base_url
        try:
            message = await client.messages.create_async(to=TO, from_=FROM, body="Hola")
            fake.inject(Fault("rate_limit"))
            with pytest.raises(TwilioRestException) as caught:
                await client.messages.create_async(to=TO, from_=FROM, body="Hola")
            return message, caught.value
        finally:
            await http.close()

    message, error = asyncio.run(scenario())
    assert message.status == "queued"
    assert (error.status, error.code) == (429, 20429)
    assert [m.sid for m in fake.messages] == [message.sid]


def test_fetching_an_unknown_message_is_404(client: Client) -> None:
    with pytest.raises(TwilioRestException) as caught:
        client.messages("SM" + "0" * 32).fetch()
    assert (caught.value.status, caught.value.code) == (404, 20404)


@pytest.mark.slow
def test_runs_as_a_separate_process() -> None:
    repo = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-m", "tests.fakes.twilio", "--account-sid", SID]
    command += ["--auth-token", TOKEN, "--port", "0", "--latency", "0.05"]
    with subprocess.Popen(command, cwd=repo, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            url = process.stdout.readline().split()[-1]
            client = twilio_client_for(url, SID, TOKEN)
            message = send(client)
            [listed] = httpx.get(f"{url}/_fake/messages").json()
            assert listed["sid"] == message.sid
            # A poller asks only for what it has not seen: ?since= is an offset.
            later = send(client)
            [newer] = httpx.get(f"{url}/_fake/messages", params={"since": 1}).json()
            assert newer["sid"] == later.sid
            assert httpx.get(f"{url}/_fake/messages", params={"since": 2}).json() == []
            # ?wait is a long poll: matching messages from an offset, and where to go on from.
            waited = httpx.get(
                f"{url}/_fake/wait", params={"since": 0, "to_prefix": TO[:4], "timeout": 5}
            ).json()
            assert waited["next"] == 2
            assert [m["sid"] for m in waited["messages"]] == [message.sid, later.sid]
            other: dict[str, str | float] = {"since": 0, "to_prefix": "whatsapp:", "timeout": 0.3}
            began = time.monotonic()
            assert httpx.get(f"{url}/_fake/wait", params=other).json() == {
                "next": 2,
                "messages": [],
            }
            assert time.monotonic() - began >= 0.3  # it waited for one before answering none
            bad = httpx.get(f"{url}/_fake/messages", params={"since": "x"})
            assert bad.status_code == 400 and "since" in bad.json()["error"]
            # ``lifecycles`` counts messages whose statuses are still to come: at 0, all final.
            deadline = time.monotonic() + 10
            while httpx.get(f"{url}/_fake/stats").json()["lifecycles"] and (
                time.monotonic() < deadline
            ):
                time.sleep(0.02)
            listing = httpx.get(f"{url}/_fake/messages").json()
            assert [m["status"] for m in listing] == ["delivered", "delivered"]
        finally:
            process.terminate()
        assert process.wait(timeout=10) == 0  # SIGTERM is a clean shutdown
