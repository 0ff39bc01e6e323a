"""Twilio's webhooks: inbound messages and delivery status, both signed.

The signature is checked against ``FARO_PUBLIC_URL`` + path + query, the URL Twilio was given,
not the URL this process sees (behind a TLS-terminating proxy they differ).  A missing or wrong
signature is a 403 and nothing is stored.  The answer to an inbound message is an empty TwiML
``<Response/>`` at once; replies go out through the REST API from the workers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qsl

import anyio
import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from campaigns.batching import GroupCommit
from campaigns.crypto import AddressCipher
from campaigns.db import retry_on_deadlock
from campaigns.errors import AuthenticationFailed, InvalidInput, PermissionDenied
from campaigns.logging import get_logger
from campaigns.messaging import inbound, status
from campaigns.messaging.twilio_gateway import signature_is_valid
from campaigns.settings import Settings

router = APIRouter(prefix="/webhooks/twilio", tags=["webhooks"], include_in_schema=True)
log = get_logger(__name__)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
MAX_FIELDS = 200


async def _verified_form(
    request: Request, settings: Settings, signature: str | None
) -> dict[str, str]:
    if settings.twilio_auth_token is None or not settings.twilio_account_sid:
        raise PermissionDenied("Twilio is not configured on this installation")
    if not signature:
        raise AuthenticationFailed("missing X-Twilio-Signature")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise InvalidInput("expected application/x-www-form-urlencoded", field="body")
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=bool(text),
            max_num_fields=MAX_FIELDS,
            errors="strict",
        )
    except UnicodeDecodeError as exc:
        raise InvalidInput("the form is not valid UTF-8", field="body") from exc
    except ValueError as exc:
        raise InvalidInput(f"malformed form: {exc}", field="body") from exc
    form: dict[str, str] = {}
    for key, value in pairs:
        form.setdefault(key, value)
    if any("\x00" in k or "\x00" in v for k, v in form.items()):
        raise InvalidInput("the form contains a NUL character", field="body")
    url = settings.public_url + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    if not signature_is_valid(
        auth_token=settings.twilio_auth_token.get_secret_value(),
        url=url,
        params=form,
        signature=signature,
    ):
        log.warning("webhook.signature_rejected", path=request.url.path)
        raise PermissionDenied("invalid X-Twilio-Signature")
    if form.get("AccountSid") and form["AccountSid"] != settings.twilio_account_sid:
        raise PermissionDenied("AccountSid does not match this installation")
    return form


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _submit(request: Request, name: str, item: Any) -> Any:
    batcher: GroupCommit[Any, Any] = getattr(request.app.state, name)
    return await batcher.submit(item)


# No session dependency for status callbacks: they share transactions (``campaigns.batching``),
# which is what lets one process take hundreds of them a second.  Each answer still waits for
# the commit that stored its own event.


# The endpoints read their header and query parameter from the request themselves: FastAPI's
# dependency solving was a tenth of a callback's CPU.
SIGNATURE_DOC = {
    "parameters": [
        {
            "name": "X-Twilio-Signature",
            "in": "header",
            "required": True,
            "schema": {"type": "string"},
        }
    ]
}


@router.post("/messages", response_class=Response, openapi_extra=SIGNATURE_DOC)
async def inbound_message(request: Request) -> Response:
    """A message from a migrant.  Stored once per MessageSid; answered with empty TwiML.

    Messages share transactions (``campaigns.batching``): the messages that arrive while one
    batch is in the database are stored together by ``inbound.store`` in a few set-based
    statements, and each answer waits for the commit that stored its own message.  A consent
    keyword (STOP, BAJA, BORRAR …) goes alone, in a transaction of its own that also records
    the opt-out or the erasure, so it takes effect before Twilio has its answer.
    """
    signature = request.headers.get("x-twilio-signature")
    form = await _verified_form(request, _settings(request), signature)
    item = inbound.prepare(form)
    state = request.app.state
    if item.keyword is None:
        outcome: inbound.InboundResult = await _submit(request, "inbound_batches", item)
        if outcome.duplicate:
            log.info("inbound.duplicate")
    else:
        await anyio.to_thread.run_sync(
            _receive,
            state.webhook_session_factory,
            state.cipher,
            form,
            limiter=state.inbound_limiter,
        )
    return Response(EMPTY_TWIML, media_type="text/xml")


def _receive(
    session_factory: Callable[[], Session], cipher: AddressCipher, form: dict[str, str]
) -> None:
    with session_factory() as session:
        inbound.receive(session, cipher=cipher, form=form)
        session.commit()


@router.post(
    "/status",
    response_class=Response,
    openapi_extra={
        "parameters": [
            *SIGNATURE_DOC["parameters"],
            {"name": "m", "in": "query", "required": False, "schema": {"type": "integer"}},
        ]
    },
)
async def status_callback(request: Request) -> Response:
    """A delivery report.  Appended to the log; the message's status only moves forward."""
    signature = request.headers.get("x-twilio-signature")
    form = await _verified_form(request, _settings(request), signature)
    hint = request.query_params.get("m")
    if hint is not None and not (hint.isdigit() and len(hint) < 19):
        raise InvalidInput("m must be a message id", field="m")
    report = status.parse_status(form, message_hint=int(hint) if hint is not None else None)
    result: status.StatusResult = await _submit(request, "status_batches", report)
    if not result.known:
        log.info("status.unknown_message")
    return Response(status_code=204)


# Consent keywords stored one at a time at most this many at once (the engine's pool is 10).
INBOUND_THREADS = 4
# How long a status callback may wait for others to share its transaction (campaigns/batching.py):
# at 100 callbacks/s a batch of about five instead of one: about half the API CPU each.
STATUS_LINGER = 0.05


def install_state(
    app_state: Any, *, session_factory: Callable[[], Session], cipher: AddressCipher
) -> None:
    """What both webhooks keep on ``app.state``: the session factory (tests swap it), the
    cipher, their group commits and the thread limiter of the keywords' own transactions."""

    def inbound_work(items: Sequence[inbound.Inbound]) -> list[Any]:
        def attempt() -> list[Any]:
            with app_state.webhook_session_factory() as session:
                outcomes = inbound.store(session, cipher=app_state.cipher, items=items)
                session.commit()
            return list(outcomes)

        return retry_on_deadlock(attempt)

    def status_work(reports: Sequence[status.StatusReport]) -> list[Any]:
        def attempt() -> list[Any]:
            with app_state.webhook_session_factory() as session:
                results = status.record_statuses(session, reports)
                session.commit()
            return list(results)

        return retry_on_deadlock(attempt)

    app_state.webhook_session_factory = session_factory
    app_state.cipher = cipher
    app_state.inbound_limiter = anyio.CapacityLimiter(INBOUND_THREADS)
    # A value the database refuses (DataError) or a bug on one odd form fails that form alone;
    # an unreachable database (OperationalError) fails the batch, and Twilio retries it.
    alone_on = (DataError, IntegrityError, ValueError, TypeError)
    app_state.status_batches = GroupCommit(
        status_work, max_batch=500, alone_on=alone_on, linger=STATUS_LINGER
    )
    app_state.inbound_batches = GroupCommit(inbound_work, max_batch=100, alone_on=alone_on)
