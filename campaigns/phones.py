"""Phone numbers: parse, check that they can receive WhatsApp or SMS, normalize to E.164."""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

from campaigns.errors import InvalidInput

_MOBILE_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
COUNTRIES: frozenset[str] = frozenset(r for r in phonenumbers.SUPPORTED_REGIONS if r.isalpha())


@dataclass(frozen=True)
class Phone:
    e164: str
    country: str


def normalize_country(value: str, *, field: str = "country") -> str:
    code = value.strip().upper()
    if code not in COUNTRIES:
        raise InvalidInput(f"unknown country code {value!r}: use ISO 3166-1 alpha-2", field=field)
    return code


def parse_mobile(raw: str, *, default_country: str | None = None, field: str = "phone") -> Phone:
    """Parse ``raw`` into an E.164 mobile number, or raise ``InvalidInput`` naming why.

    Accepts the ``whatsapp:`` prefix Twilio uses, and Mexico's old ``+521`` mobile prefix that
    WhatsApp still sends for Mexican numbers (the same line as ``+52`` since 2019).
    """
    text = raw.strip()
    if text.lower().startswith("whatsapp:"):
        text = text[len("whatsapp:") :]
    if not text:
        raise InvalidInput("phone number is empty", field=field)
    if len(text) > 32:
        raise InvalidInput("phone number is too long", field=field)
    try:
        number = phonenumbers.parse(text, default_country)
    except NumberParseException as exc:
        hint = "" if default_country else " (give it in +<country code> form)"
        raise InvalidInput(f"not a phone number{hint}", field=field) from exc
    if number.country_code == 52 and str(number.national_number).startswith("1"):
        national = str(number.national_number)
        if len(national) == 11:
            number = phonenumbers.parse(f"+52{national[1:]}")
    if not phonenumbers.is_valid_number(number):
        raise InvalidInput("not a valid phone number for its country", field=field)
    if phonenumbers.number_type(number) not in _MOBILE_TYPES:
        raise InvalidInput("not a mobile number: WhatsApp and SMS need a mobile", field=field)
    region = phonenumbers.region_code_for_number(number) or ""
    return Phone(
        e164=phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        country=region,
    )
