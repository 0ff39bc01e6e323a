"""Twilio's webhooks: inbound messages and delivery status, both signed.

The signature is checked against ``FARO_PUBLIC_URL`` + path + query, the URL Twilio was given,
not the URL this process sees (behind a TLS-terminating proxy they differ).  A missing or wrong
signature is a 403 and nothing is stored.  The answer to an inbound message is an empty TwiML
``<Response/>`` at once; replies go out through the REST API from the workers.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from api.deps import CipherDep, SessionDep, SettingsDep
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


@router.post("/messages", response_class=Response)
async def inbound_message(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    cipher: CipherDep,
    x_twilio_signature: Annotated[str | None, Header()] = None,
) -> Response:
    """A message from a migrant.  Stored once per MessageSid; answered with empty TwiML."""
    form = await _verified_form(request, settings, x_twilio_signature)
    await run_in_threadpool(inbound.receive, session, cipher=cipher, form=form)
    return Response(EMPTY_TWIML, media_type="text/xml")


@router.post("/status", response_class=Response)
async def status_callback(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    x_twilio_signature: Annotated[str | None, Header()] = None,
    m: int | None = None,
) -> Response:
    """A delivery report.  Appended to the log; the message's status only moves forward."""
    form = await _verified_form(request, settings, x_twilio_signature)
    result = await run_in_threadpool(status.record_status, session, form=form, message_hint=m)
    if not result.known:
        log.info("status.unknown_message")
    return Response(status_code=204)
