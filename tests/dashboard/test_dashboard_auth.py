"""Dashboard sign-in: cookie sessions stored server-side, CSRF on every form, throttling of
failed passwords and bearer tokens, security headers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from api.app import create_app
from campaigns.audit import AuditEvent
from campaigns.db import make_engine, make_sessionmaker, unit_of_work
from campaigns.embedded import upgrade_database
from campaigns.organizations.models import Organization, Role
from campaigns.organizations.service import hash_password
from campaigns.settings import Settings
from campaigns.web_auth.models import AuthFailure, WebSession
from tests.dashboard.conftest import Person, csrf_of, make_person, sign_in
from tests.factories import auth, make_organization, make_token

Web = Callable[[], TestClient]


def test_pages_need_sign_in_and_the_session_cookie_is_httponly_lax_secure(
    web: Web, db: Session, org: Organization
) -> None:
    person = make_person(db, org=org)
    db.commit()
    browser = web()
    r = browser.get("/dashboard/knowledge")
    assert r.status_code == 303
    assert r.headers["location"] == "/dashboard/login?next=%2Fdashboard%2Fknowledge"

    assert sign_in(browser, person) == "/dashboard/knowledge"
    cookie = next(
        c for c in browser.cookies.jar if c.name == "faro_session"
    )  # the jar keeps what Set-Cookie said
    assert cookie.secure and cookie.path == "/dashboard"
    assert cookie.has_nonstandard_attr("HttpOnly")
    assert cookie.get_nonstandard_attr("SameSite", "").lower() == "lax"
    # Only a hash of the cookie is stored: a copy of the table opens no session.
    stored = db.scalars(select(WebSession.token_hash)).all()
    assert len(stored) == 1 and cookie.value not in stored[0]

    page = browser.get("/dashboard/knowledge")
    assert page.status_code == 200 and person.email in page.text


def test_sign_in_without_or_with_a_wrong_csrf_token_is_refused(
    web: Web, db: Session, org: Organization
) -> None:
    person = make_person(db, org=org)
    db.commit()
    browser = web()
    form = browser.get("/dashboard/login")
    body = {"email": person.email, "password": person.password}
    missing = browser.post("/dashboard/login", data=body)
    wrong = browser.post("/dashboard/login", data={**body, "csrf": "x" * 43})
    for r in (missing, wrong):
        assert r.status_code == 403
        assert "Form refused" in r.text and "security token" in r.text
        assert "faro_session" not in r.headers.get("set-cookie", "")
    # A token from another browser (an attacker's own page load) is no good either.
    other = web()
    theirs = csrf_of(other.get("/dashboard/login").text)
    assert browser.post("/dashboard/login", data={**body, "csrf": theirs}).status_code == 403
    ok = browser.post("/dashboard/login", data={**body, "csrf": csrf_of(form.text)})
    assert ok.status_code == 303


def test_sign_out_needs_the_csrf_token_and_revokes_the_session(
    web: Web, db: Session, org: Organization
) -> None:
    person = make_person(db, org=org)
    db.commit()
    browser = web()
    sign_in(browser, person)
    page = browser.get("/dashboard/knowledge")
    stolen = browser.cookies.get("faro_session", path="/dashboard")

    refused = browser.post("/dashboard/logout", data={})
    assert refused.status_code == 403 and "Form refused" in refused.text
    assert browser.get("/dashboard/knowledge").status_code == 200

    out = browser.post("/dashboard/logout", data={"csrf": csrf_of(page.text)})
    assert out.status_code == 303 and out.headers["location"] == "/dashboard/login"
    assert db.scalar(select(func.count()).select_from(WebSession)) == 0
    # The old cookie, replayed, opens nothing.
    replay = web()
    replay.cookies.set("faro_session", stolen or "", domain="faro.test", path="/dashboard")
    assert replay.get("/dashboard/knowledge").status_code == 303


def test_a_password_change_signs_out_every_other_browser(
    web: Web, db: Session, org: Organization
) -> None:
    person = make_person(db, org=org)
    db.commit()
    laptop, phone = web(), web()
    sign_in(laptop, person)
    sign_in(phone, person)
    account = laptop.get("/dashboard/account")
    new_password = "a much better passphrase 2026"
    r = laptop.post(
        "/dashboard/account/password",
        data={
            "current": person.password,
            "new": new_password,
            "confirm": new_password,
            "csrf": csrf_of(account.text),
        },
    )
    assert r.status_code == 303, r.text
    changed = laptop.get(r.headers["location"])
    assert changed.status_code == 200 and "Password changed" in changed.text
    assert phone.get("/dashboard/knowledge").status_code == 303
    assert "Wrong email or password" in sign_in(web(), person)
    assert sign_in(web(), Person(person.user, person.email, new_password)).startswith("/dash")


def test_a_wrong_current_password_changes_nothing(web: Web, db: Session, org: Organization) -> None:
    person = make_person(db, org=org)
    db.commit()
    browser = web()
    sign_in(browser, person)
    account = browser.get("/dashboard/account")
    r = browser.post(
        "/dashboard/account/password",
        data={
            "current": "not my password at all",
            "new": "another long password",
            "confirm": "another long password",
            "csrf": csrf_of(account.text),
        },
    )
    assert r.status_code == 401 and "current password is wrong" in r.text
    assert browser.get("/dashboard/knowledge").status_code == 200
    assert sign_in(web(), person).startswith("/dashboard")


def test_a_password_set_elsewhere_or_a_deactivation_ends_the_sessions(
    web: Web, db: Session, org: Organization
) -> None:
    reset, leaver = make_person(db, org=org), make_person(db, org=org)
    db.commit()
    a, b = web(), web()
    sign_in(a, reset)
    sign_in(b, leaver)
    reset.user.password_hash = hash_password("set by an admin elsewhere")
    leaver.user.is_active = False
    db.commit()
    assert a.get("/dashboard/knowledge").status_code == 303
    assert b.get("/dashboard/knowledge").status_code == 303
    assert "Wrong email or password" in sign_in(web(), leaver)


def test_five_wrong_passwords_lock_the_account_for_a_while(
    web: Web, db: Session, org: Organization
) -> None:
    target, colleague = make_person(db, org=org), make_person(db, org=org)
    db.commit()
    attacker = web()
    for _ in range(4):
        assert "Wrong email or password." in sign_in(attacker, target, password="guess guess")
    form = attacker.get("/dashboard/login")
    fifth = attacker.post(
        "/dashboard/login",
        data={"email": target.email, "password": "guess 5", "csrf": csrf_of(form.text)},
    )
    assert fifth.status_code == 429
    assert "Too many failed sign-in attempts; try again in 15 minutes." in fifth.text
    assert 0 < int(fifth.headers["retry-after"]) <= 900
    # The right password, even from another address, waits too: a guesser learns nothing.
    assert "Too many failed sign-in attempts" in sign_in(web(), target)
    # The colleague behind the same address is not locked out by it.
    assert sign_in(attacker, colleague).startswith("/dashboard")
    # The emails are not stored, only keyed hashes.
    assert target.email not in str(db.scalars(select(AuthFailure.key_hash)).all())


def test_unknown_emails_from_one_address_are_throttled_and_look_like_wrong_passwords(
    web: Web, db: Session, org: Organization
) -> None:
    person = make_person(db, org=org)
    db.commit()
    sprayer = web()
    answers = [
        sign_in(sprayer, Person(person.user, f"nobody{i}@example.org"), password="x" * 12)
        for i in range(20)
    ]
    assert all("Wrong email or password." in a for a in answers[:19])
    assert "Too many failed sign-in attempts" in answers[19]
    assert "Too many failed sign-in attempts" in sign_in(sprayer, person)
    assert sign_in(web(), person).startswith("/dashboard")


def test_sign_in_goes_only_to_dashboard_pages(web: Web, db: Session, org: Organization) -> None:
    person = make_person(db, org=org)
    db.commit()
    for target in ("https://evil.example/", "//evil.example/dashboard", "/dashboard//evil"):
        browser = web()
        form = browser.get("/dashboard/login")
        r = browser.post(
            "/dashboard/login",
            data={
                "email": person.email,
                "password": person.password,
                "csrf": csrf_of(form.text),
                "next": target,
            },
        )
        assert r.status_code == 303 and r.headers["location"] == "/dashboard"


def test_web_pages_and_static_files_carry_security_headers(
    web: Web, db: Session, org: Organization
) -> None:
    browser = web()
    page = browser.get("/dashboard/login")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "same-origin"
    assert "strict-transport-security" not in page.headers  # not in production
    assert "<script>" not in page.text and " on" + "click=" not in page.text
    for path in ("/static/dashboard.js", "/static/vendor/uplot/uPlot.iife.min.js"):
        asset = browser.get(path)
        assert asset.status_code == 200 and asset.headers["x-content-type-options"] == "nosniff"
    assert "MIT License" in browser.get("/static/vendor/uplot/LICENSE").text


def test_production_pages_send_hsts(settings: Settings, engine: Engine) -> None:
    production = settings.model_copy(
        update={
            "env": "production",
            "secret_key": _secret(),
            "hash_key": _secret(),
            "actions_token": _secret(),
            "encryption_keys": _secret(Fernet.generate_key().decode()),
        }
    )
    with TestClient(create_app(production, engine=engine), base_url="https://faro.test") as c:
        r = c.get("/dashboard/login")
    assert r.headers["strict-transport-security"].startswith("max-age=63072000")


def _secret(value: str | None = None) -> object:
    from secrets import token_urlsafe

    from pydantic import SecretStr

    return SecretStr(value or token_urlsafe(40))


def test_failed_bearer_tokens_are_throttled_per_client_address(
    web: Web, db: Session, org: Organization, engine: Engine
) -> None:
    token = make_token(db, user=make_person(db, org=org, role=Role.admin).user)
    db.commit()
    prober, bystander = web(), web()

    def failures() -> int:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(AuthFailure.scope == "token_address")
                ).scalar_one()
            )

    # Other tests' failed tokens (from other addresses) may be in the table already.
    before = failures()
    try:
        for i in range(20):
            r = prober.get("/v1/communities", headers=auth("faro_" + f"{i:02d}" * 20))
            assert r.status_code == 401, r.text
        blocked = prober.get("/v1/communities", headers=auth("faro_" + "z" * 40))
        assert blocked.status_code == 429
        assert blocked.json()["error"]["message"] == (
            "too many failed token attempts from this address; try again in 15 minutes"
        )
        # Only from that address; and a right token still works (no guess can reach one).
        other = bystander.get("/v1/communities", headers=auth("faro_" + "z" * 40))
        assert other.status_code == 401
        assert prober.get("/v1/communities", headers=auth(token)).status_code == 200
        # Refused attempts are not counted again: a flood adds nothing to the table.
        for _ in range(5):
            prober.get("/v1/communities", headers=auth("faro_" + "y" * 40))
        assert failures() - before == 21  # the prober's 20 and the bystander's 1
    finally:
        # Recorded in their own transactions (the request's was rolled back): clean up.
        with engine.begin() as conn:
            conn.execute(delete(AuthFailure).where(AuthFailure.scope == "token_address"))


def test_throttle_forgets_failures_after_the_window(db: Session) -> None:
    from campaigns.web_auth import throttle

    now = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
    key = b"k" * 32
    for minute in range(5):
        throttle.record_failure(
            db,
            secret=key,
            limit=throttle.LOGIN_ACCOUNT,
            value="a@example.org",
            now=now + dt.timedelta(minutes=minute),
        )
    later = now + dt.timedelta(minutes=5)
    wait = throttle.retry_after(
        db, secret=key, limit=throttle.LOGIN_ACCOUNT, value="a@example.org", now=later
    )
    assert wait == 10 * 60 + 1  # until the first failure is 15 minutes old
    after = now + dt.timedelta(minutes=15, seconds=1)
    assert (
        throttle.retry_after(
            db, secret=key, limit=throttle.LOGIN_ACCOUNT, value="a@example.org", now=after
        )
        is None
    )


def test_sign_in_and_throttling_work_on_the_embedded_sqlite_default(tmp_path: Path) -> None:
    settings = Settings(env="test", var_dir=tmp_path)
    upgrade_database(settings.effective_database_url)
    engine = make_engine(settings.effective_database_url)
    with unit_of_work(make_sessionmaker(engine)) as session:
        org = make_organization(session)
        person = make_person(session, org=org)
    app = create_app(settings, engine=engine)
    with TestClient(app, follow_redirects=False, client=("192.0.2.9", 1)) as browser:
        for _ in range(4):
            assert "Wrong email or password." in sign_in(browser, person, password="x" * 12)
        assert "Too many failed sign-in attempts" in sign_in(browser, person, password="y" * 12)
        assert "Too many failed sign-in attempts" in sign_in(browser, person)
        with unit_of_work(make_sessionmaker(engine)) as session:
            session.execute(delete(AuthFailure))  # as if 15 minutes had passed
        assert sign_in(browser, person) == "/dashboard/knowledge"
        assert browser.get("/dashboard/knowledge").status_code == 200
    engine.dispose()


def test_sessions_end_after_two_idle_hours_or_twelve_hours_in_all(
    db: Session, org: Organization
) -> None:
    from campaigns.web_auth import sessions

    person = make_person(db, org=org)
    t0 = dt.datetime(2026, 11, 28, 8, 0, tzinfo=dt.UTC)
    key = b"k" * 32

    def open_at(at: dt.datetime) -> str:
        _, token = sessions.sign_in(
            db, email=person.email, password=person.password, address="a", secret=key, now=at
        )
        return token

    idle = open_at(t0)
    assert sessions.resolve(db, idle, now=t0 + dt.timedelta(hours=1, minutes=59)) is not None
    # Seen at 09:59, so still alive at 11:58; then nothing until 14:00: over two idle hours.
    assert sessions.resolve(db, idle, now=t0 + dt.timedelta(hours=3, minutes=58)) is not None
    assert sessions.resolve(db, idle, now=t0 + dt.timedelta(hours=6)) is None

    busy = open_at(t0)
    for hour in range(1, 12):
        assert sessions.resolve(db, busy, now=t0 + dt.timedelta(hours=hour)) is not None
    assert sessions.resolve(db, busy, now=t0 + dt.timedelta(hours=12)) is None
    assert db.scalar(select(func.count()).select_from(WebSession)) == 0


def test_the_audit_log_records_sign_in_out_and_password_changes_and_no_secret(
    web: Web, db: Session, org: Organization
) -> None:
    person = make_person(db, org=org)
    db.commit()
    browser = web()
    sign_in(browser, person)
    for _ in range(3):
        assert browser.get("/dashboard/knowledge").status_code == 200
    account = browser.get("/dashboard/account")
    new = "another long passphrase 2026"
    changed = browser.post(
        "/dashboard/account/password",
        data={
            "current": person.password,
            "new": new,
            "confirm": new,
            "csrf": csrf_of(account.text),
        },
    )
    assert changed.status_code == 303
    page = browser.get("/dashboard/account")
    assert browser.post("/dashboard/logout", data={"csrf": csrf_of(page.text)}).status_code == 303
    events = db.scalars(
        select(AuditEvent).where(AuditEvent.organization_id == org.id).order_by(AuditEvent.id)
    ).all()
    mine = [(e.action, e.actor_user_id, e.via) for e in events if e.via == "web"]
    assert mine == [
        ("web.signed_in", person.user.id, "web"),
        ("web.password_changed", person.user.id, "web"),
        ("web.signed_out", person.user.id, "web"),
    ]
    # Session rows (tokens, CSRF secrets, last seen) never reach the audit log.
    assert not [e for e in events if e.object_type in ("web_session", "auth_failure")]
    text = str([(e.before, e.after) for e in events])
    assert csrf_of(account.text) not in text and person.email not in text
