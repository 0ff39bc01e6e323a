"""The rollup pass counts what happened, once, whatever the order, the repeats or the crashes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.analytics import models as am
from campaigns.analytics.rollup import STEPS, RollupInterrupted, run_rollup
from campaigns.contacts.models import ConsentSource, ConsentState
from campaigns.contacts.service import set_consent
from campaigns.crypto import AddressCipher
from campaigns.outreach.models import CampaignKind
from tests.analytics.factories import (
    DAY,
    T0,
    answer_poll,
    callback,
    click,
    deliver,
    handover,
    inbound,
    make_world,
    turn,
)

H = dt.timedelta(hours=1)
LATER = T0 + dt.timedelta(days=3)

_TABLES: list[Any] = [
    am.CampaignDay,
    am.CampaignFailure,
    am.PollDay,
    am.CommunityDay,
    am.TopicDay,
    am.TopicTotalDay,
    am.HandoverClose,
    am.Watermark,
    am.MessageStage,
    am.ContactDay,
    am.Reply,
    am.PollAnswer,
]


def snapshot(db: Session) -> list[Any]:
    db.expire_all()
    rows: list[Any] = []
    for model in _TABLES:
        columns = [c.key for c in model.__mapper__.column_attrs]
        rows.append(
            sorted(
                (tuple(str(getattr(o, c)) for c in columns) for o in db.scalars(select(model))),
            )
        )
    return rows


def campaign_days(db: Session, campaign_id: int) -> dict[tuple[int, str, dt.date], dict[str, int]]:
    counts = (*am.CampaignDay.__table__.columns.keys(),)
    out = {}
    for row in db.scalars(select(am.CampaignDay).where(am.CampaignDay.campaign_id == campaign_id)):
        out[(row.community_id, row.language, row.day)] = {
            c: getattr(row, c)
            for c in counts
            if c not in ("campaign_id", "community_id", "language", "day", "organization_id")
            and getattr(row, c)
        }
    return out


def roll(db: Session, **kwargs: Any) -> None:
    run_rollup(db, now=LATER, settle_seconds=0, **kwargs)


def test_funnel_counts_each_message_once_per_stage_whatever_twilio_repeats_or_reorders(
    db: Session, cipher: AddressCipher
) -> None:
    w = make_world(db, cipher=cipher, contacts=6)
    m = [deliver(db, campaign=w.campaign, community=w.community, contact=c) for c in w.contacts]
    # 0: the usual order, with a duplicated 'delivered'
    for status in ("sent", "delivered", "delivered", "read"):
        callback(db, m[0], status, at=T0 + H)
    # 1: 'read' first, then the late 'sent' and 'delivered' (out of order)
    for status in ("read", "sent", "delivered", "read"):
        callback(db, m[1], status, at=T0 + H)
    # 2, 3: delivered (the 'sent' callback lost: delivered implies sent)
    callback(db, m[2], "delivered", at=T0 + H)
    callback(db, m[3], "delivered", at=T0 + H)
    callback(db, m[3], "delivered", at=T0 + H)
    # 4: sent then failed twice (Twilio retried the callback)
    callback(db, m[4], "sent", at=T0 + H)
    callback(db, m[4], "undelivered", at=T0 + H, error_code=30008)
    callback(db, m[4], "undelivered", at=T0 + H, error_code=30008)
    # 5: failed at once, without a code
    callback(db, m[5], "failed", at=T0 + H)
    roll(db)

    key = (w.community.id, "es", DAY)
    assert campaign_days(db, w.campaign.id) == {
        key: {
            "targeted": 6,
            "sent": 5,
            "delivered": 4,
            "read": 2,
            "failed": 2,
            "segments": 5,
        }
    }
    failures = {
        f.error_code: f.failed
        for f in db.scalars(
            select(am.CampaignFailure).where(am.CampaignFailure.campaign_id == w.campaign.id)
        )
    }
    assert failures == {30008: 1, 0: 1}

    # Twilio repeats callbacks after the pass: stages already counted are not counted again.
    before = campaign_days(db, w.campaign.id)
    for message in m[:4]:
        callback(db, message, "sent", at=T0 + 2 * H)
    callback(db, m[0], "read", at=T0 + 2 * H)
    roll(db)
    assert campaign_days(db, w.campaign.id) == before


def test_a_second_pass_without_new_events_changes_nothing(
    db: Session, cipher: AddressCipher
) -> None:
    w = make_world(db, cipher=cipher, contacts=5)
    for c in w.contacts:
        message = deliver(db, campaign=w.campaign, community=w.community, contact=c)
        callback(db, message, "delivered", at=T0 + H)
        turn(db, contact=c, community=w.community, topic="rumour_check", at=T0 + 2 * H, useful=True)
    handover(db, contact=w.contacts[0], community=w.community, opened=T0, closed=T0 + H)
    roll(db)
    before = snapshot(db)
    roll(db)
    assert snapshot(db) == before


@pytest.mark.parametrize("step", STEPS)
def test_an_interrupted_pass_leaves_nothing_behind_and_the_rerun_counts_once(
    db: Session, cipher: AddressCipher, step: str
) -> None:
    w = make_world(db, cipher=cipher, contacts=5, kind=CampaignKind.poll)
    for i, c in enumerate(w.contacts):
        message = deliver(db, campaign=w.campaign, community=w.community, contact=c)
        callback(db, message, "read", at=T0 + H)
        turn(db, contact=c, community=w.community, topic="rumour_check", at=T0 + H, useful=i > 0)
        answer_poll(db, campaign=w.campaign, community=w.community, contact=c, option=1, at=T0 + H)
    set_consent(
        db,
        contact=w.contacts[0],
        state=ConsentState.opted_out,
        source=ConsentSource.keyword,
        now=T0 + 2 * H,
    )
    click(db, campaign=w.campaign, community=w.community, at=T0 + H)
    handover(db, contact=w.contacts[0], community=w.community, opened=T0, closed=T0 + H)
    before = snapshot(db)

    with pytest.raises(RollupInterrupted):
        roll(db, fail_after=step)
    assert snapshot(db) == before

    roll(db)
    roll(db)
    days = campaign_days(db, w.campaign.id)
    assert days[(w.community.id, "es", DAY)] == {
        "targeted": 5,
        "sent": 5,
        "delivered": 5,
        "read": 5,
        "replies": 5,
        "opt_outs": 1,
        "segments": 5,
    }
    assert days[(w.community.id, "", DAY)] == {"clicks": 1}
    topic = db.scalars(select(am.TopicDay).where(am.TopicDay.community_id == w.community.id)).one()
    assert (topic.questions, topic.feedback_yes, topic.feedback_no) == (5, 4, 1)
    polls = db.scalars(select(am.PollDay).where(am.PollDay.campaign_id == w.campaign.id)).one()
    assert (polls.option_number, polls.answers) == (1, 5)


def test_late_events_land_in_their_own_day(db: Session, cipher: AddressCipher) -> None:
    w = make_world(db, cipher=cipher, contacts=2)
    turn(db, contact=w.contacts[0], community=w.community, topic="asylum_protection", at=T0)
    roll(db)
    # Written after the pass, but it happened three days before (a queue that was stuck).
    early = T0 - dt.timedelta(days=3)
    turn(db, contact=w.contacts[1], community=w.community, topic="asylum_protection", at=early)
    message = deliver(db, campaign=w.campaign, community=w.community, contact=w.contacts[1])
    callback(db, message, "delivered", at=T0 + dt.timedelta(days=1))
    roll(db)

    questions = {
        r.day: r.questions
        for r in db.scalars(select(am.TopicDay).where(am.TopicDay.community_id == w.community.id))
    }
    assert questions == {DAY: 1, DAY - dt.timedelta(days=3): 1}
    days = campaign_days(db, w.campaign.id)
    assert days[(w.community.id, "es", DAY)] == {"targeted": 1}
    assert days[(w.community.id, "es", DAY + dt.timedelta(days=1))] == {
        "sent": 1,
        "delivered": 1,
        "segments": 1,
    }


def test_community_day_counts_contacts_once_and_the_median_time_to_close(
    db: Session, cipher: AddressCipher
) -> None:
    w = make_world(db, cipher=cipher, contacts=4)
    a, b, c, d = w.contacts
    for _ in range(3):  # three questions of one person: one active contact, one conversation
        turn(db, contact=a, community=w.community, topic="scams_fraud", at=T0, answered=False)
    turn(db, contact=b, community=w.community, topic="scams_fraud", at=T0)
    turn(db, contact=c, community=w.community, topic=None, at=T0)
    inbound(db, contact=d, at=T0)  # wrote, but no assistant turn (e.g. a poll answer)
    for minutes, person in ((10, a), (30, b), (50, c)):
        handover(
            db,
            contact=person,
            community=w.community,
            opened=T0,
            closed=T0 + dt.timedelta(minutes=minutes),
        )
    handover(db, contact=d, community=w.community, opened=T0)
    roll(db)

    row = db.get(am.CommunityDay, (w.community.id, DAY))
    assert row is not None
    assert (row.active_contacts, row.conversations, row.turns, row.unanswered) == (4, 3, 5, 3)
    assert (row.handovers_opened, row.handovers_closed) == (4, 3)
    topic = db.get(am.TopicDay, (w.community.id, DAY, "scams_fraud", "es"))
    assert topic is not None and (topic.questions, topic.unanswered) == (4, 3)
    total = db.get(am.TopicTotalDay, (w.community.id, DAY, "scams_fraud"))
    assert total is not None and (total.questions, total.unanswered) == (4, 3)
    seconds = sorted(
        h.seconds
        for h in db.scalars(
            select(am.HandoverClose).where(am.HandoverClose.community_id == w.community.id)
        )
    )
    assert seconds == [600, 1800, 3000]


def test_replies_and_opt_outs_are_attributed_within_72_hours_only(
    db: Session, cipher: AddressCipher
) -> None:
    w = make_world(db, cipher=cipher, contacts=4)
    a, b, c, d = w.contacts
    for person in w.contacts:
        deliver(db, campaign=w.campaign, community=w.community, contact=person)
    inbound(db, contact=a, at=T0 + 2 * H)
    inbound(db, contact=a, at=T0 + 3 * H)  # a second reply of the same person: one reply
    inbound(db, contact=b, at=T0 + dt.timedelta(hours=73))  # too late to be an answer
    for person, after in ((c, dt.timedelta(hours=5)), (d, dt.timedelta(hours=80))):
        set_consent(
            db,
            contact=person,
            state=ConsentState.opted_out,
            source=ConsentSource.keyword,
            now=T0 + after,
        )
    roll(db)

    days = campaign_days(db, w.campaign.id)
    assert days[(w.community.id, "es", DAY)] == {"targeted": 4, "replies": 1, "opt_outs": 1}
    opted = db.get(am.CommunityDay, (w.community.id, DAY))
    assert opted is not None and opted.opted_out == 1  # c; d opted out on another day
    later = db.get(am.CommunityDay, (w.community.id, (T0 + dt.timedelta(hours=80)).date()))
    assert later is not None and later.opted_out == 1


def test_a_changed_poll_answer_moves_to_its_new_option(db: Session, cipher: AddressCipher) -> None:
    w = make_world(db, cipher=cipher, contacts=3, kind=CampaignKind.poll)
    a, b, _ = w.contacts
    for person in w.contacts:
        answer_poll(db, campaign=w.campaign, community=w.community, contact=person, option=1, at=T0)
    roll(db)
    answer_poll(db, campaign=w.campaign, community=w.community, contact=a, option=2, at=T0 + H)
    answer_poll(db, campaign=w.campaign, community=w.community, contact=b, option=2, at=T0 + H)
    answer_poll(db, campaign=w.campaign, community=w.community, contact=b, option=1, at=T0 + H)
    roll(db)

    answers = {
        r.option_number: r.answers
        for r in db.scalars(select(am.PollDay).where(am.PollDay.campaign_id == w.campaign.id))
    }
    assert answers == {1: 2, 2: 1}


def test_link_previews_are_not_clicks(db: Session, cipher: AddressCipher) -> None:
    w = make_world(db, cipher=cipher, contacts=1)
    click(db, campaign=w.campaign, community=w.community, at=T0, family="preview")
    click(db, campaign=w.campaign, community=w.community, at=T0, family="ios")
    click(db, campaign=w.campaign, community=w.community, at=T0, family="android")
    roll(db)
    assert campaign_days(db, w.campaign.id) == {(w.community.id, "", DAY): {"clicks": 2}}


def test_the_newest_ids_wait_until_they_have_settled(db: Session, cipher: AddressCipher) -> None:
    """Ids are taken before commit: a pass rolls up only ids it saw at least 10 s earlier."""
    w = make_world(db, cipher=cipher, contacts=1)
    turn(db, contact=w.contacts[0], community=w.community, topic="info_hubs", at=T0)
    run_rollup(db, now=LATER, settle_seconds=10)
    assert db.get(am.TopicDay, (w.community.id, DAY, "info_hubs", "es")) is None
    run_rollup(db, now=LATER + dt.timedelta(seconds=5), settle_seconds=10)
    assert db.get(am.TopicDay, (w.community.id, DAY, "info_hubs", "es")) is None
    run_rollup(db, now=LATER + dt.timedelta(seconds=11), settle_seconds=10)
    row = db.get(am.TopicDay, (w.community.id, DAY, "info_hubs", "es"))
    assert row is not None and row.questions == 1
