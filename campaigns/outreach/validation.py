"""Checks on what a campaign would send, and the rendering the checks and the preview share.

Limits (Twilio's):

==================================  ======  =================================================
what                                limit   why
==================================  ======  =================================================
SMS text (with poll options)        1,600   Twilio refuses a longer ``Body`` (error 21617)
WhatsApp text mirroring a template  1,024   a WhatsApp template body's limit
WhatsApp free text                  4,096   a WhatsApp session message's limit
==================================  ======  =================================================
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from campaigns.communities import validate_language
from campaigns.contacts.models import Channel
from campaigns.errors import InvalidInput
from campaigns.messaging.outbound import CONTENT_SID
from campaigns.messaging.segments import MAX_BODY_CHARACTERS, within_twilio_limit
from campaigns.outreach.models import CampaignKind

MAX_WHATSAPP_TEMPLATE_BODY = 1024
MAX_WHATSAPP_TEXT = 4096
MAX_OPTIONS = 10
MAX_LABEL = 100
MAX_ALIAS = 40
MAX_STEPS = 30
PLACEHOLDER = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")


@dataclass(frozen=True)
class ContentInput:
    language: str
    sms_text: str | None = None
    whatsapp_content_sid: str | None = None
    whatsapp_variables: Mapping[str, str] = field(default_factory=dict)
    whatsapp_text: str | None = None
    step: int = 1
    offset_days: int = 0


@dataclass(frozen=True)
class OptionInput:
    number: int
    labels: Mapping[str, str]
    aliases: Mapping[str, Sequence[str]] = field(default_factory=dict)


class ContentLike(Protocol):
    """What rendering needs of a content row (a ``CampaignContent`` or a ``ContentInput``)."""

    @property
    def language(self) -> str: ...
    @property
    def step(self) -> int: ...
    @property
    def sms_text(self) -> str | None: ...
    @property
    def whatsapp_content_sid(self) -> str | None: ...
    @property
    def whatsapp_variables(self) -> Mapping[str, str]: ...
    @property
    def whatsapp_text(self) -> str | None: ...


class OptionLike(Protocol):
    @property
    def number(self) -> int: ...
    @property
    def labels(self) -> Mapping[str, str]: ...


# --- rendering ---------------------------------------------------------------------------------


def fill_placeholders(text: str, variables: Mapping[str, str]) -> str:
    """``text`` with each ``{{name}}`` replaced by its variable (unknown ones stay as they are)."""
    return PLACEHOLDER.sub(lambda m: variables.get(m.group(1), m.group(0)), text)


def options_block(options: Sequence[OptionLike], *, language: str, fallback: str) -> str:
    """The numbered answers a poll question ends with: "1 Sí\\n2 No"."""
    lines = []
    for option in sorted(options, key=lambda o: o.number):
        label = option.labels.get(language) or option.labels.get(fallback) or ""
        lines.append(f"{option.number} {label}".rstrip())
    return "\n".join(lines)


def with_options(text: str, options: Sequence[OptionLike], *, language: str, fallback: str) -> str:
    if not options:
        return text
    return f"{text.rstrip()}\n\n{options_block(options, language=language, fallback=fallback)}"


def rendered_sms(row: ContentLike, options: Sequence[OptionLike], *, fallback: str) -> str | None:
    if row.sms_text is None:
        return None
    return with_options(row.sms_text, options, language=row.language, fallback=fallback)


def rendered_whatsapp_text(
    row: ContentLike, options: Sequence[OptionLike], *, fallback: str
) -> str | None:
    """Free text for the 24-hour window: ``whatsapp_text`` (variables filled), else the SMS."""
    if row.whatsapp_text is not None:
        text = fill_placeholders(row.whatsapp_text, row.whatsapp_variables)
    elif row.sms_text is not None:
        text = row.sms_text
    else:
        return None
    return with_options(text, options, language=row.language, fallback=fallback)


# --- single fields -----------------------------------------------------------------------------


def validate_filters(raw: Mapping[str, object] | None) -> dict[str, list[str]]:
    """``{"languages": [...], "channels": [...]}``, each optional; empty means everyone."""
    if not raw:
        return {}
    unknown = set(raw) - {"languages", "channels"}
    if unknown:
        raise InvalidInput(
            f"unknown filter {sorted(unknown)[0]!r}: use languages and channels",
            field="filters",
        )
    result: dict[str, list[str]] = {}
    languages = raw.get("languages") or []
    channels = raw.get("channels") or []
    if not isinstance(languages, list) or not isinstance(channels, list):
        raise InvalidInput("filters.languages and filters.channels are lists", field="filters")
    if languages:
        result["languages"] = sorted(
            {validate_language(str(v), field="filters.languages") for v in languages}
        )
    if channels:
        allowed = [c.value for c in Channel]
        for value in channels:
            if value not in allowed:
                raise InvalidInput(
                    f"unknown channel {value!r}: use {' or '.join(allowed)}",
                    field="filters.channels",
                )
        result["channels"] = sorted(set(channels))
    return result


def check_sms(text: str, *, where: str) -> None:
    if not within_twilio_limit(text):
        units = len(text.encode("utf-16-le")) // 2
        raise InvalidInput(
            f"the SMS text ({where}) has {units:,} characters (an emoji counts 2); the limit is "
            f"{MAX_BODY_CHARACTERS:,}",
            field="sms_text",
        )


def check_whatsapp_text(text: str, *, template: bool, where: str) -> None:
    limit = MAX_WHATSAPP_TEMPLATE_BODY if template else MAX_WHATSAPP_TEXT
    if len(text) > limit:
        kind = "template body" if template else "free text"
        raise InvalidInput(
            f"the WhatsApp {kind} ({where}) has {len(text):,} characters; the limit is {limit:,}",
            field="whatsapp_text",
        )


def validate_content(row: ContentInput, *, kind: CampaignKind) -> ContentInput:
    """One content row, normalized; ``InvalidInput`` names what is wrong and where."""
    language = validate_language(row.language)
    where = f"{language}, step {row.step}"

    def clean(value: str | None) -> str | None:
        if value is None:
            return None
        return value.strip() or None

    sms_text, wa_text, sid = (
        clean(row.sms_text),
        clean(row.whatsapp_text),
        clean(row.whatsapp_content_sid),
    )
    if sms_text is None and wa_text is None and sid is None:
        raise InvalidInput(
            f"content ({where}) needs an SMS text, a WhatsApp text or a WhatsApp template",
            field="sms_text",
        )
    if kind == CampaignKind.drip:
        if not 1 <= row.step <= MAX_STEPS:
            raise InvalidInput(f"a drip step is 1 to {MAX_STEPS}", field="step")
        if not 0 <= row.offset_days <= 3650:
            raise InvalidInput("offset_days is 0 to 3650", field="offset_days")
    elif row.step != 1 or row.offset_days != 0:
        raise InvalidInput("only drip campaigns have steps and offsets", field="step")
    if sid is not None and not CONTENT_SID.fullmatch(sid):
        raise InvalidInput(
            f"whatsapp_content_sid ({where}) must be a Twilio Content SID: HX and 32 hex digits",
            field="whatsapp_content_sid",
        )
    variables = {str(k): str(v) for k, v in row.whatsapp_variables.items()}
    if variables and sid is None:
        raise InvalidInput(
            f"whatsapp_variables ({where}) belong to a template: set whatsapp_content_sid",
            field="whatsapp_variables",
        )
    if wa_text is not None:
        missing = sorted({m for m in PLACEHOLDER.findall(wa_text) if m not in variables})
        if missing:
            raise InvalidInput(
                f"whatsapp_text ({where}) uses {{{{{missing[0]}}}}} but whatsapp_variables has "
                f"no {missing[0]!r}",
                field="whatsapp_variables",
                details={"missing": missing},
            )
        check_whatsapp_text(
            fill_placeholders(wa_text, variables), template=sid is not None, where=where
        )
    if sms_text is not None:
        check_sms(sms_text, where=where)
    return ContentInput(
        language=language,
        sms_text=sms_text,
        whatsapp_content_sid=sid,
        whatsapp_variables=variables,
        whatsapp_text=wa_text,
        step=row.step,
        offset_days=row.offset_days,
    )


def validate_contents(rows: Sequence[ContentInput], *, kind: CampaignKind) -> list[ContentInput]:
    cleaned = [validate_content(r, kind=kind) for r in rows]
    seen: set[tuple[str, int]] = set()
    offsets: dict[int, int] = {}
    for row in cleaned:
        key = (row.language, row.step)
        if key in seen:
            raise InvalidInput(
                f"two contents for language {row.language}, step {row.step}", field="language"
            )
        seen.add(key)
        if offsets.setdefault(row.step, row.offset_days) != row.offset_days:
            raise InvalidInput(
                f"step {row.step} has different offset_days in different languages",
                field="offset_days",
            )
    steps = sorted(offsets)
    if steps and steps != list(range(1, len(steps) + 1)):
        raise InvalidInput("drip steps are numbered 1, 2, 3… without gaps", field="step")
    if [offsets[s] for s in steps] != sorted(offsets[s] for s in steps):
        raise InvalidInput("a later drip step cannot come before an earlier one", field="step")
    return cleaned


def normalize_reply(text: str) -> str:
    """A reply word as options are matched: case, accents and outer punctuation ignored."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(bare.strip(" .,;:!¡?¿\"'()").split())


def validate_options(
    options: Sequence[OptionInput], *, kind: CampaignKind, fallback_language: str
) -> list[OptionInput]:
    if kind != CampaignKind.poll:
        if options:
            raise InvalidInput("only polls have options", field="options")
        return []
    if len(options) < 2:
        raise InvalidInput("a poll needs at least 2 options", field="options")
    if len(options) > MAX_OPTIONS:
        raise InvalidInput(f"a poll has at most {MAX_OPTIONS} options", field="options")
    numbers = sorted(o.number for o in options)
    if numbers != list(range(1, len(options) + 1)):
        raise InvalidInput("poll options are numbered 1, 2, 3… without gaps", field="options")
    taken: dict[tuple[str, str], int] = {}
    cleaned: list[OptionInput] = []
    for option in sorted(options, key=lambda o: o.number):
        labels: dict[str, str] = {}
        for lang, label in option.labels.items():
            code = validate_language(lang, field="labels")
            text = label.strip()
            if not text or len(text) > MAX_LABEL:
                raise InvalidInput(
                    f"option {option.number}: a label has 1 to {MAX_LABEL} characters",
                    field="labels",
                )
            labels[code] = text
        if fallback_language not in labels:
            raise InvalidInput(
                f"option {option.number} needs a label in the fallback language "
                f"({fallback_language})",
                field="labels",
            )
        aliases: dict[str, list[str]] = {}
        for lang, words in option.aliases.items():
            code = validate_language(lang, field="aliases")
            kept: list[str] = []
            for word in words:
                norm = normalize_reply(word)
                if not norm or len(norm) > MAX_ALIAS:
                    raise InvalidInput(
                        f"option {option.number}: an alias has 1 to {MAX_ALIAS} characters",
                        field="aliases",
                    )
                if norm.isdigit():
                    raise InvalidInput(
                        f"option {option.number}: {word!r} is a number; numbers answer by "
                        "themselves",
                        field="aliases",
                    )
                other = taken.setdefault((code, norm), option.number)
                if other != option.number:
                    raise InvalidInput(
                        f"{word!r} ({code}) answers both option {other} and option {option.number}",
                        field="aliases",
                    )
                if norm not in kept:
                    kept.append(norm)
            if kept:
                aliases[code] = kept
        cleaned.append(OptionInput(number=option.number, labels=labels, aliases=aliases))
    return cleaned


def check_rendered(
    rows: Sequence[ContentLike], options: Sequence[OptionLike], *, fallback: str
) -> None:
    """Every message as it would be sent (poll options appended) is within the limits."""
    for row in rows:
        where = f"{row.language}, step {row.step}"
        sms = rendered_sms(row, options, fallback=fallback)
        if sms is not None:
            check_sms(sms, where=where + ", with the poll options")
        if row.whatsapp_text is not None:
            text = rendered_whatsapp_text(row, options, fallback=fallback)
            assert text is not None
            # Sent as free text inside the window; the template body was checked on save.
            check_whatsapp_text(text, template=False, where=where + ", with the poll options")
