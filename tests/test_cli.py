"""The faro command line, on a fresh SQLite database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from campaigns.audit import AuditEvent
from campaigns.cli import app
from campaigns.contacts.models import Contact
from campaigns.db import make_engine, make_sessionmaker
from campaigns.organizations.models import User
from campaigns.organizations.service import verify_password
from campaigns.settings import get_settings


@pytest.fixture
def sqlite_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("FARO_DATABASE_URL", url)
    monkeypatch.setenv("FARO_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


ADMIN = ["admin", "create", "--password-prompt", "--organization", "INM demo"]


def test_upgrade_admin_token_and_demo(sqlite_env: str, tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0

    made = runner.invoke(
        app,
        [
            "admin",
            "create",
            "--organization",
            "INM demo",
            "--email",
            "Ana@Example.org",
            "--country",
            "MX",
        ],
    )
    assert made.exit_code == 0, made.output
    assert "token (shown once): faro_" in made.output

    token = runner.invoke(app, ["token", "create", "--email", "ana@example.org", "--days", "7"])
    assert token.exit_code == 0 and "faro_" in token.output
    unknown = runner.invoke(app, ["token", "create", "--email", "nobody@example.org"])
    assert unknown.exit_code == 2 and "no user" in unknown.output

    twice = runner.invoke(
        app, ["admin", "create", "--organization", "INM demo", "--email", "ana@example.org"]
    )
    assert twice.exit_code == 2 and "exists already" in twice.output

    first = runner.invoke(app, ["demo", "seed"])
    assert first.exit_code == 0, first.output
    assert "90 simulated contacts added" in first.output
    second = runner.invoke(app, ["demo", "seed"])
    assert "0 organizations, 0 communities, 0 users, 0 simulated contacts added" in second.output
    assert (tmp_path / "var" / "demo-token.txt").read_text().startswith("faro_")
    # A dashboard login for the demo admin, new on every seed (so the last one is the one).
    demo_email, demo_password = (tmp_path / "var" / "demo-login.txt").read_text().split()

    with_password = runner.invoke(
        app,
        [*ADMIN, "--email", "luz@example.org"],
        input="una clave larga y buena\nuna clave larga y buena\n",
    )
    assert with_password.exit_code == 0, with_password.output
    short = runner.invoke(
        app,
        [*ADMIN, "--email", "leo@example.org"],
        input="corta\ncorta\n",
    )
    assert short.exit_code == 2 and "at least 12 characters" in short.output

    engine = make_engine(sqlite_env)
    with make_sessionmaker(engine)() as session:
        luz = session.scalars(select(User).where(User.email == "luz@example.org")).one()
        assert verify_password("una clave larga y buena", luz.password_hash)
        demo = session.scalars(select(User).where(User.email == demo_email)).one()
        assert verify_password(demo_password, demo.password_hash)
        assert session.scalar(select(func.count()).select_from(Contact)) == 90
        assert all(session.scalars(select(Contact.is_simulated)))
        vias = set(session.scalars(select(AuditEvent.via)))
        assert vias == {"cli"}
    engine.dispose()


def test_campaign_list_pause_resume_cancel(sqlite_env: str) -> None:
    from campaigns.outreach import lifecycle
    from campaigns.outreach.models import Campaign, CampaignStatus
    from tests.campaigns_engine.factories import NOW, approved, make_campaign
    from tests.factories import make_community, make_organization, make_user

    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    engine = make_engine(sqlite_env)
    with make_sessionmaker(engine)() as session:
        org = make_organization(session, name="ONG Faro")
        author = make_user(session, org=org)
        place = make_community(session, org=org, name="Tapachula")
        campaign = make_campaign(session, org=org, author=author, communities=[place])
        draft = make_campaign(session, org=org, author=author, name="Borrador")
        approved(session, campaign, org=org)
        lifecycle.schedule_campaign(session, campaign.id, now=NOW)
        session.commit()
        ids = campaign.id, draft.id

    listed = runner.invoke(app, ["campaign", "list", "--organization", "ONG Faro"])
    assert listed.exit_code == 0, listed.output
    assert f"{ids[0]}\tscheduled\tannouncement" in listed.output
    assert f"{ids[1]}\tdraft\tannouncement\tv2\tBorrador" in listed.output
    unknown = runner.invoke(app, ["campaign", "list", "--organization", "Nadie"])
    assert unknown.exit_code == 2

    paused = runner.invoke(app, ["campaign", "pause", str(ids[0])])
    assert paused.exit_code == 0 and "paused" in paused.output, paused.output
    assert (
        "(paused)" in runner.invoke(app, ["campaign", "list", "--organization", "ONG Faro"]).output
    )
    resumed = runner.invoke(app, ["campaign", "resume", str(ids[0])])
    assert resumed.exit_code == 0 and "scheduled" in resumed.output, resumed.output
    wrong = runner.invoke(app, ["campaign", "pause", str(ids[1])])
    assert wrong.exit_code == 2 and "cannot pause" in wrong.output
    missing = runner.invoke(app, ["campaign", "cancel", "999999"])
    assert missing.exit_code == 2 and "not found" in missing.output
    cancelled = runner.invoke(app, ["campaign", "cancel", str(ids[0])])
    assert cancelled.exit_code == 0 and "cancelled" in cancelled.output

    with make_sessionmaker(engine)() as session:
        assert session.get(Campaign, ids[0]).status == CampaignStatus.cancelled  # type: ignore[union-attr]
        moves = session.execute(
            select(AuditEvent.action, AuditEvent.via).where(
                AuditEvent.action.in_(["campaign.pause", "campaign.resume", "campaign.cancel"])
            )
        ).all()
        assert sorted(moves) == [
            ("campaign.cancel", "cli"),
            ("campaign.pause", "cli"),
            ("campaign.resume", "cli"),
        ]
    engine.dispose()
