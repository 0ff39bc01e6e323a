"""A running Faro for the browser tests: its own PostgreSQL database with seeded analytics, the
API under uvicorn as a real process, and the answers the seed makes true."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from campaigns.analytics.models import (
    CampaignDay,
    CampaignFailure,
    CommunityDay,
    PollDay,
    TopicDay,
)
from campaigns.assistant.models import UnansweredQuestion
from campaigns.crypto import AddressCipher
from campaigns.db import make_engine, utcnow
from campaigns.embedded import upgrade_database
from campaigns.organizations.models import Role, User
from campaigns.organizations.service import create_user, issue_token
from campaigns.outreach.models import CampaignKind
from campaigns.settings import Settings
from tests.analytics.factories import inbound
from tests.campaigns_engine.factories import make_campaign
from tests.factories import make_community, make_contact, make_organization
from tests.knowledge.factories import make_entry
from tests.stack import BIN, ROOT, free_port, wait_for

PASSWORD = "correct horse battery staple"


@dataclass
class Site:
    base_url: str
    today: dt.date
    campaign_id: int
    campaign_name: str
    community_id: int
    other_community_id: int
    foreign_community_id: int
    admin_email: str
    viewer_email: str
    locked_email: str
    admin_token: str
    viewer_token: str
    stale_entry_ids: list[int]

    def api(self, path: str, *, token: str, **params: object) -> object:
        r = httpx.get(
            f"{self.base_url}{path}",
            params={k: str(v) for k, v in params.items()},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert r.status_code == 200, f"{path}: {r.status_code} {r.text}"
        return r.json()


# What the seed makes true (admins see these exact numbers on the overview).
TRUTH = {
    "targeted": 120 + 40 + 60,
    "sent": 118 + 40 + 60,
    "delivered": 110 + 39 + 55,
    "read": 80 + 20 + 41,
    "replies": 30 + 3 + 9,
    "clicks": 12 + 0 + 7,
    "poll_answers": 17 + 6 + 3 + 9,
}


def _seed(url: str, settings: Settings) -> dict[str, object]:
    engine = make_engine(url)
    cipher = AddressCipher.from_settings(settings)
    today = utcnow().date()
    days = [today - dt.timedelta(days=i) for i in range(30)]
    with Session(engine) as db:
        org = make_organization(db, name="Instituto de Prueba")
        admin = create_user(
            db, organization_id=org.id, email="admin@faro.test", role=Role.admin, password=PASSWORD
        )
        create_user(
            db,
            organization_id=org.id,
            email="viewer@faro.test",
            role=Role.viewer,
            password=PASSWORD,
        )
        create_user(
            db,
            organization_id=org.id,
            email="locked@faro.test",
            role=Role.viewer,
            password=PASSWORD,
        )
        c1 = make_community(db, org=org, name="Tapachula")
        c2 = make_community(db, org=org, name="Ciudad Juárez")
        campaign = make_campaign(
            db,
            org=org,
            author=admin,
            communities=[c1, c2],
            kind=CampaignKind.poll,
            name="Encuesta: citas gratuitas",
        )
        other = make_organization(db, name="Otra organización")
        foreign = make_community(db, org=other, name="Comunidad ajena")

        def campaign_day(community: int, language: str, day: dt.date, **counts: int) -> None:
            db.add(
                CampaignDay(
                    organization_id=org.id,
                    campaign_id=campaign.id,
                    community_id=community,
                    language=language,
                    day=day,
                    cost=Decimal(0),
                    **counts,
                )
            )

        campaign_day(
            c1.id,
            "es",
            days[3],
            targeted=120,
            sent=118,
            delivered=110,
            read=80,
            failed=8,
            replies=30,
            clicks=12,
            opt_outs=2,
            segments=118,
        )
        campaign_day(
            c1.id,
            "ht",
            days[3],
            targeted=40,
            sent=40,
            delivered=39,
            read=20,
            failed=1,
            replies=3,
            clicks=0,
            opt_outs=0,
            segments=40,
        )
        campaign_day(
            c2.id,
            "es",
            days[2],
            targeted=60,
            sent=60,
            delivered=55,
            read=41,
            failed=5,
            replies=9,
            clicks=7,
            opt_outs=1,
            segments=60,
        )
        for community, language, day, code, failed in (
            (c1.id, "es", days[3], 30008, 8),
            (c1.id, "ht", days[3], 30003, 1),
            (c2.id, "es", days[2], 21610, 5),
        ):
            db.add(
                CampaignFailure(
                    organization_id=org.id,
                    campaign_id=campaign.id,
                    community_id=community,
                    language=language,
                    day=day,
                    error_code=code,
                    failed=failed,
                )
            )
        for community, day, option, answers in (
            (c1.id, days[3], 1, 17),
            (c1.id, days[3], 2, 6),
            (c2.id, days[2], 1, 3),
            (c2.id, days[2], 2, 9),
        ):
            db.add(
                PollDay(
                    organization_id=org.id,
                    campaign_id=campaign.id,
                    community_id=community,
                    language="es",
                    day=day,
                    option_number=option,
                    answers=answers,
                )
            )
        for i in range(7):
            db.add(
                CommunityDay(
                    organization_id=org.id,
                    community_id=c1.id,
                    day=days[i],
                    active_contacts=30,
                    new_contacts=2,
                    opted_out=1 if i == 3 else 0,
                    conversations=12,
                    turns=40,
                    unanswered=3,
                    handovers_opened=1,
                    handovers_closed=1,
                )
            )
        for i in range(3):
            db.add(
                CommunityDay(
                    organization_id=org.id,
                    community_id=c2.id,
                    day=days[i],
                    active_contacts=8,
                    new_contacts=1,
                    conversations=4,
                    turns=9,
                    unanswered=1,
                )
            )

        def topic_day(
            community: int, topic: str, language: str, day: dt.date, **counts: int
        ) -> None:
            db.add(
                TopicDay(
                    organization_id=org.id,
                    community_id=community,
                    topic=topic,
                    language=language,
                    day=day,
                    **counts,
                )
            )

        for i in range(7):  # a rumour spreading this week: a priority alert
            topic_day(c1.id, "rumour_check", "es", days[i], questions=4, unanswered=1)
        for i in range(1, 21):
            topic_day(
                c1.id,
                "asylum_protection",
                "es",
                days[i],
                questions=6,
                unanswered=1,
                feedback_yes=2,
                feedback_no=1,
            )
        for i in range(1, 11):
            topic_day(c1.id, "documents_ids", "ht", days[i], questions=2, feedback_no=1)
        topic_day(c1.id, "health_services", "fr", days[2], questions=3)
        for i in range(1, 6):
            topic_day(c2.id, "asylum_protection", "en", days[i], questions=3)
        # And the same summed over languages, as the rollup keeps it (spike alerts read it).
        db.flush()
        db.execute(
            text(
                "INSERT INTO analytics_topic_total_day (organization_id, community_id, day, topic,"
                " questions, unanswered, feedback_yes, feedback_no)"
                " SELECT organization_id, community_id, day, topic, sum(questions),"
                " sum(unanswered), sum(feedback_yes), sum(feedback_no) FROM analytics_topic_day"
                " WHERE organization_id = :org GROUP BY organization_id, community_id, day, topic"
            ),
            {"org": org.id},
        )

        person = make_contact(db, org=org, cipher=cipher, communities=[c1])
        for i, question in enumerate(
            (
                "¿Es cierto que abren la frontera el [name] de diciembre?",
                "¿es cierto que abren la frontera en diciembre?",
                "¿Cuánto cuesta la cita #### para el permiso?",
            )
        ):
            at = dt.datetime.combine(days[1 + i], dt.time(15), tzinfo=dt.UTC)
            message = inbound(db, contact=person, at=at, body="(not used by analytics)")
            db.add(
                UnansweredQuestion(
                    organization_id=org.id,
                    message_id=message.id,
                    community_id=c1.id,
                    language="es",
                    text_redacted=question,
                    created_at=at,
                )
            )
        stale = [
            make_entry(
                db,
                org=org,
                topic="documents_ids",
                review_due=today - dt.timedelta(days=40),
                reviewed_on=today - dt.timedelta(days=400),
            ),
            make_entry(
                db,
                org=org,
                topic="asylum_protection",
                language="ht",
                review_due=today - dt.timedelta(days=5),
                reviewed_on=today - dt.timedelta(days=200),
            ),
        ]
        make_entry(
            db,
            org=org,
            topic="health_services",
            review_due=today + dt.timedelta(days=30),
            reviewed_on=today - dt.timedelta(days=10),
        )
        users = {u.email: u for u in org_users(db, org.id)}
        _, admin_token = issue_token(db, user=users["admin@faro.test"])
        _, viewer_token = issue_token(db, user=users["viewer@faro.test"])
        db.commit()
        seeded: dict[str, object] = {
            "today": today,
            "campaign_id": campaign.id,
            "campaign_name": campaign.name,
            "community_id": c1.id,
            "other_community_id": c2.id,
            "foreign_community_id": foreign.id,
            "admin_token": admin_token,
            "viewer_token": viewer_token,
            "stale_entry_ids": [e.id for e in stale],
        }
    engine.dispose()
    return seeded


def org_users(db: Session, organization_id: int) -> list[User]:
    return list(db.scalars(select(User).where(User.organization_id == organization_id)))


@contextmanager
def running_site(admin_url: str, logs: Path) -> Iterator[Site]:
    name = f"faro_web_{uuid.uuid4().hex[:10]}"
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARO_")} | {
        "FARO_ENV": "test",
        "FARO_DATABASE_URL": url,
        "FARO_PUBLIC_URL": base_url,
        "FARO_LOG_FORMAT": "json",
        "FARO_VAR_DIR": str(logs / "var"),
    }
    process: subprocess.Popen[bytes] | None = None
    try:
        upgrade_database(url)
        seeded = _seed(url, Settings(env="test", database_url=url))
        log = (logs / "api.log").open("ab")
        process = subprocess.Popen(
            [
                str(BIN / "uvicorn"),
                "api.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def up() -> bool:
            try:
                return httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=60, what="the API")
        yield Site(
            base_url=base_url,
            admin_email="admin@faro.test",
            viewer_email="viewer@faro.test",
            locked_email="locked@faro.test",
            **seeded,  # type: ignore[arg-type]
        )
    finally:
        if process is not None:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=20)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
