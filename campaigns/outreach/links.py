"""Tracked links: URLs in campaign content become ``{FARO_PUBLIC_URL}/l/{code}``.

One link per (campaign, community, URL), so clicks are counted per community without a code per
person (no click can be tied to a contact).  The dispatcher calls ``track_links`` on the text it
is about to send; ``GET /l/{code}`` (``follow``) records a click and redirects to the stored URL.

Only ``http`` and ``https`` URLs with a host are tracked; anything else in the text
(``javascript:``, ``data:``, ``mailto:``…) is left exactly as written, and the redirect only
ever goes to a URL stored here, so ``/l/`` is no open redirect.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import string
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from campaigns.db import utcnow
from campaigns.errors import NotFound
from campaigns.outreach.editing import get_campaign
from campaigns.outreach.engagement import LinkClick, TrackedLink

ALPHABET = string.ascii_letters + string.digits
CODE_LENGTH = 8
CODE = re.compile(r"[0-9A-Za-z]{8}")
MAX_URL = 2000
# A URL ends at whitespace or a character that cannot be part of one in running text.
URL = re.compile(r"""https?://[^\s<>"'`{}|\\^]+""", re.IGNORECASE)
TRAILING = ".,;:!?)]\u00bb\u201d\u2019"
PREVIEW_FAMILY = "preview"
_PREVIEWERS = re.compile(
    r"whatsapp|facebookexternalhit|facebot|telegrambot|twitterbot|slackbot|discordbot|"
    r"skypeuripreview|bot\b|crawler|spider|preview",
    re.IGNORECASE,
)


def _trackable(url: str) -> bool:
    parts = urlsplit(url)
    return (
        parts.scheme.lower() in ("http", "https")
        and bool(parts.hostname)
        and len(url) <= MAX_URL
        and "@" not in parts.netloc  # user:pass@host hides the real host from a reader
    )


def _link_for(
    session: Session, *, organization_id: int, campaign_id: int, community_id: int, url: str
) -> TrackedLink:
    where = (
        TrackedLink.campaign_id == campaign_id,
        TrackedLink.community_id == community_id,
        TrackedLink.url == url,
    )
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    for _ in range(5):
        found = session.scalar(select(TrackedLink).where(*where))
        if found is not None:
            return found
        # Two dispatchers may race for the same URL; the loser reads the winner's row.
        session.execute(
            insert(TrackedLink)
            .values(
                organization_id=organization_id,
                campaign_id=campaign_id,
                community_id=community_id,
                url=url,
                code="".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH)),
                created_at=utcnow(),
            )
            .on_conflict_do_nothing()
        )
    raise RuntimeError("could not allocate a tracked link code")  # 62^8 codes: never in practice


def track_links(
    session: Session, *, campaign_id: int, community_id: int, text: str, public_url: str
) -> str:
    """``text`` with each http(s) URL replaced by its tracked link for this campaign and
    community (created on first use, reused after).  Other text is unchanged."""
    campaign = get_campaign(session, campaign_id)
    base = public_url.rstrip("/")

    def replace(match: re.Match[str]) -> str:
        found = match.group(0)
        url = found.rstrip(TRAILING)
        tail = found[len(url) :]
        if not _trackable(url):
            return found
        link = _link_for(
            session,
            organization_id=campaign.organization_id,
            campaign_id=campaign.id,
            community_id=community_id,
            url=url,
        )
        return f"{base}/l/{link.code}{tail}"

    return URL.sub(replace, text)


def user_agent_family(user_agent: str | None) -> str:
    """A coarse client family; the user agent itself is not kept."""
    ua = user_agent or ""
    if _PREVIEWERS.search(ua):
        return PREVIEW_FAMILY
    lowered = ua.lower()
    for needle, family in (
        ("iphone", "ios"),
        ("ipad", "ios"),
        ("android", "android"),
        ("windows", "windows"),
        ("macintosh", "mac"),
        ("linux", "linux"),
    ):
        if needle in lowered:
            return family
    return "other"


def follow(
    session: Session, *, code: str, user_agent: str | None, now: dt.datetime | None = None
) -> str:
    """Record a click on ``code`` and return the URL to redirect to; ``NotFound`` otherwise."""
    link = (
        session.scalar(select(TrackedLink).where(TrackedLink.code == code))
        if CODE.fullmatch(code)
        else None
    )
    if link is None or not _trackable(link.url):
        raise NotFound("this link does not exist")
    session.add(
        LinkClick(
            link_id=link.id,
            clicked_at=now or utcnow(),
            user_agent_family=user_agent_family(user_agent),
        )
    )
    return link.url


@dataclass(frozen=True)
class LinkStats:
    code: str
    url: str
    community_id: int
    clicks: int
    preview_fetches: int
    created_at: dt.datetime


def link_stats(session: Session, campaign_id: int) -> list[LinkStats]:
    """Clicks per tracked link of a campaign; link-preview fetches are counted apart."""
    campaign = get_campaign(session, campaign_id)
    is_preview = LinkClick.user_agent_family == PREVIEW_FAMILY
    rows = session.execute(
        select(
            TrackedLink,
            func.count(LinkClick.id).filter(~is_preview),
            func.count(LinkClick.id).filter(is_preview),
        )
        .outerjoin(LinkClick, LinkClick.link_id == TrackedLink.id)
        .where(TrackedLink.campaign_id == campaign.id)
        .group_by(TrackedLink.id)
        .order_by(TrackedLink.community_id, TrackedLink.id)
    ).all()
    return [
        LinkStats(
            code=link.code,
            url=link.url,
            community_id=link.community_id,
            clicks=clicks,
            preview_fetches=previews,
            created_at=link.created_at,
        )
        for link, clicks, previews in rows
    ]
