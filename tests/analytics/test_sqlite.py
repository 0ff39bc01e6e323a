"""The same pass on SQLite (the embedded default) gives the same numbers as on PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import select

from campaigns.analytics import models as am
from campaigns.analytics.rollup import run_rollup
from campaigns.contacts.models import ConsentSource, ConsentState
from campaigns.contacts.service import set_consent
from campaigns.crypto import AddressCipher
from campaigns.db import make_engine, make_sessionmaker
from campaigns.embedded import upgrade_database
from campaigns.outreach.models import CampaignKind
from campaigns.settings import Settings
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


def test_rollup_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'analytics.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    cipher = AddressCipher.from_settings(Settings(env="test"))
    with make_sessionmaker(engine)() as db, db.begin():
        w = make_world(db, cipher=cipher, contacts=5, kind=CampaignKind.poll)
        a = w.contacts[0]
        for i, person in enumerate(w.contacts):
            message = deliver(db, campaign=w.campaign, community=w.community, contact=person)
            callback(db, message, "read" if i else "delivered", at=T0 + H)
            callback(db, message, "sent", at=T0 + 2 * H)  # late and repeated
            answer_poll(
                db, campaign=w.campaign, community=w.community, contact=person, option=1, at=T0 + H
            )
            turn(
                db, contact=person, community=w.community, topic="rumour_check", at=T0, useful=True
            )
        inbound(db, contact=a, at=T0 + 100 * H)  # too late to be a reply
        set_consent(
            db,
            contact=a,
            state=ConsentState.opted_out,
            source=ConsentSource.keyword,
            now=T0 + 3 * H,
        )
        click(db, campaign=w.campaign, community=w.community, at=T0)
        handover(db, contact=a, community=w.community, opened=T0, closed=T0 + H)
        run_rollup(db, now=T0 + dt.timedelta(days=5), settle_seconds=0)
        answer_poll(db, campaign=w.campaign, community=w.community, contact=a, option=2, at=T0 + H)
        run_rollup(db, now=T0 + dt.timedelta(days=5), settle_seconds=0)
        run_rollup(db, now=T0 + dt.timedelta(days=5), settle_seconds=0)

        day = db.get(am.CampaignDay, (w.campaign.id, w.community.id, "es", DAY))
        assert day is not None
        counts = (day.targeted, day.sent, day.delivered, day.read, day.replies, day.opt_outs)
        assert counts == (5, 5, 5, 4, 5, 1)
        clicks = db.get(am.CampaignDay, (w.campaign.id, w.community.id, "", DAY))
        assert clicks is not None and clicks.clicks == 1
        topic = db.get(am.TopicDay, (w.community.id, DAY, "rumour_check", "es"))
        assert topic is not None and (topic.questions, topic.feedback_yes) == (5, 5)
        community = db.get(am.CommunityDay, (w.community.id, DAY))
        assert community is not None
        assert (community.conversations, community.opted_out, community.handovers_closed) == (
            5,
            1,
            1,
        )
        polls = {
            r.option_number: r.answers
            for r in db.scalars(select(am.PollDay).where(am.PollDay.campaign_id == w.campaign.id))
        }
        assert polls == {1: 4, 2: 1}
    engine.dispose()
