"""Poll replies: a bare answer to a poll a contact received is counted, not sent to the assistant.

``record_poll_reply`` runs first in ``turns.before_assistant``.  A reply counts when:

- the contact's latest outbound campaign message (``Message.campaign_id``, purpose
  ``campaign``; test sends never count) whose campaign is a poll was created at most
  ``response_window_hours`` before the reply, and
- the whole reply names exactly one option: its number ("2", "2.", "opción 2"), a number word in
  any of the four languages ("dos", "la segunda", "two", "de", "deux"…), one of the option's
  labels or aliases in any language, or — in a yes/no poll — a yes or no word ("sí", "wi",
  "oui", "non"…).  A word that would name two options is no answer.

One answer counts per contact and poll: a later answer inside the window replaces the earlier
one (people correct themselves).  Replies outside the window, to other campaigns, or that are
not an option go to the assistant as usual.

Results are counted per option and per target community.  Cells of fewer than
``SUPPRESS_BELOW`` people are shown as ``"<5"`` to everyone but admins (the analytics privacy
rule: a small cell can point at a person).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from campaigns.communities import Community
from campaigns.contacts.models import Contact, ContactCommunity
from campaigns.messaging.models import Direction, Message, MessageStatus, Purpose
from campaigns.outreach.editing import get_campaign, options_of
from campaigns.outreach.engagement import PollResponse
from campaigns.outreach.models import (
    Campaign,
    CampaignCommunity,
    CampaignKind,
    PollOption,
)
from campaigns.outreach.validation import normalize_reply

SUPPRESS_BELOW = 5
SUPPRESSED = "<5"
# The longest window a campaign may have (editing.MAX_RESPONSE_WINDOW_HOURS is 720).
LOOKBACK = dt.timedelta(hours=720)

# Number words by option number, in es, en, ht and fr (normalized: no accents, lower case).
_NUMBER_WORDS: dict[int, tuple[str, ...]] = {
    1: (
        "uno",
        "una",
        "primero",
        "primera",
        "el primero",
        "la primera",
        "one",
        "first",
        "the first",
        "en",
        "youn",
        "premye",
        "un",
        "une",
        "premier",
        "premiere",
        "le premier",
        "la premiere",
    ),
    2: (
        "dos",
        "segundo",
        "segunda",
        "el segundo",
        "la segunda",
        "two",
        "second",
        "the second",
        "de",
        "dezyem",
        "deux",
        "deuxieme",
        "le deuxieme",
        "la deuxieme",
        "seconde",
    ),
    3: (
        "tres",
        "tercero",
        "tercera",
        "el tercero",
        "la tercera",
        "three",
        "third",
        "the third",
        "twa",
        "twazyem",
        "trois",
        "troisieme",
        "le troisieme",
        "la troisieme",
    ),
    4: (
        "cuatro",
        "cuarto",
        "cuarta",
        "la cuarta",
        "el cuarto",
        "four",
        "fourth",
        "kat",
        "katriyem",
        "quatre",
        "quatrieme",
    ),
    5: (
        "cinco",
        "quinto",
        "quinta",
        "la quinta",
        "five",
        "fifth",
        "senk",
        "senkyem",
        "cinq",
        "cinquieme",
    ),
    6: ("seis", "sexto", "sexta", "six", "sixth", "sis", "sizyem", "sixieme"),
    7: ("siete", "septimo", "septima", "seven", "seventh", "set", "setyem", "sept", "septieme"),
    8: ("ocho", "octavo", "octava", "eight", "eighth", "uit", "uityem", "huit", "huitieme"),
    9: ("nueve", "noveno", "novena", "nine", "ninth", "nef", "nevyem", "neuf", "neuvieme"),
    10: ("diez", "decimo", "decima", "ten", "tenth", "dis", "dizyem", "dix", "dixieme"),
}
_YES_WORDS = ("si", "yes", "wi", "oui", "y", "claro", "ok")
_NO_WORDS = ("no", "non", "nope", "pa vle")
_NUMBERED = re.compile(r"^(?:opcion|option|opsyon|respuesta|answer|repons|reponse|#)?\s*(\d{1,2})$")

_THANKS = {
    "es": "Gracias, registramos tu respuesta: {answer}",
    "en": "Thank you, we recorded your answer: {answer}",
    "ht": "Mèsi, nou anrejistre repons ou: {answer}",
    "fr": "Merci, nous avons enregistré votre réponse : {answer}",
}


@dataclass(frozen=True)
class PollAnswer:
    campaign_id: int
    option_number: int
    thanks: str


def _is_yes_no(options: list[PollOption]) -> bool:
    if len(options) != 2:
        return False
    first = {normalize_reply(v) for v in options[0].labels.values()}
    second = {normalize_reply(v) for v in options[1].labels.values()}
    return bool(first) and first <= set(_YES_WORDS) and bool(second) and second <= set(_NO_WORDS)


def _words(options: list[PollOption]) -> dict[str, set[int]]:
    """Every reply word → the option numbers it names (more than one: ambiguous)."""
    named: dict[str, set[int]] = {}

    def add(words: Iterable[str], number: int) -> None:
        for word in words:
            norm = normalize_reply(word)
            if norm:
                named.setdefault(norm, set()).add(number)

    numbers = {o.number for o in options}
    for option in options:
        add(option.labels.values(), option.number)
        for words in option.aliases.values():
            add(words, option.number)
    if _is_yes_no(options):
        add(_YES_WORDS, options[0].number)
        add(_NO_WORDS, options[1].number)
    for number, number_words in _NUMBER_WORDS.items():
        if number in numbers:
            # A label or alias of another option wins over a number word ("no" in es, "de"…).
            add([w for w in number_words if normalize_reply(w) not in named], number)
    return named


def match_option(text: str, options: list[PollOption]) -> int | None:
    """The option number ``text`` names, or None (not an answer, or ambiguous)."""
    norm = normalize_reply(text)
    if not norm:
        return None
    numbers = {o.number for o in options}
    numbered = _NUMBERED.match(norm)
    if numbered is not None:
        value = int(numbered.group(1))
        return value if value in numbers else None
    found = _words(options).get(norm, set())
    return next(iter(found)) if len(found) == 1 else None


def _latest_poll(
    session: Session, *, contact_id: int, now: dt.datetime
) -> tuple[Campaign, dt.datetime] | None:
    row = session.execute(
        select(Campaign, Message.created_at)
        .join(Message, Message.campaign_id == Campaign.id)
        .where(
            Message.contact_id == contact_id,
            Message.direction == Direction.outbound,
            Message.purpose == Purpose.campaign,
            Message.status.not_in((MessageStatus.failed, MessageStatus.undelivered)),
            Message.created_at <= now,
            Message.created_at > now - LOOKBACK,
            Campaign.kind == CampaignKind.poll,
        )
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    campaign, sent_at = row
    return campaign, sent_at


def _community_of(session: Session, *, contact_id: int, campaign_id: int) -> int | None:
    return session.scalar(
        select(ContactCommunity.community_id)
        .join(
            CampaignCommunity,
            (CampaignCommunity.community_id == ContactCommunity.community_id)
            & (CampaignCommunity.campaign_id == campaign_id),
        )
        .where(ContactCommunity.contact_id == contact_id)
        .order_by(ContactCommunity.joined_at, ContactCommunity.community_id)
        .limit(1)
    )


def record_poll_reply(
    session: Session,
    *,
    contact: Contact,
    message: Message,
    now: dt.datetime,
    asked_since: dt.datetime | None = None,
) -> PollAnswer | None:
    """Count ``message`` as the contact's answer to the poll they last received, if it is one.

    Returns the answer (with the thanks to send, in the contact's language), or None when the
    message is not a poll reply and should go to the assistant.  ``asked_since``: when the
    assistant last asked a question of its own that is still open; a poll sent before it yields
    ("1" then answers the assistant's question, not the older poll).
    """
    body = message.body or ""
    if message.kind != "text" or not body.strip() or len(body) > 60:
        return None
    latest = _latest_poll(session, contact_id=contact.id, now=now)
    if latest is None:
        return None
    campaign, sent_at = latest
    if asked_since is not None and asked_since > sent_at:
        return None
    window = dt.timedelta(hours=campaign.response_window_hours or 72)
    if now - sent_at > window:
        return None
    options = options_of(session, campaign.id)
    number = match_option(body, options)
    if number is None:
        return None
    values = {
        "organization_id": campaign.organization_id,
        "campaign_id": campaign.id,
        "contact_id": contact.id,
        "option_number": number,
        "community_id": _community_of(session, contact_id=contact.id, campaign_id=campaign.id),
        "language": contact.language,
        "message_id": message.id,
        "created_at": now,
    }
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(PollResponse).values(**values)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["campaign_id", "contact_id"],
            set_={
                k: stmt.excluded[k]
                for k in ("option_number", "community_id", "language", "message_id", "created_at")
            },
        )
    )
    option = next(o for o in options if o.number == number)
    label = option.labels.get(contact.language) or option.labels.get(campaign.fallback_language, "")
    answer = f"{number} {label}".strip()
    thanks = _THANKS.get(contact.language, _THANKS["es"]).format(answer=answer)
    return PollAnswer(campaign_id=campaign.id, option_number=number, thanks=thanks)


# --- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommunityResult:
    community_id: int | None
    name: str | None
    counts: dict[int, int | str]


@dataclass(frozen=True)
class PollResults:
    campaign_id: int
    options: list[PollOption]
    communities: list[CommunityResult]
    suppressed: bool


def poll_results(session: Session, campaign_id: int, *, exact: bool) -> PollResults:
    """Answers per option and target community; small cells as ``"<5"`` unless ``exact``."""
    campaign = get_campaign(session, campaign_id)
    options = options_of(session, campaign.id)
    rows = session.execute(
        select(PollResponse.community_id, PollResponse.option_number, func.count())
        .where(PollResponse.campaign_id == campaign.id)
        .group_by(PollResponse.community_id, PollResponse.option_number)
    ).all()
    raw: dict[int | None, dict[int, int]] = {}
    for community_id, number, count in rows:
        raw.setdefault(community_id, {})[number] = count
    names = dict(
        session.execute(
            select(Community.id, Community.name)
            .join(CampaignCommunity, CampaignCommunity.community_id == Community.id)
            .where(CampaignCommunity.campaign_id == campaign.id)
        ).all()
    )
    ids: list[int | None] = [*sorted(names)]
    ids += sorted(i for i in raw if i is not None and i not in names)
    if None in raw:
        ids.append(None)

    def cell(count: int) -> int | str:
        if exact or count == 0 or count >= SUPPRESS_BELOW:
            return count
        return SUPPRESSED

    communities = [
        CommunityResult(
            community_id=cid,
            name=names.get(cid) if cid is not None else None,
            counts={o.number: cell(raw.get(cid, {}).get(o.number, 0)) for o in options},
        )
        for cid in ids
    ]
    return PollResults(
        campaign_id=campaign.id, options=options, communities=communities, suppressed=not exact
    )
