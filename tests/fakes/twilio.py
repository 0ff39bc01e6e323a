"""A fake Twilio Messaging API: a real HTTP server for tests and benchmarks.

Faro's sender talks to it through the real ``twilio`` client, so the whole path is exercised:
form encoding, basic auth, Twilio's error bodies, ``TwilioRestException`` and signed status
callbacks checked with the real ``RequestValidator``.

It serves the three Message endpoints of API 2010-04-01 (shapes from Twilio's OpenAPI spec)::

    POST /2010-04-01/Accounts/{AccountSid}/Messages.json         -> 201 message, or an error
    GET  /2010-04-01/Accounts/{AccountSid}/Messages.json         -> messages (To, From, DateSent>)
    GET  /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json   -> the message as it is now

In process (the server runs on its own event loop in a background thread)::

    with FakeTwilio(account_sid=SID, auth_token=TOKEN, latency=0.15) as fake:
        client = twilio_client_for(fake.base_url, SID, TOKEN)
        fake.inject(Fault("reject", code=21610, to="+15550001111"))
        fake.inject(Fault("rate_limit", retry_after=2, times=3))
        fake.callback_options = CallbackOptions(delay=0.05, duplicate_rate=0.2, shuffle=True)
        client.messages.create(to="+15550002222", from_="+15005550006", body="Hola",
                               status_callback="http://127.0.0.1:8000/twilio/status")
        fake.messages, fake.callbacks, fake.stats(), fake.wait_for_callbacks(3)

As a separate process (prints ``fake twilio listening on http://HOST:PORT`` once ready)::

    python -m tests.fakes.twilio --port 8790 --account-sid AC... --auth-token T --latency 0.15

and then controlled over HTTP (no auth, no latency): ``POST /_fake/config`` with
``{"latency": 0.15, "seed": 1, "callbacks": {"delay": 0.1, "shuffle": true}}``,
``POST /_fake/faults`` with one `Fault` object or a list of them (``{"kind": "reject",
"code": 21211, "times": 2}``), ``GET /_fake/messages[?since=N]``, ``GET /_fake/wait?since=N&
to_prefix=P&timeout=S`` (a long poll for the next matching messages), ``GET /_fake/callbacks``,
``GET /_fake/stats`` and ``POST /_fake/reset``.

Faults apply to create calls, first matching rule first (see `Fault`).  The lifecycle of an
accepted message, reported to its ``StatusCallback`` with ``X-Twilio-Signature``::

    queued -> sent -> delivered [-> read, whatsapp: only]
    queued -> failed                  (Fault "failed", ErrorCode set)
    queued -> sent -> undelivered     (Fault "undelivered", ErrorCode set)

aiohttp (a dependency of ``twilio``) serves rather than uvicorn because a fault must be able to
drop the connection without any response, and ``aiohttp.web.Request.transport`` allows it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import random
import secrets
import signal
import socket
import threading
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Literal

import aiohttp
from aiohttp import web
from requests.adapters import HTTPAdapter
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

API_VERSION = "2010-04-01"
DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
DEFAULT_AUTH_TOKEN = "fake-twilio-auth-token"
POOL_NUMBER = "+15005550006"  # the sender "assigned" when only MessagingServiceSid is given

ERRORS = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    20503: "Service Unavailable",
    21211: "The 'To' number is not a valid phone number.",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
    30003: "Unreachable destination handset",
    30008: "Unknown error",
    63003: "Channel could not find To address",
    63016: "Failed to send freeform message because you are outside the allowed window. "
    "If you are using WhatsApp, please use a Message Template.",
    63024: "Invalid message recipient",
}
WHATSAPP_ONLY_CODES = frozenset({63016})

FaultKind = Literal[
    "reject",
    "rate_limit",
    "server_error",
    "unavailable",
    "timeout",
    "drop",
    "failed",
    "undelivered",
]
_HTTP_FAULTS: dict[str, tuple[int, int | None]] = {  # kind -> (HTTP status, default code)
    "reject": (400, None),
    "rate_limit": (429, 20429),
    "server_error": (500, 20500),
    "unavailable": (503, 20503),
}
_DELIVERY_CODES = {"failed": 30008, "undelivered": 30003}


@dataclass
class Fault:
    """One rule of trouble for create calls; the first rule that matches a call fires.

    kind: ``reject`` (HTTP 400 with ``code``, e.g. 21610 21211 21614 63003 63016 63024),
    ``rate_limit`` (429, code 20429, ``Retry-After: retry_after``), ``server_error`` (500),
    ``unavailable`` (503), ``timeout`` (the message is accepted and recorded, but the answer
    comes ``seconds`` later: set it past the client's timeout), ``drop`` (the connection is
    closed without an answer, nothing recorded), ``failed`` / ``undelivered`` (accepted with
    201, then the lifecycle ends in that status with ErrorCode ``code``).
    A rule fires for the next ``times`` matching calls (``None``: for ever), each with
    probability ``rate``, and only for calls to ``to`` / on ``channel`` when given.  Codes only
    WhatsApp produces (63016) default to ``channel="whatsapp"``.
    """

    kind: FaultKind
    code: int | None = None
    times: int | None = 1
    rate: float = 1.0
    to: str | None = None
    channel: Literal["sms", "whatsapp"] | None = None
    retry_after: int = 1
    seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.kind not in (*_HTTP_FAULTS, *_DELIVERY_CODES, "timeout", "drop"):
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if self.code is None and self.kind in _HTTP_FAULTS:
            self.code = _HTTP_FAULTS[self.kind][1]
        elif self.code is None:
            self.code = _DELIVERY_CODES.get(self.kind)
        if self.kind == "reject" and self.code is None:
            raise ValueError("a reject fault needs a Twilio error code")
        if self.code in WHATSAPP_ONLY_CODES and self.channel is None:
            self.channel = "whatsapp"

    def applies_to(self, to: str) -> bool:
        return (self.to is None or self.to == to) and (
            self.channel is None or self.channel == _channel(to)
        )


@dataclass
class CallbackOptions:
    """How status callbacks go out: ``delay`` seconds before each one, a ``duplicate_rate``
    fraction of them sent twice, all of a message's callbacks ``shuffle``d, only the ``final``
    one (a receiver that missed the others), or none at all."""

    enabled: bool = True
    final_only: bool = False
    delay: float = 0.0
    duplicate_rate: float = 0.0
    shuffle: bool = False


@dataclass(frozen=True)
class SentMessage:
    """A create call the fake accepted: every form field as sent (``MediaUrl`` apart)."""

    sid: str
    params: dict[str, str]
    media_urls: tuple[str, ...]
    received_at: datetime  # accepted: after the added latency
    arrived_at: datetime | None = None  # when the server began handling the call


@dataclass(frozen=True)
class CallbackRecord:
    """One status callback POSTed; ``status_code`` is None when the receiver did not answer."""

    url: str
    params: dict[str, str]
    status_code: int | None
    error: str | None
    sent_at: datetime


def _channel(to: str) -> Literal["sms", "whatsapp"]:
    return "whatsapp" if to.startswith("whatsapp:") else "sms"


_GSM = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = set("^{}\\[~]|€\f")


def num_segments(body: str) -> int:
    """SMS segments for ``body``: GSM-7 fits 160 (153 per part), anything else UCS-2 70 (67)."""
    if all(c in _GSM or c in _GSM_EXTENDED for c in body):
        units, single, part = len(body) + sum(c in _GSM_EXTENDED for c in body), 160, 153
    else:
        units, single, part = len(body.encode("utf-16-le")) // 2, 70, 67
    return 1 if units <= single else -(-units // part)


def _error(status: int, code: int, headers: dict[str, str] | None = None) -> web.Response:
    body = {
        "code": code,
        "message": ERRORS.get(code, f"Error {code}"),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return web.json_response(body, status=status, headers=headers)


def _rfc2822(moment: datetime) -> str:
    return format_datetime(moment)  # "Thu, 24 Aug 2023 05:01:45 +0000", as Twilio writes it


class FakeTwilio:
    """The fake server and its controls; see the module docstring.  Thread-safe."""

    _STAT_NAMES = (
        "calls",  # every API call, rejected and faulted ones included
        "creates",
        "accepted",
        "rejected",
        "faults_fired",
        "callbacks_sent",
        "callbacks_unanswered",  # no HTTP answer at all (refused, timed out)
        "in_flight",
        "max_in_flight",
    )

    def __init__(
        self,
        *,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        callback_options: CallbackOptions | None = None,
        seed: int | None = None,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.host, self.port = host, port
        self.latency = latency
        self.callback_options = callback_options or CallbackOptions()
        self._validator = RequestValidator(auth_token)
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._messages: list[SentMessage] = []
        self._resources: dict[str, dict[str, Any]] = {}
        self._faults: list[Fault] = []
        self._callbacks: list[CallbackRecord] = []
        self._stats = dict.fromkeys(self._STAT_NAMES, 0)
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    # -- controls -----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def messages(self) -> list[SentMessage]:
        with self._lock:
            return list(self._messages)

    @property
    def callbacks(self) -> list[CallbackRecord]:
        with self._lock:
            return list(self._callbacks)

    def message(self, sid: str) -> dict[str, Any]:
        """The message resource as a GET would return it now (its status moves on)."""
        with self._lock:
            return dict(self._resources[sid])

    def stats(self) -> dict[str, int]:
        """Counters: ``calls`` counts every API call, rejected and faulted ones included."""
        with self._lock:
            return dict(self._stats)

    def inject(self, *faults: Fault) -> None:
        with self._lock:  # copies: firing uses up ``times``, the caller's object stays as given
            self._faults.extend(dataclasses.replace(fault) for fault in faults)

    def reset(self) -> None:
        """Forget messages, callbacks, counters and faults; latency and callback options stay."""
        with self._lock:
            self._messages.clear()
            self._resources.clear()
            self._faults.clear()
            self._callbacks.clear()
            self._stats = dict.fromkeys(self._STAT_NAMES, 0) | {
                "in_flight": self._stats["in_flight"]
            }
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._cancel_lifecycles)

    def _cancel_lifecycles(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    def wait_for_callbacks(self, count: int, timeout: float = 10.0) -> list[CallbackRecord]:
        """Block until at least ``count`` callbacks went out; TimeoutError otherwise."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._callbacks) >= count, timeout):
                raise TimeoutError(f"{len(self._callbacks)} of {count} callbacks after {timeout}s")
            return list(self._callbacks)

    # -- lifecycle of the server --------------------------------------------------------------

    def start(self) -> FakeTwilio:
        """Serve from a background thread; returns once the port is listening."""
        loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="fake-twilio", daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._open(), loop).result(timeout=10)
        except BaseException:
            self._loop = loop
            self.stop()
            raise
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._close(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def _open(self) -> None:
        self._loop = asyncio.get_running_loop()
        sock = socket.create_server((self.host, self.port), backlog=4096)
        self.port = sock.getsockname()[1]
        app = web.Application(middlewares=[self._api_calls])
        api = f"/{API_VERSION}/Accounts/{{account}}/Messages"
        app.router.add_post(f"{api}.json", self._create)
        app.router.add_get(f"{api}.json", self._list)
        app.router.add_get(f"{api}/{{sid}}.json", self._fetch)
        app.router.add_post("/_fake/config", self._http_config)
        app.router.add_post("/_fake/faults", self._http_faults)
        app.router.add_post("/_fake/reset", self._http_reset)
        app.router.add_get("/_fake/messages", self._http_messages)
        app.router.add_get("/_fake/wait", self._http_wait)
        app.router.add_get("/_fake/callbacks", self._http_callbacks)
        app.router.add_get("/_fake/stats", self._http_stats)
        # Cancel a handler whose client hung up, so a "timeout" fault does not outlive stop().
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5
        )
        await self._runner.setup()
        await web.SockSite(self._runner, sock, backlog=4096).start()
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    async def _close(self) -> None:
        self._cancel_lifecycles()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()
        self._runner, self._session = None, None

    # -- the Twilio API -----------------------------------------------------------------------

    @web.middleware
    async def _api_calls(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Count, delay and authenticate every API call (not the /_fake/ controls)."""
        if request.path.startswith("/_fake/"):
            return await handler(request)
        request["arrived_at"] = datetime.now(UTC)
        with self._lock:
            self._stats["calls"] += 1
            self._stats["in_flight"] += 1
            self._stats["max_in_flight"] = max(
                self._stats["max_in_flight"], self._stats["in_flight"]
            )
        try:
            await asyncio.sleep(self.latency)
            if not self._authenticated(request):
                headers = {"WWW-Authenticate": 'Basic realm="Twilio API"'}
                return _error(401, 20003, headers)
            return await handler(request)
        finally:
            with self._lock:
                self._stats["in_flight"] -= 1

    def _authenticated(self, request: web.Request) -> bool:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        try:
            login, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
            return False
        return (
            scheme.lower() == "basic"
            and secrets.compare_digest(login, self.account_sid)
            and secrets.compare_digest(password, self.auth_token)
            and request.match_info.get("account") == self.account_sid
        )

    async def _create(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        params = {key: str(value) for key, value in form.items() if key != "MediaUrl"}
        media = tuple(str(url) for url in form.getall("MediaUrl", []))
        to = params.get("To", "")
        with self._lock:
            self._stats["creates"] += 1
            code = self._invalid(params, media)
            fault = None if code else self._next_fault(to)
            if code or (fault and fault.kind in (*_HTTP_FAULTS, "drop")):
                self._stats["rejected"] += 1
        if code:
            return _error(400, code)
        if fault is not None and fault.kind in _HTTP_FAULTS:
            status = _HTTP_FAULTS[fault.kind][0]
            retry = {"Retry-After": str(fault.retry_after)} if fault.kind == "rate_limit" else None
            return _error(status, fault.code or 0, retry)
        if fault is not None and fault.kind == "drop":
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)  # never reaches the client
        resource = self._accept(params, media, fault, request.get("arrived_at"))
        if fault is not None and fault.kind == "timeout":
            await asyncio.sleep(fault.seconds)
        return web.json_response(resource, status=201)

    async def _list(self, request: web.Request) -> web.StreamResponse:
        """``GET Messages.json``: filtered by ``To``, ``From`` and ``DateSent>`` (sent or, not
        yet sent, created at or after it), newest first, one page."""
        query = request.query
        after: datetime | None = None
        if query.get("DateSent>"):
            try:
                after = datetime.fromisoformat(query["DateSent>"].replace("Z", "+00:00"))
            except ValueError:
                return _error(400, 20001)
            if after.tzinfo is None:
                after = after.replace(tzinfo=UTC)
        size = min(int(query.get("PageSize", "50") or 50), 1000)
        with self._lock:
            found = [
                dict(self._resources[m.sid])
                for m in reversed(self._messages)
                if (not query.get("To") or m.params.get("To") == query["To"])
                and (not query.get("From") or m.params.get("From") == query["From"])
                and (after is None or m.received_at >= after)
                and m.sid in self._resources
            ][:size]
        uri = request.path
        return web.json_response(
            {
                "messages": found,
                "end": max(len(found) - 1, 0),
                "first_page_uri": f"{uri}?PageSize={size}&Page=0",
                "next_page_uri": None,
                "page": 0,
                "page_size": size,
                "previous_page_uri": None,
                "start": 0,
                "uri": f"{uri}?PageSize={size}&Page=0",
            }
        )

    async def _fetch(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            resource = self._resources.get(request.match_info["sid"])
            return web.json_response(resource) if resource else _error(404, 20404)

    @staticmethod
    def _invalid(params: dict[str, str], media: tuple[str, ...]) -> int | None:
        """Twilio's own order of complaints about a create request."""
        if not params.get("To"):
            return 21604
        if not (params.get("From") or params.get("MessagingServiceSid")):
            return 21603
        if not (params.get("Body") or params.get("ContentSid") or media):
            return 21602
        return None

    def _next_fault(self, to: str) -> Fault | None:
        """The first rule matching this call fires and uses up one of its ``times``."""
        for fault in self._faults:
            if fault.applies_to(to) and self._random.random() < fault.rate:
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                self._stats["faults_fired"] += 1
                return fault
        return None

    def _accept(
        self,
        params: dict[str, str],
        media: tuple[str, ...],
        fault: Fault | None,
        arrived_at: datetime | None = None,
    ) -> dict[str, Any]:
        sid = ("MM" if media else "SM") + uuid.uuid4().hex
        now = datetime.now(UTC)
        to, body = params["To"], params.get("Body", "")
        channel = _channel(to)
        sender = params.get("From") or (
            f"whatsapp:{POOL_NUMBER}" if channel == "whatsapp" else POOL_NUMBER
        )
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
        resource: dict[str, Any] = {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": _rfc2822(now),
            "date_sent": None,
            "date_updated": _rfc2822(now),
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender,
            "messaging_service_sid": params.get("MessagingServiceSid"),
            "num_media": str(len(media)),
            "num_segments": str(1 if channel == "whatsapp" else num_segments(body)),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {"media": f"{uri}/Media.json", "feedback": f"{uri}/Feedback.json"},
            "to": to,
            "uri": f"{uri}.json",
        }
        code = None
        if fault is not None and fault.kind == "failed":
            statuses, code = ["queued", "failed"], fault.code
        elif fault is not None and fault.kind == "undelivered":
            statuses, code = ["queued", "sent", "undelivered"], fault.code
        else:
            statuses = ["queued", "sent", "delivered"] + (["read"] if channel == "whatsapp" else [])
        with self._lock:
            self._messages.append(SentMessage(sid, params, media, now, arrived_at))
            self._resources[sid] = resource
            self._stats["accepted"] += 1
        task = asyncio.create_task(self._lifecycle(sid, statuses, code, params))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return dict(resource)

    # -- status callbacks ---------------------------------------------------------------------

    async def _lifecycle(
        self, sid: str, statuses: list[str], code: int | None, params: dict[str, str]
    ) -> None:
        """Walk the message through ``statuses``; callbacks may go out shuffled or twice."""
        options, url = self.callback_options, params.get("StatusCallback")
        sends: list[str] = []
        if url and options.enabled:
            with self._lock:
                for status in statuses[-1:] if options.final_only else statuses:
                    sends += [status] * (2 if self._random.random() < options.duplicate_rate else 1)
                if options.shuffle:
                    self._random.shuffle(sends)
        for step in range(max(len(statuses), len(sends))):
            await asyncio.sleep(options.delay)
            if step < len(statuses):
                self._advance(sid, statuses[step], code)
            if url and step < len(sends):
                await self._send_callback(url, sid, sends[step], code)

    def _advance(self, sid: str, status: str, code: int | None) -> None:
        with self._lock:
            resource = self._resources.get(sid)
            if resource is None:
                return
            now = _rfc2822(datetime.now(UTC))
            resource.update(status=status, date_updated=now)
            if status == "sent":
                resource["date_sent"] = now
            if status in ("failed", "undelivered"):
                resource.update(error_code=code, error_message=ERRORS.get(code or 0))

    async def _send_callback(self, url: str, sid: str, status: str, code: int | None) -> None:
        with self._lock:
            resource = self._resources.get(sid)
        if resource is None or self._session is None:
            return
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "From": resource["from"],
            "To": resource["to"],
            "MessageSid": sid,
            "MessageStatus": status,
            "SmsSid": sid,
            "SmsStatus": status,
        }
        if resource["messaging_service_sid"]:
            params["MessagingServiceSid"] = resource["messaging_service_sid"]
        if _channel(resource["to"]) == "whatsapp":
            params["ChannelPrefix"] = "whatsapp"
            params["ChannelToAddress"] = resource["to"].removeprefix("whatsapp:")
            params["StructuredMessage"] = "false"
        if status in ("failed", "undelivered") and code:
            params["ErrorCode"] = str(code)
        headers = {
            "X-Twilio-Signature": self._validator.compute_signature(url, params),
            "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
            "User-Agent": "TwilioProxy/1.1",
        }
        status_code, error = None, None
        try:
            async with self._session.post(url, data=params, headers=headers) as response:
                status_code = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = repr(exc)
        with self._changed:
            if sid not in self._resources:  # reset() while this one was on its way
                return
            self._callbacks.append(
                CallbackRecord(url, params, status_code, error, datetime.now(UTC))
            )
            self._stats["callbacks_sent"] += 1
            self._stats["callbacks_unanswered"] += status_code is None
            self._changed.notify_all()

    # -- the HTTP control API -----------------------------------------------------------------

    async def _http_config(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
            callbacks = dataclasses.replace(self.callback_options, **body.get("callbacks", {}))
            latency = float(body.get("latency", self.latency))
        except (ValueError, TypeError, AttributeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        self.latency, self.callback_options = latency, callbacks
        if "seed" in body:
            with self._lock:
                self._random.seed(body["seed"])
        return web.json_response(
            {"latency": self.latency, "callbacks": dataclasses.asdict(callbacks)}
        )

    async def _http_faults(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
            faults = [Fault(**item) for item in (body if isinstance(body, list) else [body])]
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        self.inject(*faults)
        return web.json_response([dataclasses.asdict(fault) for fault in faults])

    async def _http_reset(self, request: web.Request) -> web.StreamResponse:
        self.reset()
        return web.json_response({"reset": True})

    async def _http_messages(self, request: web.Request) -> web.StreamResponse:
        """Every accepted message in order, or from ``?since=N`` on (an offset into that order:
        a poller asks for what it has not seen yet)."""
        since = _offset(request)
        if isinstance(since, web.Response):
            return since
        with self._lock:
            listing = [
                _listed(m) | {"status": self._resources[m.sid]["status"]}
                for m in self._messages[since:]
            ]
        return web.json_response(listing)

    async def _http_wait(self, request: web.Request) -> web.StreamResponse:
        """``?since=N&to_prefix=P&timeout=S``: the accepted messages from offset ``N`` on whose
        ``To`` starts with ``P``, as soon as there is one (or after ``S`` seconds, at most 30),
        with ``next``, the offset to ask from next time.  A benchmark waiting for one reply
        asks once instead of polling."""
        since = _offset(request)
        if isinstance(since, web.Response):
            return since
        try:
            timeout = min(30.0, float(request.query.get("timeout", "10")))
        except ValueError:
            return web.json_response({"error": "timeout must be a number"}, status=400)
        prefix = request.query.get("to_prefix", "")
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            with self._lock:
                end = len(self._messages)
                found = [
                    _listed(m)
                    for m in self._messages[since:end]
                    if m.params.get("To", "").startswith(prefix)
                ]
            since = max(since, end)
            if found or asyncio.get_running_loop().time() >= deadline:
                return web.json_response({"next": since, "messages": found})
            await asyncio.sleep(0.005)

    async def _http_callbacks(self, request: web.Request) -> web.StreamResponse:
        listing = [
            {**dataclasses.asdict(c), "sent_at": c.sent_at.isoformat()} for c in self.callbacks
        ]
        return web.json_response(listing)

    async def _http_stats(self, request: web.Request) -> web.StreamResponse:
        # ``lifecycles``: accepted messages whose statuses (and callbacks) are still to come.
        return web.json_response(self.stats() | {"lifecycles": len(self._tasks)})


def _offset(request: web.Request) -> int | web.Response:
    """``?since=N``, an offset into the accepted messages; or the 400 that names the problem."""
    try:
        since = int(request.query.get("since", "0"))
    except ValueError:
        return web.json_response({"error": "since must be an integer offset"}, status=400)
    if since < 0:
        return web.json_response({"error": "since must be 0 or more"}, status=400)
    return since


def _listed(message: SentMessage) -> dict[str, Any]:
    """A message as the control API lists it (times in ISO 8601)."""
    arrived = message.arrived_at
    return dataclasses.asdict(message) | {
        "received_at": message.received_at.isoformat(),
        "arrived_at": arrived.isoformat() if arrived else None,
    }


def twilio_client_for(
    base_url: str, account_sid: str, auth_token: str, *, timeout: float = 10.0, pool_size: int = 256
) -> Client:
    """A real ``twilio.rest.Client`` whose Messages calls go to ``base_url``.

    Every Messages URL is built by the ``Api`` domain from its ``base_url`` (normally
    ``https://api.twilio.com``), so that one attribute redirects them all.
    """
    http = TwilioHttpClient(timeout=timeout)
    # TwilioHttpClient sizes a connection pool for https:// only; a plain-http server needs one
    # too, or concurrent senders open and drop a connection per request beyond ten.
    http.session.mount("http://", HTTPAdapter(pool_connections=4, pool_maxsize=pool_size))
    client = Client(account_sid, auth_token, http_client=http)
    client.edge = client.region = None  # TWILIO_EDGE/REGION would rewrite the host name
    client.api.base_url = base_url.rstrip("/")
    return client


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.twilio", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--account-sid", required=True)
    parser.add_argument("--auth-token", required=True)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to API calls")
    parser.add_argument("--callback-delay", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    fake = FakeTwilio(
        account_sid=args.account_sid,
        auth_token=args.auth_token,
        host=args.host,
        port=args.port,
        latency=args.latency,
        callback_options=CallbackOptions(delay=args.callback_delay),
        seed=args.seed,
    )
    asyncio.run(_serve(fake))


async def _serve(fake: FakeTwilio) -> None:
    await fake._open()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    print(f"fake twilio listening on {fake.base_url}", flush=True)
    try:
        await stop.wait()
    finally:
        await fake._close()


if __name__ == "__main__":
    main()
