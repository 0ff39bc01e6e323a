"""Typed ``make_*`` factories that write through the real services."""

from __future__ import annotations

import datetime as dt
import itertools
import random

import phonenumbers
from sqlalchemy.orm import Session

from campaigns.communities import Community, create_community
from campaigns.contacts.models import Contact
from campaigns.contacts.service import create_contact
from campaigns.crypto import AddressCipher
from campaigns.organizations.models import Organization, Role, User
from campaigns.organizations.service import create_organization, create_user, issue_token

_seq = itertools.count(1)
_rng = random.Random(20261128)


def make_organization(db: Session, *, name: str | None = None, country: str = "MX") -> Organization:
    return create_organization(db, name=name or f"Org {next(_seq)}", country=country)


def make_user(
    db: Session, *, org: Organization, role: Role = Role.admin, is_operator: bool = False
) -> User:
    return create_user(
        db,
        organization_id=org.id,
        email=f"user{next(_seq)}@example.org",
        role=role,
        is_operator=is_operator,
    )


def make_token(db: Session, *, user: User, days: int = 30, now: dt.datetime | None = None) -> str:
    _, secret = issue_token(db, user=user, days=days, now=now)
    return secret


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_community(
    db: Session,
    *,
    org: Organization,
    name: str | None = None,
    country: str = "MX",
    timezone: str = "America/Mexico_City",
    language: str = "es",
) -> Community:
    return create_community(
        db,
        organization_id=org.id,
        name=name or f"Community {next(_seq)}",
        country=country,
        timezone=timezone,
        default_language=language,
    )


def random_mobile(country: str = "MX") -> str:
    """A valid mobile number of ``country`` (E.164), different on each call."""
    example = phonenumbers.example_number_for_type(country, phonenumbers.PhoneNumberType.MOBILE)
    assert example is not None, country
    base = str(example.national_number)
    while True:
        tail = f"{_rng.randrange(10**4):04d}"
        candidate = phonenumbers.parse(f"+{example.country_code}{base[:-4]}{tail}")
        if phonenumbers.is_valid_number(candidate) and phonenumbers.number_type(candidate) in (
            phonenumbers.PhoneNumberType.MOBILE,
            phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
        ):
            return phonenumbers.format_number(candidate, phonenumbers.PhoneNumberFormat.E164)


def make_contact(
    db: Session,
    *,
    org: Organization,
    cipher: AddressCipher,
    phone: str | None = None,
    channel: str = "whatsapp",
    communities: list[Community] | None = None,
    language: str | None = None,
    consent: bool | None = True,
) -> Contact:
    return create_contact(
        db,
        cipher=cipher,
        organization_id=org.id,
        channel=channel,
        phone=phone or random_mobile(org.country),
        language=language,
        community_ids=[c.id for c in communities or []],
        consent=consent,
    )
