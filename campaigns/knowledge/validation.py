"""Checks shared by entries, hotlines and hubs; each raises ``InvalidInput`` naming the field."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from campaigns.db import session_org
from campaigns.errors import InvalidInput
from campaigns.knowledge.models import REVIEW_PERIOD

MAX_BODY = 1000
MAX_URL = 500
# Bodies go out as WhatsApp/SMS text: markup would be shown raw, control characters break sends.
_TAG = re.compile(r"</?[A-Za-z!][^>]*>")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def plain_text(value: str, *, field: str, max_length: int, required: bool = True) -> str:
    text = value.strip()
    if required and not text:
        raise InvalidInput(f"{field} must not be empty", field=field)
    if len(text) > max_length:
        raise InvalidInput(f"{field} has more than {max_length} characters", field=field)
    if _CONTROL.search(text):
        raise InvalidInput(f"{field} contains control characters", field=field)
    if _TAG.search(text):
        raise InvalidInput(f"{field} must be plain text, without HTML tags", field=field)
    return text


def validate_body(value: str, *, field: str = "body") -> str:
    return plain_text(value, field=field, max_length=MAX_BODY)


def validate_source_url(value: str, *, field: str = "source_url") -> str:
    url = value.strip()
    if len(url) > MAX_URL:
        raise InvalidInput(f"{field} has more than {MAX_URL} characters", field=field)
    parts = urlsplit(url)
    # Some official pages are only published over plain http (Panama's ONPAR): cite them as
    # they are rather than invent an https address.
    if parts.scheme not in ("https", "http") or not parts.hostname or any(c.isspace() for c in url):
        raise InvalidInput(f"{field} must be an https:// (or http://) address", field=field)
    return url


def review_dates(reviewed_on: dt.date, review_due: dt.date | None) -> tuple[dt.date, dt.date]:
    """The review dates, ``review_due`` defaulting to 180 days after ``reviewed_on``."""
    due = review_due if review_due is not None else reviewed_on + REVIEW_PERIOD
    if due <= reviewed_on:
        raise InvalidInput("review_due must come after reviewed_on", field="review_due")
    return reviewed_on, due


def require_org(session: Session, organization_id: int | None) -> int:
    """The organization a new row belongs to: the one given, else the session's."""
    org_id = organization_id or session_org(session)
    if org_id is None:
        raise InvalidInput("organization is required", field="organization_id")
    return org_id
