"""One turn of the conversation: what Faro answers to one inbound message.

Two entry points share the same rules:

- ``before_assistant`` runs first, in the conversation task.  It answers what needs no language
  model — an open handover (the assistant stays silent), media, a reply to a poll the contact
  received (``outreach.polls``: counted and thanked), the MENU / IDIOMA / PERSONA
  commands, and bare replies to the assistant's own questions ("2" after the topic menu, "1"
  after "was this useful?") — or returns the text to send to Rasa (a menu number becomes
  Rasa's ``/intent`` trigger).
- ``answer_intent`` runs when Rasa's action server reports the intent it recognised
  (``POST /internal/assistant/turn``).  Topic answers come from the knowledge base for the
  contact's language and country; the safety topics give the country's verified hotline first
  and offer a person.

``finish`` applies a reply exactly once per inbound message: it sets ``handled_at`` with a
conditional UPDATE in the same transaction that queues the replies and records the turn, so a
retried task or a second action call never answers twice.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from campaigns.assistant import texts
from campaigns.assistant.models import (
    Awaiting,
    ConversationState,
    Feedback,
    Handover,
    HandoverStatus,
    Turn,
    UnansweredQuestion,
)
from campaigns.contacts.models import Contact, ContactCommunity
from campaigns.knowledge.entries import find_answer
from campaigns.knowledge.hotlines import hotlines_for
from campaigns.knowledge.hubs import hubs_for
from campaigns.messaging.models import Message, Purpose, Sender
from campaigns.messaging.outbound import queue_text
from campaigns.outbox import publish_after_commit
from campaigns.outreach import polls
from campaigns.topics import SAFETY_TOPICS, TOPICS

SESSION_GAP = dt.timedelta(hours=1)
STATE_EXPIRES = dt.timedelta(hours=6)

_YES = {
    "1",
    "si",
    "sí",
    "yes",
    "y",
    "yeah",
    "wi",
    "oui",
    "ok",
    "dale",
    "claro",
    "dako",
    "dakò",
    "simon",
    "sip",
    "va",
    "bueno",
    "d'accord",
    "daccord",
}
_NO = {"2", "no", "non", "nope", "nel", "pa vle", "non merci", "no gracias", "no thanks"}
_MENU = {"menu", "menú", "opciones", "options", "meni", "inicio", "start over"}
_LANGUAGE = {"idioma", "language", "lang", "langue", "lengua", "lang la"}
_PERSON = {"persona", "person", "moun", "personne", "agente", "agent", "humano", "human"}
# A greeting in front of a question ("hola buenas, como pido asilo…") would make the whole
# message a greeting for the classifier; the question is what the person wants answered.
_LEADING_GREETING = re.compile(
    r"^\s*(?:(?:hola|holi|buenas|buenos|buen|dias|días|tardes|noches|dia|día|hello|hi|hey|good|"
    r"morning|afternoon|evening|bonjou|bonswa|bonjour|bonsoir|salut|alo|allo|saludos|"
    r"amigo|amiga|señor|senor|señora|senora|sir|madam|mesye|madanm)\b[\s,.!¡?¿:;-]*)+",
    re.IGNORECASE,
)
_LANGUAGE_NAMES = {
    "es": ("espanol", "español", "spanish", "espagnol", "panyol", "panyòl", "castellano"),
    "en": ("english", "ingles", "inglés", "anglais", "angle", "anglè"),
    "ht": ("kreyol", "kreyòl", "creole", "créole", "haitian", "haitiano", "ayisyen"),
    "fr": ("frances", "francés", "francais", "français", "french", "franse", "fransè"),
}


@dataclass
class Context:
    message: Message
    contact: Contact
    sender: Sender
    community_id: int | None
    state: ConversationState


@dataclass
class Reply:
    messages: list[str]
    source: str
    topic: str | None = None
    answered: bool = True
    intent: str | None = None
    confidence: float | None = None
    awaiting: Awaiting | None = None
    language: str | None = None  # a new language chosen by the contact
    open_handover: bool = False
    feedback: bool | None = None
    unanswered: bool = False
    extras: dict[str, str] = field(default_factory=dict)


def normalize(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.strip().lower())
    plain = "".join(c for c in folded if not unicodedata.combining(c))
    return re.sub(r"[^\w' ]+", "", plain).strip()


def load_context(session: Session, message_id: int, now: dt.datetime) -> Context | None:
    row = session.execute(
        select(Message, Contact, Sender)
        .join(Contact, Contact.id == Message.contact_id)
        .join(Sender, Sender.id == Message.sender_id)
        .where(Message.id == message_id)
    ).first()
    if row is None:
        return None
    message, contact, sender = row
    community_id = session.scalar(
        select(ContactCommunity.community_id)
        .where(ContactCommunity.contact_id == contact.id)
        .order_by(ContactCommunity.joined_at, ContactCommunity.community_id)
        .limit(1)
    )
    state = session.get(ConversationState, contact.id)
    if state is None:
        state = ConversationState(organization_id=contact.organization_id, contact_id=contact.id)
        session.add(state)
    elif state.last_turn_at is not None and now - state.last_turn_at > STATE_EXPIRES:
        state.awaiting = None
    return Context(
        message=message, contact=contact, sender=sender, community_id=community_id, state=state
    )


def open_handover_of(session: Session, contact_id: int) -> Handover | None:
    return session.scalar(
        select(Handover).where(
            Handover.contact_id == contact_id, Handover.status == HandoverStatus.open
        )
    )


def _language_named(text: str) -> str | None:
    words = set(normalize(text).split())
    found = {
        lang for lang, names in _LANGUAGE_NAMES.items() if words & {normalize(n) for n in names}
    }
    return found.pop() if len(found) == 1 else None


def before_assistant(session: Session, ctx: Context) -> Reply | str:
    """A reply that needs no language model, or the text to send to the assistant."""
    language = ctx.contact.language
    if open_handover_of(session, ctx.contact.id) is not None:
        return Reply([], source="handover", answered=True)
    body = (ctx.message.body or "").strip()
    if ctx.message.kind == "location":
        return _hubs_reply(session, ctx, intent="location")
    if not body:
        return Reply([texts.say("media_only", language)], source="media", answered=False)
    awaiting = ctx.state.awaiting
    if ctx.message.kind == "text":
        answer = polls.record_poll_reply(
            session,
            contact=ctx.contact,
            message=ctx.message,
            now=ctx.message.created_at,
            asked_since=ctx.state.last_turn_at if awaiting is not None else None,
        )
        if answer is not None:
            return Reply([answer.thanks], source="poll")
    word = normalize(body)
    if word in _MENU:
        return Reply([texts.topic_menu(language)], source="menu", awaiting=Awaiting.menu)
    if word in _LANGUAGE:
        return Reply([texts.language_menu(language)], source="language", awaiting=Awaiting.language)
    if word in _PERSON:
        return _handover_reply(ctx, topic=ctx.state.last_topic)
    if awaiting == Awaiting.language and word in texts.LANGUAGE_BY_NUMBER:
        chosen = texts.LANGUAGE_BY_NUMBER[word]
        return Reply(
            [texts.say("language_set", chosen), texts.topic_menu(chosen)],
            source="language",
            language=chosen,
            awaiting=Awaiting.menu,
        )
    if awaiting == Awaiting.feedback and ctx.state.last_topic and (word in _YES or word in _NO):
        useful = word in _YES
        return Reply(
            [texts.say("feedback_yes" if useful else "feedback_no", language)],
            source="feedback",
            topic=ctx.state.last_topic,
            feedback=useful,
        )
    if awaiting == Awaiting.handover_offer and (word in _YES or word in _NO):
        if word in _YES:
            return _handover_reply(ctx, topic=ctx.state.last_topic)
        return Reply([texts.say("handover_declined", language)], source="handover")
    if awaiting == Awaiting.menu:
        topic = texts.menu_topic(word)
        if topic is not None:
            return f"/{topic}"
    # Only Faro forces an intent ("/topic"); a person's own leading "/" is just text.
    return without_greeting(body).lstrip("/ ") or body


def without_greeting(body: str) -> str:
    """The question without a leading greeting, when a real question follows it."""
    rest = _LEADING_GREETING.sub("", body, count=1).strip()
    return rest if len(rest.split()) >= 3 else body


def _handover_reply(ctx: Context, *, topic: str | None) -> Reply:
    return Reply(
        [texts.say("handover_opened", ctx.contact.language)],
        source="handover",
        topic=topic,
        open_handover=True,
        intent="human_handover",
    )


def _hubs_reply(session: Session, ctx: Context, *, intent: str) -> Reply:
    language = ctx.contact.language
    hubs = (
        hubs_for(
            session, organization_id=ctx.contact.organization_id, community_id=ctx.community_id
        )
        if ctx.community_id is not None
        else []
    )
    if not hubs:
        return Reply(
            [texts.say("no_hubs", language), texts.say("offer_person", language)],
            source="rasa",
            topic="info_hubs",
            answered=False,
            intent=intent,
            awaiting=Awaiting.handover_offer,
        )
    lines = [texts.say("hubs_intro", language)]
    for hub in hubs[:3]:
        name = f"{hub.name} ({texts.say('example', language)})" if hub.is_example else hub.name
        parts = [name, hub.address, hub.opening_hours, ", ".join(hub.services)]
        lines.append(" — ".join(p for p in parts if p))
    return Reply(
        ["\n".join(lines), texts.say("feedback_prompt", language)],
        source="rasa",
        topic="info_hubs",
        intent=intent,
        awaiting=Awaiting.feedback,
    )


def _topic_answer(session: Session, ctx: Context, topic: str) -> Reply:
    language = ctx.contact.language
    org_id = ctx.contact.organization_id
    if topic == "info_hubs":
        return _hubs_reply(session, ctx, intent=topic)
    messages: list[str] = []
    safety = topic in SAFETY_TOPICS
    if safety:
        lines = hotlines_for(
            session, organization_id=org_id, country=ctx.contact.country, topic=topic
        )
        if lines:
            messages.append(
                "\n".join(
                    [texts.say("safety_first", language)]
                    + [
                        f"{h.names.get(language) or h.names.get('es', '')}: {h.number}"
                        for h in lines
                    ]
                )
            )
        else:
            messages.append(texts.say("safety_no_hotline", language))
    entry = find_answer(
        session, organization_id=org_id, topic=topic, language=language, country=ctx.contact.country
    )
    if entry is None:
        messages.append(texts.say("no_answer_for_topic", language))
        messages.append(texts.say("offer_person", language))
        return Reply(
            messages,
            source="rasa",
            topic=topic,
            answered=False,
            awaiting=Awaiting.handover_offer,
            unanswered=True,
        )
    source = texts.say("source", language, url=entry.source_url, date=entry.reviewed_on.isoformat())
    messages.append(f"{entry.body}\n\n{source}")
    if safety:
        messages.append(texts.say("offer_person", language))
        return Reply(messages, source="rasa", topic=topic, awaiting=Awaiting.handover_offer)
    messages.append(texts.say("feedback_prompt", language))
    return Reply(messages, source="rasa", topic=topic, awaiting=Awaiting.feedback)


def answer_intent(
    session: Session, ctx: Context, *, intent: str, confidence: float | None
) -> Reply:
    """Faro's answer to what Rasa recognised."""
    language = ctx.contact.language
    reply: Reply
    if intent in TOPICS:
        reply = _topic_answer(session, ctx, intent)
    elif intent == "greet":
        reply = Reply(
            [texts.say("welcome", language), texts.topic_menu(language)],
            source="rasa",
            awaiting=Awaiting.menu,
        )
    elif intent == "menu":
        reply = Reply([texts.topic_menu(language)], source="rasa", awaiting=Awaiting.menu)
    elif intent == "choose_language":
        chosen = _language_named(ctx.message.body or "")
        if chosen is not None:
            reply = Reply(
                [texts.say("language_set", chosen), texts.topic_menu(chosen)],
                source="rasa",
                language=chosen,
                awaiting=Awaiting.menu,
            )
        else:
            reply = Reply(
                [texts.language_menu(language)], source="rasa", awaiting=Awaiting.language
            )
    elif intent == "human_handover" or (
        intent == "affirm" and ctx.state.awaiting == Awaiting.handover_offer
    ):
        reply = _handover_reply(ctx, topic=ctx.state.last_topic)
        reply.source = "rasa"
    elif intent == "deny" and ctx.state.awaiting == Awaiting.handover_offer:
        reply = Reply([texts.say("handover_declined", language)], source="rasa")
    elif (
        intent in ("affirm", "deny")
        and ctx.state.awaiting == Awaiting.feedback
        and ctx.state.last_topic
    ):
        useful = intent == "affirm"
        reply = Reply(
            [texts.say("feedback_yes" if useful else "feedback_no", language)],
            source="rasa",
            topic=ctx.state.last_topic,
            feedback=useful,
        )
    elif intent == "bot_challenge":
        reply = Reply([texts.say("bot", language)], source="rasa")
    elif intent == "goodbye":
        reply = Reply([texts.say("goodbye", language)], source="rasa")
    elif intent == "thanks":
        reply = Reply([texts.say("thanks", language)], source="rasa")
    elif intent == "out_of_scope":
        reply = Reply([texts.say("out_of_scope", language)], source="rasa", answered=False)
    else:  # nlu_fallback, a bare yes/no with nothing pending, or anything unexpected
        reply = Reply(
            [texts.say("unknown", language)], source="rasa", answered=False, unanswered=True
        )
    reply.intent = intent
    reply.confidence = confidence
    return reply


def redact(text: str) -> str:
    """Digits, emails and self-introduced names out of a question kept for analytics."""
    text = re.sub(r"[\w.+-]+@[\w-]+\.[\w.]+", "[email]", text)
    text = re.sub(
        r"(?i)\b(me llamo|mi nombre es|my name is|i am|soy|je m'appelle|je suis|m rele|"
        r"mwen rele|non mwen se)\s+([^\W\d_]+(?:\s+[A-ZÁÉÍÓÚÑ][^\W\d_]+)*)",
        lambda m: f"{m.group(1)} [name]",
        text,
    )
    return re.sub(r"\d", "#", text)[:1000]


def _insert_ignore(session: Session, model: type, values: dict[str, object]) -> None:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(model).values(**values).on_conflict_do_nothing())


def finish(session: Session, ctx: Context, reply: Reply, now: dt.datetime) -> bool:
    """Apply ``reply`` once: False (and nothing done) if the message was already handled."""
    claimed = session.execute(
        update(Message)
        .where(Message.id == ctx.message.id, Message.handled_at.is_(None))
        .values(handled_at=now)
        .returning(Message.id)
        .execution_options(synchronize_session=False)
    ).first()
    if claimed is None:
        return False
    contact, state = ctx.contact, ctx.state
    if reply.language is not None:
        contact.language = reply.language
    org_id = contact.organization_id
    first_of_session = state.disclaimer_at is None or (
        state.last_turn_at is not None and now - state.last_turn_at > SESSION_GAP
    )
    messages = list(reply.messages)
    if messages and first_of_session and reply.source in ("rasa", "menu", "language"):
        messages[0] = f"{texts.say('disclaimer', contact.language)}\n\n{messages[0]}"
        state.disclaimer_at = now
    if reply.open_handover and open_handover_of(session, contact.id) is None:
        session.add(
            Handover(
                organization_id=org_id,
                contact_id=contact.id,
                community_id=ctx.community_id,
                topic=reply.topic,
                language=contact.language,
                opened_at=now,
            )
        )
    if reply.feedback is not None and reply.topic:
        _insert_ignore(
            session,
            Feedback,
            {
                "organization_id": org_id,
                "message_id": ctx.message.id,
                "community_id": ctx.community_id,
                "topic": reply.topic,
                "language": contact.language,
                "useful": reply.feedback,
                "created_at": now,
            },
        )
    if reply.unanswered and ctx.message.body:
        _insert_ignore(
            session,
            UnansweredQuestion,
            {
                "organization_id": org_id,
                "message_id": ctx.message.id,
                "community_id": ctx.community_id,
                "language": contact.language,
                "text_redacted": redact(ctx.message.body),
                "intent": reply.intent,
                "confidence": reply.confidence,
                "created_at": now,
            },
        )
    _insert_ignore(
        session,
        Turn,
        {
            "organization_id": org_id,
            "message_id": ctx.message.id,
            "community_id": ctx.community_id,
            "language": contact.language,
            "intent": reply.intent,
            "confidence": reply.confidence,
            "topic": reply.topic,
            "answered": reply.answered,
            "source": reply.source,
            "created_at": now,
        },
    )
    state.awaiting = reply.awaiting
    if reply.topic and reply.feedback is None:
        state.last_topic = reply.topic
    state.last_turn_at = now
    # One send task for the whole reply: the sender submits one contact's messages in order,
    # so the hotline always arrives before the answer and the offer of a person.
    ids = [
        queue_text(
            session,
            contact=contact,
            sender=ctx.sender,
            purpose=Purpose.reply,
            body=text[:1600],
            now=now,
            publish=False,
        ).id
        for text in messages
    ]
    if ids:
        publish_after_commit(session, "messages.send", ids, queue=Purpose.reply.queue)
    return True
