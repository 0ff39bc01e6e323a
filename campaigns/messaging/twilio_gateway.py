"""The only module that imports ``twilio``: submitting messages and checking signatures.

A gateway turns one outbound request into a ``SubmitResult``, classifying every failure as
*temporary* (retry with backoff: HTTP 429, 5xx, timeouts, connection errors) or *permanent*
(record the code, never retry: 21211 invalid number, 21610 unsubscribed, 21614 not a mobile,
63016 outside the WhatsApp window, 63003, 63024 …).

A timeout or a connection dropped after the request was written is also *uncertain*: Twilio
may have accepted the message, so the next attempt asks Twilio (``find``) before sending.

``TwilioGateway`` talks to Twilio's REST API through the official client with its asyncio HTTP
client, so one worker overlaps many calls; its base URL is ``FARO_TWILIO_API_URL``.
``SimulatorGateway`` keeps messages in Faro (the simulator channel) and never touches a network.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import hmac
import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from campaigns.metrics import TWILIO_DURATION, timed

# Twilio's client logs requests and responses at INFO, numbers and bodies included: silence it.
_twilio_log = logging.getLogger("faro.twilio_http")
_twilio_log.setLevel(logging.CRITICAL)
_twilio_log.propagate = False

PERMANENT_ERRORS = frozenset(
    {21211, 21408, 21606, 21610, 21612, 21614, 21617, 21635, 63003, 63016, 63024, 63032}
)
UNSUBSCRIBED = 21610
OUTSIDE_WINDOW = 63016

_retry_after: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "twilio_retry_after", default=None
)


@dataclass(frozen=True)
class OutboundRequest:
    message_id: int
    to: str  # E.164
    channel: str  # whatsapp | sms
    from_address: str | None
    messaging_service_sid: str | None
    body: str | None
    content_sid: str | None
    content_variables: Mapping[str, str] | None
    status_callback: str | None
    validity_period: int | None


@dataclass(frozen=True)
class SubmitResult:
    ok: bool
    sid: str | None = None
    status: str | None = None
    error_code: int | None = None
    temporary: bool = False
    retry_after: float | None = None
    segments: int | None = None
    # The request may have reached Twilio (a timeout or a dropped connection after it was
    # written): ask Twilio before sending it again, or the person gets it twice.
    uncertain: bool = False


class Gateway(Protocol):
    simulated: bool

    async def submit(self, request: OutboundRequest) -> SubmitResult: ...

    async def find(self, request: OutboundRequest, *, since: dt.datetime) -> SubmitResult | None:
        """The message Twilio accepted for ``request`` since then, or None if it has none."""
        ...

    async def close(self) -> None: ...


def _address(channel: str, number: str) -> str:
    return f"whatsapp:{number}" if channel == "whatsapp" else number


class _HeaderKeepingClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    """Keeps ``Retry-After`` of a 429, which the client's exception does not carry, and
    enforces the timeout (twilio's asyncio client passes none to aiohttp: it would wait
    forever on a hung connection)."""

    async def request(self, *args: Any, **kwargs: Any) -> Response:
        async with asyncio.timeout(self.timeout):
            response = await super().request(*args, **kwargs)
        if response.status_code == 429 and response.headers:
            try:
                _retry_after.set(float(response.headers.get("Retry-After", "")))
            except ValueError:
                _retry_after.set(None)
        return response


class TwilioGateway:
    simulated = False

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        api_url: str,
        timeout: float = 15.0,
        max_connections: int = 100,
    ) -> None:
        """Make it inside the event loop that will use it; keep it as long as that loop lives
        (its connections to Twilio are pooled, at most ``max_connections`` at once)."""
        self._http = _HeaderKeepingClient(
            timeout=timeout, logger=_twilio_log, pool_connections=False
        )
        self._http.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max_connections)
        )
        self._client = Client(account_sid, auth_token, http_client=self._http)
        self._client.api.base_url = api_url.rstrip("/")

    async def submit(self, request: OutboundRequest) -> SubmitResult:
        params: dict[str, Any] = {"to": _address(request.channel, request.to)}
        if request.messaging_service_sid:
            params["messaging_service_sid"] = request.messaging_service_sid
        elif request.from_address:
            params["from_"] = _address(request.channel, request.from_address)
        if request.content_sid:
            params["content_sid"] = request.content_sid
            if request.content_variables:
                params["content_variables"] = json.dumps(dict(request.content_variables))
        else:
            params["body"] = request.body or ""
        if request.status_callback:
            params["status_callback"] = request.status_callback
        if request.validity_period:
            params["validity_period"] = request.validity_period
        _retry_after.set(None)
        try:
            with timed(TWILIO_DURATION):
                message = await self._client.messages.create_async(**params)
        except TwilioRestException as exc:
            temporary = exc.status == 429 or exc.status >= 500
            code = exc.code if isinstance(exc.code, int) else None
            if code in PERMANENT_ERRORS:
                temporary = False
            return SubmitResult(
                ok=False,
                error_code=code or exc.status,
                temporary=temporary,
                retry_after=_retry_after.get(),
            )
        except aiohttp.ClientConnectorError:
            return SubmitResult(ok=False, temporary=True)  # never connected: nothing was sent
        except (TimeoutError, aiohttp.ClientError, OSError):
            return SubmitResult(ok=False, temporary=True, uncertain=True)
        segments = message.num_segments
        return SubmitResult(
            ok=True,
            sid=message.sid,
            status=message.status,
            segments=int(segments) if segments and str(segments).isdigit() else None,
        )

    async def find(self, request: OutboundRequest, *, since: dt.datetime) -> SubmitResult | None:
        """Ask Twilio whether it accepted this message (a worker died before saving the SID).

        Matched on recipient, sender and body among the messages sent since ``since``; a
        template (no body of ours to compare) is never matched, so it is resent rather than
        confused with another message.  Raises on any failure to ask: the caller must then
        neither resend nor give up.
        """
        if not request.body:
            return None
        sender: dict[str, Any] = {}
        if request.from_address:
            sender["from_"] = _address(request.channel, request.from_address)
        with timed(TWILIO_DURATION):
            found = await self._client.messages.list_async(
                to=_address(request.channel, request.to),
                date_sent_after=since,
                limit=50,
                **sender,
            )
        for message in found:
            if message.body == request.body and message.sid:
                return SubmitResult(ok=True, sid=message.sid, status=str(message.status))
        return None

    async def close(self) -> None:
        await self._http.close()


class SimulatorGateway:
    """The simulator channel: nothing leaves Faro; the message is shown at ``/simulator``."""

    simulated = True

    async def submit(self, request: OutboundRequest) -> SubmitResult:
        await asyncio.sleep(0)
        return SubmitResult(ok=True, sid=f"SIM{uuid.uuid4().hex}", status="simulated")

    async def find(self, request: OutboundRequest, *, since: dt.datetime) -> SubmitResult | None:
        return None  # a simulated send that did not record itself never happened

    async def close(self) -> None:
        return None


def signature_is_valid(
    *, auth_token: str, url: str, params: Mapping[str, str], signature: str
) -> bool:
    """Twilio's own check of ``X-Twilio-Signature`` over the public URL and the form.

    The URL as Faro gave it to Twilio signs nearly every request, so its signature is computed
    first: one HMAC.  Only if it does not match does ``validate`` try the variants Twilio's
    back end is known to sign (with and without an explicit port), which costs two more; the
    double HMAC on every request was 9 % of a status callback's CPU.
    """
    validator = RequestValidator(auth_token)
    form = dict(params)
    expected = validator.compute_signature(url, form)
    if hmac.compare_digest(expected.encode(), signature.encode()):
        return True
    return bool(validator.validate(url, form, signature))
