"""The dashboard in headless Chromium against a real server over seeded analytics.

Each page's numbers are read off the screen and compared with the JSON API for the same user
and filters, and with what the seed makes true.  Screenshots (desktop and phone) go to
``var/screenshots/`` for CI to keep.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.conftest import PG_ADMIN_URL
from tests.dashboard.site import PASSWORD, TRUTH, Site, running_site
from tests.stack import ROOT

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ROOT / "var" / "screenshots"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with running_site(PG_ADMIN_URL, tmp_path_factory.mktemp("web")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()


class Watched:
    """A browser context whose pages report Content-Security-Policy violations and JS errors."""

    def __init__(self, browser: Browser, site: Site, viewport: dict[str, int]) -> None:
        self.context: BrowserContext = browser.new_context(
            base_url=site.base_url,
            viewport=viewport,  # type: ignore[arg-type]
        )
        self.page: Page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on(
            "console",
            lambda m: self.problems.append(m.text) if m.type == "error" else None,
        )
        self.page.on("pageerror", lambda e: self.problems.append(str(e)))

    def sign_in(self, email: str, password: str = PASSWORD) -> None:
        self.page.goto("/dashboard/login")
        self.page.fill("input[name=email]", email)
        self.page.fill("input[name=password]", password)
        self.page.click("button[type=submit]")

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def desktop(browser: Browser, site: Site) -> Iterator[Watched]:
    watched = Watched(browser, site, DESKTOP)
    yield watched
    watched.context.close()


@pytest.fixture
def phone(browser: Browser, site: Site) -> Iterator[Watched]:
    watched = Watched(browser, site, PHONE)
    yield watched
    watched.context.close()


def shown(text: str) -> int | str:
    """A number as a person reads it off the page ("1,234" is 1234; "<5" stays "<5")."""
    value = text.strip().replace(",", "")
    return int(value) if re.fullmatch(r"\d+", value) else value


def api_cell(value: Any) -> int | str:
    if value is None:
        return "\u2013"
    return value if isinstance(value, int | str) else str(value)


def table_rows(page: Page, table_id: str) -> list[dict[str, int | str]]:
    rows = []
    for tr in page.locator(f"#{table_id} tbody tr").all():
        cells = tr.locator("td[data-col]").all()
        rows.append({c.get_attribute("data-col") or "": shown(c.inner_text()) for c in cells})
    return rows


def table_totals(page: Page, table_id: str) -> dict[str, int | str]:
    cells = page.locator(f"#{table_id} tfoot th[data-col]").all()
    return {c.get_attribute("data-col") or "": shown(c.inner_text()) for c in cells[1:]}


def api_rows(body: Any, columns: list[str]) -> list[dict[str, int | str]]:
    return [{c: api_cell(row.get(c)) for c in columns} for row in body["rows"]]


def test_admin_sees_on_every_page_the_numbers_the_api_gives(site: Site, desktop: Watched) -> None:
    page = desktop.page
    desktop.sign_in(site.admin_email)
    page.wait_for_url("**/dashboard")
    token = site.admin_token

    # Overview: every tile equals the API and the seed.
    api = site.api("/v1/analytics/overview", token=token)
    assert isinstance(api, dict)
    for key in (*TRUTH, "opt_outs", "conversations", "questions", "unanswered", "active_contacts"):
        tile = shown(page.locator(f"[data-metric={key}] .value").inner_text())
        assert tile == api[key], key
    for key, value in TRUTH.items():
        assert api[key] == value, key
    alert = page.locator("#alerts li[data-topic=rumour_check]")
    assert "priority" in alert.inner_text() and "Tapachula" in alert.inner_text()
    communities = site.api("/v1/analytics/communities", token=token)
    columns = ["community", "active_contacts", "conversations", "unanswered"]
    assert [{c: r[c] for c in columns} for r in table_rows(page, "by-community")] == api_rows(
        communities, columns
    )
    desktop.shot("overview-admin")

    # Campaign: the funnel and the per community and language table.
    page.goto(f"/dashboard/campaigns/{site.campaign_id}")
    body = site.api("/v1/analytics/campaigns", token=token, campaign_id=site.campaign_id)
    assert isinstance(body, dict)
    for stage in ("targeted", "sent", "delivered", "read", "replies", "clicks"):
        step = shown(page.locator(f"#funnel [data-stage={stage}] .value").inner_text())
        assert step == body["totals"][stage] == TRUTH[stage], stage
    columns = ["community", "language", "targeted", "sent", "delivered", "read", "replies"]
    assert [{c: r[c] for c in columns} for r in table_rows(page, "campaign-table")] == api_rows(
        body, columns
    )
    failures = site.api(
        "/v1/analytics/campaigns/failures", token=token, campaign_id=site.campaign_id
    )
    assert isinstance(failures, dict)
    assert [(r["error_code"], r["failed"]) for r in table_rows(page, "failure-table")] == [
        (r["error_code"], r["failed"]) for r in failures["rows"]
    ]
    assert "30008" in page.locator("#failure-table").inner_text()  # a code, not "30,008"
    fill = page.locator("#funnel [data-stage=read] .fill")
    width = fill.evaluate("e => e.getBoundingClientRect().width")
    track = fill.evaluate("e => e.parentElement.getBoundingClientRect().width")
    assert abs(width / track - TRUTH["read"] / TRUTH["targeted"]) < 0.02
    desktop.shot("campaign-admin")

    # Community: topics, language mix, unanswered questions, and a drawn chart.
    page.goto(f"/dashboard/communities/{site.community_id}")
    topics = site.api("/v1/analytics/topics", token=token, community_id=site.community_id)
    columns = ["topic", "questions", "unanswered", "feedback_yes", "feedback_no"]
    assert [{c: r[c] for c in columns} for r in table_rows(page, "topic-table")] == api_rows(
        topics, columns
    )
    for row in table_rows(page, "language-mix"):
        per_language = site.api(
            "/v1/analytics/topics",
            token=token,
            community_id=site.community_id,
            language=row["language"],
        )
        assert isinstance(per_language, dict)
        assert row["questions"] == per_language["totals"]["questions"], row
    assert page.locator("#topics-chart canvas").count() >= 1
    assert page.locator("#topics-chart .u-legend").inner_text().count("rumour_check") == 1
    questions = page.locator("#unanswered tbody tr")
    assert questions.count() == 2  # the two "abren la frontera" questions are one group
    assert "frontera" in questions.first.inner_text()
    assert shown(questions.first.locator("td[data-col=count]").inner_text()) == 2
    desktop.shot("community-admin")

    # Polls: each option's answers.
    page.goto("/dashboard/polls")
    polls = site.api("/v1/analytics/polls", token=token)
    assert isinstance(polls, dict)
    on_page = {
        (
            int(tr.get_attribute("data-community") or 0),
            int(tr.get_attribute("data-option") or 0),
        ): shown(tr.locator("td[data-col=answers]").inner_text())
        for tr in page.locator("section[data-campaign] tbody tr").all()
    }
    assert on_page == {(r["community_id"], r["option"]): r["answers"] for r in polls["rows"]}
    assert shown(page.locator("#poll-total").inner_text()) == TRUTH["poll_answers"]
    desktop.shot("polls-admin")

    # Knowledge: the overdue entries, most overdue first.
    page.goto("/dashboard/knowledge")
    stale = site.api("/v1/analytics/stale-knowledge", token=token)
    assert isinstance(stale, dict)
    ids = [
        int(tr.get_attribute("data-entry-id") or 0)
        for tr in page.locator("#stale-entries tbody tr").all()
    ]
    assert ids == [e["id"] for e in stale["items"]] == site.stale_entry_ids
    feedback = site.api("/v1/analytics/feedback", token=token)
    assert isinstance(feedback, dict)
    weak = [
        (
            tr.get_attribute("data-topic"),
            shown(tr.locator("td[data-col=useful]").inner_text()),
            shown(tr.locator("td[data-col=not_useful]").inner_text()),
        )
        for tr in page.locator("#weak-topics tbody tr").all()
    ]
    assert weak == [(t["topic"], t["useful"], t["not_useful"]) for t in feedback["items"]]
    assert weak[0] == ("documents_ids", 0, 10)
    desktop.shot("knowledge-admin")

    assert desktop.problems == [], desktop.problems  # no CSP violation, no script error


def test_a_viewer_sees_less_than_5_where_the_api_hides_a_small_count(
    site: Site, desktop: Watched
) -> None:
    page = desktop.page
    desktop.sign_in(site.viewer_email)
    page.wait_for_url("**/dashboard")
    api = site.api("/v1/analytics/overview", token=site.viewer_token)
    assert isinstance(api, dict) and api["opt_outs"] == "<5"
    assert page.locator("[data-metric=opt_outs] .value").inner_text() == "<5"
    assert "fewer than 5 people" in page.locator("footer").inner_text()

    page.goto(f"/dashboard/campaigns/{site.campaign_id}")
    body = site.api(
        "/v1/analytics/campaigns", token=site.viewer_token, campaign_id=site.campaign_id
    )
    columns = ["community", "language", "targeted", "replies", "clicks", "opt_outs"]
    rows = [{c: r[c] for c in columns} for r in table_rows(page, "campaign-table")]
    assert rows == api_rows(body, columns)
    haitian = next(r for r in rows if r["language"] == "ht")
    assert haitian["replies"] == "<5"  # 3 people replied: shown to admins only
    desktop.shot("campaign-viewer")

    page.goto(f"/dashboard/communities/{site.community_id}")
    french = next(r for r in table_rows(page, "topic-table") if r["topic"] == "health_services")
    assert french["questions"] == "<5"
    desktop.shot("community-viewer")
    assert desktop.problems == [], desktop.problems


def test_pages_of_another_organization_are_not_found(site: Site, desktop: Watched) -> None:
    desktop.sign_in(site.viewer_email)
    desktop.page.wait_for_url("**/dashboard")
    response = desktop.page.goto(f"/dashboard/communities/{site.foreign_community_id}")
    assert response is not None and response.status == 404
    assert f"community {site.foreign_community_id} not found" in desktop.page.inner_text("main")


def test_five_wrong_passwords_show_the_throttle_message(site: Site, desktop: Watched) -> None:
    page = desktop.page
    for attempt in range(1, 6):
        desktop.sign_in(site.locked_email, password=f"wrong password {attempt}")
        message = page.locator("#login-message").inner_text()
        if attempt < 5:
            assert message == "Wrong email or password."
    assert message == "Too many failed sign-in attempts; try again in 15 minutes."
    desktop.shot("login-throttled")
    desktop.sign_in(site.locked_email)  # the right password now waits too
    assert "Too many failed sign-in attempts" in page.locator("#login-message").inner_text()
    assert "/dashboard/login" in page.url


def test_a_form_without_its_csrf_token_is_refused(site: Site, desktop: Watched) -> None:
    page = desktop.page
    desktop.sign_in(site.viewer_email)
    page.wait_for_url("**/dashboard")
    page.locator("form[action='/dashboard/logout'] input[name=csrf]").evaluate("e => e.remove()")
    page.click("form[action='/dashboard/logout'] button")
    assert page.locator("h1").inner_text() == "Form refused"
    page.goto("/dashboard")
    assert "/dashboard/login" not in page.url  # still signed in: the forged sign-out did nothing

    forged = desktop.context.request.post(
        "/dashboard/login",
        form={"email": site.viewer_email, "password": PASSWORD},
        max_redirects=0,
    )
    assert forged.status == 403 and "Form refused" in forged.text()


def test_pages_fit_a_phone_screen(site: Site, phone: Watched) -> None:
    page = phone.page
    phone.sign_in(site.admin_email)
    page.wait_for_url("**/dashboard")
    for path, name in (
        ("/dashboard", "overview-phone"),
        (f"/dashboard/campaigns/{site.campaign_id}", "campaign-phone"),
        (f"/dashboard/communities/{site.community_id}", "community-phone"),
        ("/dashboard/polls", "polls-phone"),
    ):
        page.goto(path)
        # Wide tables scroll inside their box; the page itself never scrolls sideways.
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, (path, overflow)
        phone.shot(name)
    assert phone.problems == [], phone.problems
