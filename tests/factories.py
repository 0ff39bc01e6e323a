"""Typed ``make_*`` factories that write through the real services."""

from __future__ import annotations

import datetime as dt
import itertools
import random
import uuid
from typing import Any
from urllib.parse import urlencode

import httpx
import phonenumbers
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from twilio.request_validator import RequestValidator

from campaigns.communities import Community, create_community
from campaigns.contacts.models import Contact
from campaigns.contacts.service import create_contact
from campaigns.crypto import AddressCipher
from campaigns.messaging.models import Sender
from campaigns.messaging.senders import create_sender
from campaigns.organizations.models import Organization, Role, User
from campaigns.organizations.service import create_organization, create_user, issue_token

TWILIO_SID = "AC" + "5" * 32
TWILIO_TOKEN = "test-auth-token-for-faro"

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


_given: set[str] = set()


def random_mobile(country: str = "MX") -> str:
    """A valid mobile number of ``country`` (E.164), different on each call."""
    example = phonenumbers.example_number_for_type(country, phonenumbers.PhoneNumberType.MOBILE)
    assert example is not None, country
    base = str(example.national_number)
    for _ in range(100_000):
        tail = f"{_rng.randrange(10**4):04d}"
        candidate = phonenumbers.parse(f"+{example.country_code}{base[:-4]}{tail}")
        if phonenumbers.is_valid_number(candidate) and phonenumbers.number_type(candidate) in (
            phonenumbers.PhoneNumberType.MOBILE,
            phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
        ):
            number = phonenumbers.format_number(candidate, phonenumbers.PhoneNumberFormat.E164)
            # Only 10,000 tails: without this, two contacts of one test could share a number.
            if number not in _given:
                _given.add(number)
                return number
    raise AssertionError(f"no unused mobile number of {country} left in this test run")


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


def make_sender(
    db: Session,
    *,
    org: Organization,
    channel: str = "whatsapp",
    address: str = "+14155238886",
    rate: float = 50.0,
    simulated: bool = False,
) -> Sender:
    return create_sender(
        db,
        organization_id=org.id,
        channel=channel,
        address=address,
        rate_per_second=rate,
        is_simulated=simulated,
    )


def twilio_form(
    *,
    sender: Sender,
    phone: str,
    body: str = "hola",
    sid: str | None = None,
    **extra: str,
) -> dict[str, str]:
    """The form Twilio posts for an inbound message."""
    prefix = "whatsapp:" if sender.channel.value == "whatsapp" else ""
    form = {
        "MessageSid": sid or "SM" + uuid.uuid4().hex,
        "AccountSid": TWILIO_SID,
        "From": prefix + phone,
        "To": prefix + sender.address,
        "Body": body,
        "NumMedia": "0",
        "ApiVersion": "2010-04-01",
    }
    form.update(extra)
    return form


def signed_post(
    client: TestClient | httpx.Client,
    path: str,
    form: dict[str, str],
    *,
    public_url: str = "https://faro.test",
    token: str = TWILIO_TOKEN,
    query: str = "",
) -> Any:
    url = public_url + path + (f"?{query}" if query else "")
    signature = RequestValidator(token).compute_signature(url, form)
    return client.post(
        path + (f"?{query}" if query else ""),
        content=urlencode(form).encode(),
        headers={
            "X-Twilio-Signature": signature,
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
