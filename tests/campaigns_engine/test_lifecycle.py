"""The lifecycle: two-person approval, edits that need a new approval, runs, pause and cancel."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, delete, select, update
from sqlalchemy.orm import Session

from campaigns.audit import Actor, AuditEvent, set_actor
from campaigns.communities import Community
from campaigns.errors import Conflict, InvalidInput, PermissionDenied
from campaigns.organizations.models import Organization, Role, User
from campaigns.outreach import editing, lifecycle, runs
from campaigns.outreach.models import (
    Campaign,
    CampaignKind,
    CampaignRun,
    CampaignStatus,
    RunStatus,
)
from tests.campaigns_engine.factories import NOW, approved, make_campaign, make_place
from tests.factories import make_organization, make_user

S = CampaignStatus


def status(campaign: Campaign) -> CampaignStatus:
    """The status now (a function, so type checkers do not keep an earlier assert's answer)."""
    return campaign.status


@pytest.fixture
def org(db: Session) -> Organization:
    return make_organization(db)


@pytest.fixture
def author(db: Session, org: Organization) -> User:
    return make_user(db, org=org, role=Role.manager)


@pytest.fixture
def places(db: Session, org: Organization) -> list[Community]:
    return [
        make_place(db, org=org, name="Tapachula", timezone="America/Mexico_City"),
        make_place(
            db,
            org=org,
            name="Puerto Príncipe",
            timezone="America/Port-au-Prince",
            country="HT",
            language="ht",
        ),
    ]


def test_two_person_rule(
    db: Session, org: Organization, author: User, places: list[Community]
) -> None:
    campaign = make_campaign(db, org=org, author=author, communities=places)
    lifecycle.submit_campaign(db, campaign.id, user_id=author.id, now=NOW)
    with pytest.raises(PermissionDenied, match="two-person rule"):
        lifecycle.approve_campaign(db, campaign.id, user_id=author.id, now=NOW)
    viewer = make_user(db, org=org, role=Role.viewer)
    with pytest.raises(PermissionDenied, match="manager or admin"):
        lifecycle.approve_campaign(db, campaign.id, user_id=viewer.id, now=NOW)
    outsider = make_user(db, org=make_organization(db), role=Role.admin)
    with pytest.raises(PermissionDenied):
        lifecycle.approve_campaign(db, campaign.id, user_id=outsider.id, now=NOW)
    assert campaign.status == S.submitted

    admin = make_user(db, org=org, role=Role.admin)
    lifecycle.approve_campaign(db, campaign.id, user_id=admin.id, now=NOW)
    assert status(campaign) == S.approved
    assert campaign.approved_by_user_id == admin.id
    assert campaign.approved_at == NOW


def test_whoever_edited_or_submitted_cannot_approve(
    db: Session, org: Organization, author: User, places: list[Community]
) -> None:
    campaign = make_campaign(db, org=org, author=author, communities=places)
    editor = make_user(db, org=org, role=Role.manager)
    editing.update_campaign(db, campaign.id, user_id=editor.id, changes={"name": "Otra"}, now=NOW)
    submitter = make_user(db, org=org, role=Role.manager)
    lifecycle.submit_campaign(db, campaign.id, user_id=submitter.id, now=NOW)
    for who in (author, editor, submitter):
        with pytest.raises(PermissionDenied):
            lifecycle.approve_campaign(db, campaign.id, user_id=who.id, now=NOW)
    lifecycle.approve_campaign(
        db, campaign.id, user_id=make_user(db, org=org, role=Role.manager).id, now=NOW
    )
    assert campaign.status == S.approved


def test_an_edit_after_approval_needs_a_new_approval(
    db: Session, org: Organization, author: User, places: list[Community]
) -> None:
    set_actor(db, Actor(user_id=author.id, organization_id=org.id, via="api"))
    campaign = make_campaign(db, org=org, author=author, communities=places)
    approved(db, campaign, org=org)
    version = campaign.version
    editing.update_campaign(
        db, campaign.id, user_id=author.id, changes={"objective": "Más claro"}, now=NOW
    )
    assert campaign.status == S.draft
    assert campaign.version == version + 1
    assert campaign.approved_by_user_id is None and campaign.submitted_by_user_id is None
    with pytest.raises(Conflict, match="it is draft; schedule needs approved"):
        lifecycle.schedule_campaign(db, campaign.id, now=NOW)

    db.flush()
    actions = db.scalars(
        select(AuditEvent.action)
        .where(AuditEvent.object_type == "campaign", AuditEvent.object_id == str(campaign.id))
        .order_by(AuditEvent.id)
    ).all()
    assert "campaign.create" in actions
    assert actions.index("campaign.submit") < actions.index("campaign.approve")
    assert actions[-2:] == ["campaign.edit", "campaign.update"]
    edit = db.scalars(
        select(AuditEvent)
        .where(AuditEvent.action == "campaign.edit")
        .order_by(AuditEvent.id.desc())
    ).first()
    assert edit is not None and edit.actor_user_id == author.id
    assert edit.before == {"status": "approved", "version": version}
    assert edit.after == {"status": "draft", "version": version + 1}


def test_every_kind_of_edit_bumps_the_version(
    db: Session, org: Organization, author: User, places: list[Community]
) -> None:
    campaign = make_campaign(db, org=org, author=author, communities=places, kind=CampaignKind.poll)
    start = campaign.version
    editing.set_targets(db, campaign.id, user_id=author.id, community_ids=[places[0].id], now=NOW)
    editing.set_contents(db, campaign.id, user_id=author.id, rows=[], now=NOW)
    editing.update_campaign(
        db, campaign.id, user_id=author.id, changes={"pacing_minutes": 60}, now=NOW
    )
    assert campaign.version == start + 3
    assert editing.target_ids(db, campaign.id) == [places[0].id]


def test_invalid_transitions_name_both_states(
    db: Session, org: Organization, author: User, places: list[Community]
) -> None:
    campaign = make_campaign(db, org=org, author=author, communities=places)
    with pytest.raises(
        Conflict, match=r"cannot approve campaign \d+: it is draft; approve needs submitted"
    ) as info:
        lifecycle.approve_campaign(
            db, campaign.id, user_id=make_user(db, org=org, role=Role.manager).id, now=NOW
        )
    assert info.value.details == {"status": "draft", "wanted": "approved"}
    with pytest.raises(Conflict, match="it is draft; pause needs scheduled or running"):
        lifecycle.pause_campaign(db, campaign.id, now=NOW)
    with pytest.raises(Conflict, match="resume needs paused"):
        lifecycle.resume_campaign(db, campaign.id, now=NOW)
    with pytest.raises(Conflict, match="schedule needs approved"):
        lifecycle.schedule_campaign(db, campaign.id, now=NOW)
    lifecycle.submit_campaign(db, campaign.id, user_id=author.id, now=NOW)
    with pytest.raises(Conflict, match="submit needs draft"):
        lifecycle.submit_campaign(db, campaign.id, user_id=author.id, now=NOW)
    lifecycle.cancel_campaign(db, campaign.id, now=NOW)
    with pytest.raises(Conflict, match="it is cancelled"):
        lifecycle.cancel_campaign(db, campaign.id, now=NOW)
    with pytest.raises(Conflict, match="can no longer be edited"):
        editing.update_campaign(db, campaign.id, user_id=author.id, changes={"name": "x"}, now=NOW)


def test_schedule_creates_one_run_per_community_at_its_local_time(
    db: Session, org: Organization, author: User, places: list[Community]
) -> None:
    campaign = make_campaign(db, org=org, author=author, communities=places)
    approved(db, campaign, org=org)
    lifecycle.schedule_campaign(db, campaign.id, now=NOW)
    assert campaign.status == S.scheduled
    listed = runs.list_runs(db, campaign.id)
    assert [(r.community_id, r.scheduled_for, r.status) for r in listed] == [
        (places[1].id, dt.datetime(2026, 12, 1, 14, tzinfo=dt.UTC), RunStatus.pending),
        (places[0].id, dt.datetime(2026, 12, 1, 15, tzinfo=dt.UTC), RunStatus.pending),
    ]
    assert {r.campaign_version for r in listed} == {campaign.version}
    with pytest.raises(Conflict, match="it is scheduled"):
        lifecycle.schedule_campaign(db, campaign.id, now=NOW)
    assert len(runs.list_runs(db, campaign.id)) == 2


def test_launching_a_schedule_that_has_gone_by_is_refused(
    db: Session, org: Organization, author: User, places: list[Community]
) -> None:
    campaign = make_campaign(db, org=org, author=author, communities=places)
    approved(db, campaign, org=org)
    later = dt.datetime(2026, 12, 1, 14, 30, tzinfo=dt.UTC)  # after Port-au-Prince's 09:00
    with pytest.raises(InvalidInput, match="in the past for community 'Puerto Príncipe'"):
        lifecycle.schedule_campaign(db, campaign.id, now=later)
    assert campaign.status == S.approved
    assert runs.list_runs(db, campaign.id) == []


def test_a_community_with_an_unknown_time_zone_stops_the_launch(
    db: Session, org: Organization, author: User, places: list[Community]
) -> None:
    campaign = make_campaign(db, org=org, author=author, communities=places)
    approved(db, campaign, org=org)
    db.execute(update(Community).where(Community.id == places[0].id).values(timezone="Etc/Nowhere"))
    db.expire_all()
    with pytest.raises(InvalidInput, match="unknown time zone 'Etc/Nowhere'"):
        lifecycle.schedule_campaign(db, campaign.id, now=NOW)


def test_due_runs_pause_resume_and_stale_versions(
    db: Session, org: Organization, author: User, places: list[Community]
) -> None:
    campaign = make_campaign(db, org=org, author=author, communities=places)
    approved(db, campaign, org=org)
    lifecycle.schedule_campaign(db, campaign.id, now=NOW)
    before = dt.datetime(2026, 12, 1, 13, 59, tzinfo=dt.UTC)
    between = dt.datetime(2026, 12, 1, 14, 30, tzinfo=dt.UTC)
    after = dt.datetime(2026, 12, 1, 16, tzinfo=dt.UTC)
    assert runs.due_runs(db, now=before) == []
    assert [r.community_id for r in runs.due_runs(db, now=between)] == [places[1].id]
    assert len(runs.due_runs(db, now=after)) == 2

    lifecycle.pause_campaign(db, campaign.id, now=NOW)
    assert campaign.paused and campaign.status == S.paused
    assert not campaign.sending_allowed
    assert runs.due_runs(db, now=after) == []
    lifecycle.resume_campaign(db, campaign.id, now=NOW)
    assert status(campaign) == S.scheduled and not campaign.paused
    assert len(runs.due_runs(db, now=after)) == 2  # deferred by the pause, not dropped

    # A run planned from an older version is never due.
    db.execute(
        update(CampaignRun)
        .where(CampaignRun.community_id == places[0].id)
        .values(campaign_version=campaign.version - 1)
    )
    assert [r.community_id for r in runs.due_runs(db, now=after)] == [places[1].id]


def test_claim_and_start_running_then_complete(
    db: Session, org: Organization, author: User, places: list[Community]
) -> None:
    campaign = make_campaign(db, org=org, author=author, communities=places)
    approved(db, campaign, org=org)
    lifecycle.schedule_campaign(db, campaign.id, now=NOW)
    after = dt.datetime(2026, 12, 1, 16, tzinfo=dt.UTC)
    due = runs.due_runs(db, now=after)
    assert runs.claim_run(db, due[0].id, now=after)
    assert not runs.claim_run(db, due[0].id, now=after)  # a second planner gets nothing
    assert lifecycle.mark_running(db, campaign.id, now=after)
    assert not lifecycle.mark_running(db, campaign.id, now=after)
    assert campaign.status == S.running

    lifecycle.pause_campaign(db, campaign.id, now=after)
    lifecycle.resume_campaign(db, campaign.id, now=after)
    assert campaign.status == S.running  # a run had started

    assert lifecycle.complete_finished(db, now=after) == []  # runs left
    db.execute(update(CampaignRun).values(status=RunStatus.done))
    assert lifecycle.complete_finished(db, now=after) == [campaign.id]
    assert status(campaign) == S.completed


def test_cancel_cancels_pending_runs_and_editing_a_scheduled_campaign_drops_them(
    db: Session, org: Organization, author: User, places: list[Community]
) -> None:
    first = make_campaign(db, org=org, author=author, communities=places)
    approved(db, first, org=org)
    lifecycle.schedule_campaign(db, first.id, now=NOW)
    lifecycle.cancel_campaign(db, first.id, now=NOW)
    assert {r.status for r in runs.list_runs(db, first.id)} == {RunStatus.cancelled}
    assert runs.due_runs(db, now=NOW + dt.timedelta(days=30)) == []

    second = make_campaign(db, org=org, author=author, communities=places)
    approved(db, second, org=org)
    lifecycle.schedule_campaign(db, second.id, now=NOW)
    editing.update_campaign(db, second.id, user_id=author.id, changes={"name": "Nueva"}, now=NOW)
    assert second.status == S.draft
    assert runs.list_runs(db, second.id) == []
    # Approved and launched again, it gets fresh runs of the new version.
    approved(db, second, org=org)
    lifecycle.schedule_campaign(db, second.id, now=NOW)
    assert {r.campaign_version for r in runs.list_runs(db, second.id)} == {second.version}


def test_a_running_campaign_is_paused_before_it_is_edited(
    db: Session, org: Organization, author: User, places: list[Community]
) -> None:
    campaign = make_campaign(db, org=org, author=author, communities=places)
    approved(db, campaign, org=org)
    lifecycle.schedule_campaign(db, campaign.id, now=NOW)
    lifecycle.mark_running(db, campaign.id, now=NOW)
    with pytest.raises(Conflict, match="pause it before editing"):
        editing.update_campaign(db, campaign.id, user_id=author.id, changes={"name": "x"}, now=NOW)
    lifecycle.pause_campaign(db, campaign.id, now=NOW)
    editing.update_campaign(db, campaign.id, user_id=author.id, changes={"name": "x"}, now=NOW)
    assert campaign.status == S.draft and not campaign.paused


def test_recurring_runs_are_created_one_ahead_and_never_twice(
    db: Session, org: Organization, author: User, places: list[Community]
) -> None:
    campaign = make_campaign(
        db,
        org=org,
        author=author,
        communities=places[:1],
        schedule={
            "type": "rrule",
            "rrule": "FREQ=WEEKLY;BYDAY=TU",
            "local_time": "09:00",
            "start": "2026-12-01",
            "until": "2026-12-08",
        },
    )
    approved(db, campaign, org=org)
    lifecycle.schedule_campaign(db, campaign.id, now=NOW)
    assert runs.extend_schedules(db, now=NOW) == 0  # the next one exists already
    [first] = runs.list_runs(db, campaign.id)
    assert first.scheduled_for == dt.datetime(2026, 12, 1, 15, tzinfo=dt.UTC)

    later = dt.datetime(2026, 12, 1, 16, tzinfo=dt.UTC)
    assert runs.claim_run(db, first.id, now=later)
    lifecycle.mark_running(db, campaign.id, now=later)
    # Quiet hours that now cover 09:00 do not turn the first occurrence into a second run.
    db.execute(
        update(Community)
        .where(Community.id == places[0].id)
        .values(quiet_start=dt.time(8), quiet_end=dt.time(10))
    )
    db.expire_all()
    assert runs.extend_schedules(db, now=later) == 1  # the next one, while the first plans
    assert runs.extend_schedules(db, now=later) == 0
    listed = runs.list_runs(db, campaign.id)
    assert [r.scheduled_for for r in listed] == [
        dt.datetime(2026, 12, 1, 15, tzinfo=dt.UTC),
        dt.datetime(2026, 12, 8, 15, tzinfo=dt.UTC),
    ]
    assert listed[1].due_at == dt.datetime(2026, 12, 8, 16, tzinfo=dt.UTC)  # 10:00 local

    db.execute(update(CampaignRun).values(status=RunStatus.done))
    end = dt.datetime(2026, 12, 9, tzinfo=dt.UTC)
    assert runs.extend_schedules(db, now=end) == 0  # until has passed
    assert lifecycle.complete_finished(db, now=end) == [campaign.id]


def test_drip_runs_daily_and_never_completes(
    db: Session, org: Organization, author: User, places: list[Community]
) -> None:
    from campaigns.outreach.validation import ContentInput

    steps = [
        ContentInput(language="es", sms_text="Bienvenida", step=1, offset_days=0),
        ContentInput(language="es", sms_text="Tus derechos", step=2, offset_days=3),
    ]
    campaign = make_campaign(
        db, org=org, author=author, communities=places[:1], kind=CampaignKind.drip, contents=steps
    )
    approved(db, campaign, org=org)
    lifecycle.schedule_campaign(db, campaign.id, now=NOW)
    [first] = runs.list_runs(db, campaign.id)
    assert first.scheduled_for == dt.datetime(2026, 11, 28, 16, tzinfo=dt.UTC)  # 10:00 local
    db.execute(update(CampaignRun).values(status=RunStatus.done))
    lifecycle.mark_running(db, campaign.id, now=NOW)
    assert runs.extend_schedules(db, now=dt.datetime(2026, 11, 28, 17, tzinfo=dt.UTC)) == 1
    assert lifecycle.complete_finished(db, now=dt.datetime(2026, 11, 28, 17, tzinfo=dt.UTC)) == []


# --- two sessions on two connections ------------------------------------------------------------


@pytest.fixture
def committed(engine: Engine) -> Iterator[dict[str, int]]:
    """A submitted campaign committed for real, so two connections can race over it."""
    with Session(engine, expire_on_commit=False) as s:
        org = make_organization(s)
        author = make_user(s, org=org, role=Role.manager)
        place = make_place(s, org=org, name="Tapachula", timezone="America/Mexico_City")
        campaign = make_campaign(s, org=org, author=author, communities=[place])
        lifecycle.submit_campaign(s, campaign.id, user_id=author.id, now=NOW)
        approvers = [make_user(s, org=org, role=Role.manager) for _ in range(2)]
        s.commit()
        ids = {
            "org": org.id,
            "campaign": campaign.id,
            "a": approvers[0].id,
            "b": approvers[1].id,
        }
    yield ids
    with Session(engine) as s:
        s.execute(delete(Organization).where(Organization.id == ids["org"]))
        s.commit()


Action = Callable[[Session], object]


def _race(engine: Engine, first: Action, second: Action) -> list[str]:
    """Run ``first`` in one transaction and, before it commits, ``second`` in another on its
    own connection (it reads the state ``first`` has not committed yet, then waits on the row
    lock); return how each ended."""
    outcomes: list[str] = ["", ""]

    def run(session: Session) -> None:
        try:
            second(session)
            session.commit()
            outcomes[1] = "ok"
        except Conflict as exc:
            session.rollback()
            outcomes[1] = f"conflict: {exc.message}"

    s1, s2 = Session(engine), Session(engine)
    try:
        first(s1)
        thread = threading.Thread(target=run, args=(s2,))
        thread.start()
        thread.join(timeout=0.5)
        assert thread.is_alive(), "the second transaction should wait for the first"
        s1.commit()
        outcomes[0] = "ok"
        thread.join(timeout=10)
        assert not thread.is_alive()
    finally:
        s1.close()
        s2.close()
    return outcomes


def test_two_concurrent_approvals_only_one_wins(engine: Engine, committed: dict[str, int]) -> None:
    cid = committed["campaign"]
    outcomes = _race(
        engine,
        lambda s: lifecycle.approve_campaign(s, cid, user_id=committed["a"], now=NOW),
        lambda s: lifecycle.approve_campaign(s, cid, user_id=committed["b"], now=NOW),
    )
    assert outcomes[0] == "ok"
    assert outcomes[1].startswith("conflict: cannot approve campaign")
    assert "it is approved" in outcomes[1]
    with Session(engine) as s:
        campaign = s.get(Campaign, cid)
        assert campaign is not None
        assert campaign.status == S.approved and campaign.approved_by_user_id == committed["a"]
        approvals = s.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "campaign.approve", AuditEvent.object_id == str(cid)
            )
        ).all()
        assert len(approvals) == 1


def test_two_concurrent_launches_only_one_wins(engine: Engine, committed: dict[str, int]) -> None:
    cid = committed["campaign"]
    with Session(engine) as s:
        lifecycle.approve_campaign(s, cid, user_id=committed["a"], now=NOW)
        s.commit()
    outcomes = _race(
        engine,
        lambda s: lifecycle.schedule_campaign(s, cid, now=NOW),
        lambda s: lifecycle.schedule_campaign(s, cid, now=NOW),
    )
    assert outcomes[0] == "ok"
    assert "it is scheduled" in outcomes[1]
    with Session(engine) as s:
        assert len(runs.list_runs(s, cid)) == 1


def test_an_approval_racing_an_edit_fails(engine: Engine, committed: dict[str, int]) -> None:
    cid = committed["campaign"]
    outcomes = _race(
        engine,
        lambda s: editing.update_campaign(
            s, cid, user_id=committed["b"], changes={"name": "Cambiada"}, now=NOW
        ),
        lambda s: lifecycle.approve_campaign(s, cid, user_id=committed["a"], now=NOW),
    )
    assert outcomes[0] == "ok"
    assert "it is draft" in outcomes[1]
    with Session(engine) as s:
        campaign = s.get(Campaign, cid)
        assert campaign is not None and campaign.status == S.draft
