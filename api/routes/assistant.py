"""The assistant's API: the action server's callback, trying a phrasing, and handovers."""

from __future__ import annotations

import datetime as dt
import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from api.deps import ManagerDep, PrincipalDep, SessionDep, SettingsDep
from campaigns import audit
from campaigns.assistant import handovers, turns
from campaigns.assistant.models import Handover, HandoverStatus
from campaigns.bot_client import AssistantUnavailable, BotClient
from campaigns.db import utcnow
from campaigns.errors import AuthenticationFailed, InvalidInput, NotFound
from campaigns.knowledge.entries import find_answer
from campaigns.languages import LANGUAGES, default_language_for_country
from campaigns.organizations.models import Organization
from campaigns.organizations.service import current_org
from campaigns.topics import TOPICS

internal = APIRouter(prefix="/internal/assistant", tags=["internal"], include_in_schema=False)
router = APIRouter(prefix="/v1", tags=["assistant"])


class TurnIn(BaseModel):
    intent: str = Field(max_length=100)
    confidence: float | None = Field(default=None, ge=0, le=1)
    text: str | None = Field(default=None, max_length=5000)
    metadata: dict[str, Any]
    intent_ranking: list[dict[str, Any]] = Field(default_factory=list, max_length=20)


class TurnOut(BaseModel):
    messages: list[dict[str, str]]
    topic: str | None
    answered: bool


@internal.post("/turn")
def turn(
    body: TurnIn,
    session: SessionDep,
    settings: SettingsDep,
    authorization: Annotated[str | None, Header()] = None,
) -> TurnOut:
    """Called by Rasa's action server with the intent it recognised for one inbound message."""
    expected = f"Bearer {settings.actions_token.get_secret_value()}"
    if not authorization or not hmac.compare_digest(authorization, expected):
        raise AuthenticationFailed("the action server's token is missing or wrong")
    message_id = body.metadata.get("inbound_message_id")
    if not isinstance(message_id, int):
        raise InvalidInput("metadata.inbound_message_id is required", field="metadata")
    now = utcnow()
    ctx = turns.load_context(session, message_id, now)
    if ctx is None:
        raise NotFound(f"inbound message {message_id} not found")
    reply = turns.answer_intent(session, ctx, intent=body.intent, confidence=body.confidence)
    turns.finish(session, ctx, reply, now)
    return TurnOut(
        messages=[{"text": t} for t in reply.messages], topic=reply.topic, answered=reply.answered
    )


class ParseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=4096)
    language: str | None = Field(default=None, max_length=2)
    country: str | None = Field(default=None, max_length=2)


class ParseOut(BaseModel):
    intent: str | None
    confidence: float | None
    language: str
    topic: str | None
    answer_preview: str | None
    ranking: list[dict[str, Any]]


@router.post("/assistant/parse")
def parse(
    body: ParseIn, session: SessionDep, settings: SettingsDep, principal: PrincipalDep
) -> ParseOut:
    """How the assistant understands a phrasing, and the start of what it would answer."""
    org = session.get(Organization, current_org(session))
    country = (body.country or (org.country if org else "")).upper() or None
    language = body.language or default_language_for_country(country)
    if language not in LANGUAGES:
        raise InvalidInput(f"unknown language {language!r}", field="language")
    bot = BotClient(settings.rasa_url, timeout=10)
    try:
        result = bot.parse(body.text)
    except AssistantUnavailable as exc:
        raise NotFound(f"the assistant is not reachable ({exc})") from exc
    finally:
        bot.close()
    intent = (result.get("intent") or {}).get("name")
    confidence = (result.get("intent") or {}).get("confidence")
    topic = intent if intent in TOPICS else None
    preview = None
    if topic is not None:
        entry = find_answer(
            session,
            organization_id=current_org(session),
            topic=topic,
            language=language,
            country=country,
        )
        preview = entry.body[:300] if entry else None
    ranking = [
        {"name": r.get("name"), "confidence": r.get("confidence")}
        for r in (result.get("intent_ranking") or [])[:5]
    ]
    return ParseOut(
        intent=intent,
        confidence=confidence,
        language=language,
        topic=topic,
        answer_preview=preview,
        ranking=ranking,
    )


class HandoverOut(BaseModel):
    id: int
    contact_id: int
    community_id: int | None
    topic: str | None
    language: str
    status: str
    opened_at: dt.datetime
    first_reply_at: dt.datetime | None
    closed_at: dt.datetime | None

    @classmethod
    def of(cls, h: Handover) -> HandoverOut:
        return cls.model_validate(h, from_attributes=True)


class ConversationMessage(BaseModel):
    id: int
    direction: str
    body: str | None
    status: str
    created_at: dt.datetime


class HandoverDetail(HandoverOut):
    messages: list[ConversationMessage]


class HandoverReply(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=1600)


@router.get("/handovers")
def list_handovers(
    session: SessionDep,
    principal: ManagerDep,
    status_: Annotated[str, Query(alias="status", max_length=10)] = "open",
) -> list[HandoverOut]:
    try:
        wanted = HandoverStatus(status_)
    except ValueError as exc:
        raise InvalidInput("status must be open or closed", field="status") from exc
    rows = session.scalars(
        select(Handover).where(Handover.status == wanted).order_by(Handover.opened_at).limit(500)
    )
    return [HandoverOut.of(h) for h in rows]


@router.get("/handovers/{handover_id}")
def get_handover(handover_id: int, session: SessionDep, principal: ManagerDep) -> HandoverDetail:
    """The handover and its conversation (message bodies: the read is audit-logged)."""
    handover = handovers.get(session, handover_id)
    messages = handovers.conversation(session, handover)
    audit.record(
        session,
        action="handover.conversation_read",
        object_type="handover",
        object_id=handover.id,
        organization_id=handover.organization_id,
    )
    return HandoverDetail(
        **HandoverOut.of(handover).model_dump(),
        messages=[
            ConversationMessage(
                id=m.id,
                direction=m.direction.value,
                body=m.body,
                status=m.status.value,
                created_at=m.created_at,
            )
            for m in messages
        ],
    )


@router.post("/handovers/{handover_id}/messages", status_code=status.HTTP_202_ACCEPTED)
def reply_to_handover(
    handover_id: int, body: HandoverReply, session: SessionDep, principal: ManagerDep
) -> HandoverOut:
    """A person's reply, sent through the gateway (only inside WhatsApp's 24-hour window)."""
    handover = handovers.reply(
        session, handover_id=handover_id, text=body.text, user_id=principal.user_id
    )
    return HandoverOut.of(handover)


@router.post("/handovers/{handover_id}/close")
def close_handover(handover_id: int, session: SessionDep, principal: ManagerDep) -> HandoverOut:
    """Close it; the assistant answers this person again."""
    return HandoverOut.of(
        handovers.close(session, handover_id=handover_id, user_id=principal.user_id)
    )
