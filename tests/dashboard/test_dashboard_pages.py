"""Dashboard pages and CSV exports through the real app: scoping, suppression, bad filters,
escaping, and spreadsheet-safe downloads."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from campaigns.analytics.models import CampaignDay, TopicDay
from campaigns.db import utcnow
from campaigns.organizations.models import Organization, Role
from tests.campaigns_engine.factories import make_campaign
from tests.dashboard.conftest import make_person, sign_in
from tests.factories import make_community, make_organization

Web = Callable[[], TestClient]


def _seed(db: Session, org: Organization, *, community_name: str) -> tuple[int, int]:
    author = make_person(db, org=org, role=Role.manager).user
    community = make_community(db, org=org, name=community_name)
    campaign = make_campaign(db, org=org, author=author, communities=[community])
    day = utcnow().date() - dt.timedelta(days=1)
    for language, targeted, replies in (("es", 50, 20), ("ht", 12, 2)):
        db.add(
            CampaignDay(
                organization_id=org.id,
                campaign_id=campaign.id,
                community_id=community.id,
                language=language,
                day=day,
                targeted=targeted,
                sent=targeted,
                replies=replies,
            )
        )
    db.add(
        TopicDay(
            organization_id=org.id,
            community_id=community.id,
            topic="rumour_check",
            language="es",
            day=day,
            questions=7,
        )
    )
    db.commit()
    return campaign.id, community.id


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_csv_export_is_suppressed_for_viewers_and_safe_in_a_spreadsheet(
    web: Web, db: Session, org: Organization
) -> None:
    campaign_id, _ = _seed(db, org, community_name='=HYPERLINK("http://x.example","ok")')
    viewer, admin = make_person(db, org=org), make_person(db, org=org, role=Role.admin)
    db.commit()
    as_viewer, as_admin = web(), web()
    sign_in(as_viewer, viewer)
    sign_in(as_admin, admin)
    path = f"/dashboard/export/campaigns.csv?campaign_id={campaign_id}"
    seen = as_viewer.get(path)
    assert seen.status_code == 200 and seen.headers["content-type"].startswith("text/csv")
    assert "attachment" in seen.headers["content-disposition"]
    rows = _rows(seen.text)
    header = rows[0]
    haitian = next(r for r in rows[1:] if r[header.index("language")] == "ht")
    assert haitian[header.index("replies")] == "<5"
    assert haitian[header.index("community")].startswith("'=HYPERLINK")
    full = _rows(as_admin.get(path).text)
    haitian = next(r for r in full[1:] if r[header.index("language")] == "ht")
    assert haitian[header.index("replies")] == "2"


def test_every_page_answers_and_escapes_what_users_typed(
    web: Web, db: Session, org: Organization
) -> None:
    campaign_id, community_id = _seed(db, org, community_name="<script>alert(1)</script>")
    person = make_person(db, org=org)
    db.commit()
    browser = web()
    sign_in(browser, person)
    for path in (
        "/dashboard",
        "/dashboard/campaigns",
        f"/dashboard/campaigns/{campaign_id}",
        "/dashboard/communities",
        f"/dashboard/communities/{community_id}",
        "/dashboard/polls",
        "/dashboard/knowledge",
        "/dashboard/account",
    ):
        r = browser.get(path)
        assert r.status_code == 200, (path, r.text[:300])
        assert "<script>alert(1)</script>" not in r.text, path
        assert "script-src 'self'" in r.headers["content-security-policy"]
    for name, first_column in (
        ("communities", "community_id"),
        ("communities_by_day", "community_id"),
        ("campaigns", "campaign_id"),
        ("campaign_failures", "campaign_id"),
        ("topics", "community_id"),
        ("topics_by_day", "community_id"),
        ("polls", "campaign_id"),
        ("languages", "language"),
        ("questions", "community_id"),
        ("alerts", "community_id"),
        ("knowledge", "entry_id"),
        ("feedback", "topic"),
    ):
        download = browser.get(f"/dashboard/export/{name}.csv?community_id={community_id}")
        assert download.status_code == 200, (name, download.text[:300])
        assert download.headers["content-type"].startswith("text/csv"), name
        assert _rows(download.text)[0][0] == first_column, name
    page = browser.get(f"/dashboard/communities/{community_id}")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    # Chart data is a JSON block, with "<" escaped so it cannot close the script element.
    assert '<script type="application/json" id="topics-chart-data">' in page.text


def test_bad_filters_and_other_organizations_get_a_clear_page(
    web: Web, db: Session, org: Organization
) -> None:
    _, community_id = _seed(db, org, community_name="Tenosique")
    other = make_organization(db)
    foreign = make_community(db, org=other, name="Ajena")
    person = make_person(db, org=org)
    db.commit()
    browser = web()
    sign_in(browser, person)
    cases = [
        ("/dashboard?start=2026-11-20&end=2026-11-01", 422, "start 2026-11-20 is after end"),
        ("/dashboard?start=2024-01-01&end=2026-01-01", 422, "at most 366"),
        ("/dashboard?start=yesterday", 422, "start must be a date like 2026-11-28"),
        ("/dashboard?community_id=abc", 422, "community_id must be a whole number"),
        ("/dashboard?language=xx", 422, "unknown language"),
        (f"/dashboard?community_id={foreign.id}", 404, f"community {foreign.id} not found"),
        (f"/dashboard/communities/{foreign.id}", 404, f"community {foreign.id} not found"),
        ("/dashboard/campaigns/999999999", 404, "campaign 999999999 not found"),
        ("/dashboard/export/contacts.csv", 404, "to export: use one of alerts, campaign_failures"),
        (f"/dashboard/export/topics.csv?community_id={foreign.id}", 404, "not found"),
    ]
    for path, status, message in cases:
        r = browser.get(path)
        assert r.status_code == status, (path, r.status_code)
        assert message in r.text, (path, r.text[:500])
        assert r.headers["content-type"].startswith("text/html") or status == 404
    assert browser.get(f"/dashboard/communities/{community_id}").status_code == 200
