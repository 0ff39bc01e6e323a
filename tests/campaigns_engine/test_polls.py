"""Poll replies: counted per option and community, thanked, and kept away from the assistant."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session, sessionmaker

from campaigns.assistant.models import Awaiting, ConversationState
from campaigns.crypto import AddressCipher
from campaigns.db import utcnow
from campaigns.messaging import conversation
from campaigns.messaging.models import Direction, Message, Purpose
from campaigns.messaging.outbound import queue_text
from campaigns.organizations.models import Role
from campaigns.outbox import Job
from campaigns.outreach.editing import options_of
from campaigns.outreach.engagement import PollResponse
from campaigns.outreach.models import Campaign, CampaignKind
from campaigns.outreach.polls import match_option
from tests.campaigns_engine.factories import make_campaign
from tests.factories import (
    auth,
    make_community,
    make_contact,
    make_organization,
    make_sender,
    make_token,
    make_user,
    random_mobile,
    signed_post,
    twilio_form,
)


class RecordingAssistant:
    """Stands in for Rasa at Faro's boundary: records what reached it."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def turn(self, *, sender: str, text: str, metadata: dict[str, Any]) -> list[dict[str, Any]]:
        self.texts.append(text)
        return [{"recipient_id": sender, "text": "respuesta del asistente"}]


class Poll:
    def __init__(
        self,
        client: TestClient,
        db: Session,
        connection: Connection,
        cipher: AddressCipher,
        jobs: list[Job],
    ) -> None:
        self.client, self.db, self.cipher, self.jobs = client, db, cipher, jobs
        self.factory = sessionmaker(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        self.org = make_organization(db)
        self.author = make_user(db, org=self.org, role=Role.manager)
        self.sender = make_sender(db, org=self.org)
        self.community = make_community(db, org=self.org, name="Tapachula")
        self.campaign = make_campaign(
            db,
            org=self.org,
            author=self.author,
            communities=[self.community],
            kind=CampaignKind.poll,
        )
        self.phone = random_mobile("MX")
        self.contact = make_contact(
            db, org=self.org, cipher=cipher, phone=self.phone, communities=[self.community]
        )
        self.bot = RecordingAssistant()

    def question(self, campaign: Campaign, *, hours_ago: float) -> Message:
        """The campaign message as the dispatcher queues it, ``hours_ago`` before now."""
        return queue_text(
            self.db,
            contact=self.contact,
            sender=self.sender,
            purpose=Purpose.campaign,
            body="¿Conoces la línea 089?\n\n1 Sí\n2 No",
            now=utcnow() - dt.timedelta(hours=hours_ago),
            publish=False,
            campaign_id=campaign.id,
        )

    def say(self, body: str) -> str:
        self.db.commit()
        r = signed_post(
            self.client,
            "/webhooks/twilio/messages",
            twilio_form(sender=self.sender, phone=self.phone, body=body),
        )
        assert r.status_code == 200, r.text
        message_id = [j for j in self.jobs if j.task == "conversation.handle"][-1].args[0]
        self.jobs.clear()
        return conversation.handle(
            self.factory, message_id=message_id, bot=self.bot, cipher=self.cipher
        )

    def last_reply(self) -> str:
        self.db.expire_all()
        return (
            self.db.scalars(
                select(Message.body)
                .where(Message.direction == Direction.outbound, Message.purpose == Purpose.reply)
                .order_by(Message.id.desc())
                .limit(1)
            ).one()
            or ""
        )

    def responses(self) -> list[tuple[int, int | None, str]]:
        self.db.expire_all()
        return [
            (r.option_number, r.community_id, r.language)
            for r in self.db.scalars(select(PollResponse))
        ]


@pytest.fixture
def poll(
    client: TestClient, db: Session, connection: Connection, cipher: AddressCipher, jobs: list[Job]
) -> Poll:
    return Poll(client, db, connection, cipher, jobs)


def test_a_reply_is_counted_thanked_and_kept_from_the_assistant(poll: Poll) -> None:
    poll.question(poll.campaign, hours_ago=2)
    assert poll.say("Uno") == "poll"
    assert poll.last_reply() == "Gracias, registramos tu respuesta: 1 Sí"
    assert poll.responses() == [(1, poll.community.id, "es")]
    # A later answer inside the window replaces the earlier one: one answer per person.
    assert poll.say("non") == "poll"
    assert poll.last_reply() == "Gracias, registramos tu respuesta: 2 No"
    assert poll.responses() == [(2, poll.community.id, "es")]
    assert poll.bot.texts == []


def test_replies_outside_the_window_or_not_an_option_go_to_the_assistant(poll: Poll) -> None:
    poll.question(poll.campaign, hours_ago=73)  # the default window is 72 hours
    assert poll.say("1") == "rasa_without_faro"
    poll.question(poll.campaign, hours_ago=1)
    assert poll.say("¿dónde está la COMAR?") == "rasa_without_faro"
    assert poll.bot.texts == ["1", "¿dónde está la COMAR?"]
    assert poll.responses() == []


def test_a_reply_to_an_announcement_or_a_test_send_goes_to_the_assistant(poll: Poll) -> None:
    announcement = make_campaign(
        poll.db, org=poll.org, author=poll.author, communities=[poll.community]
    )
    poll.question(announcement, hours_ago=1)
    assert poll.say("1") == "rasa_without_faro"
    queue_text(
        poll.db,
        contact=poll.contact,
        sender=poll.sender,
        purpose=Purpose.test,
        body="prueba",
        publish=False,
        campaign_id=poll.campaign.id,
    )
    assert poll.say("2") == "rasa_without_faro"
    assert poll.responses() == []


def test_the_assistants_own_newer_question_wins_over_an_older_poll(poll: Poll) -> None:
    poll.question(poll.campaign, hours_ago=3)
    poll.db.add(
        ConversationState(
            organization_id=poll.org.id,
            contact_id=poll.contact.id,
            awaiting=Awaiting.feedback,
            last_topic="asylum_protection",
            last_turn_at=utcnow() - dt.timedelta(minutes=5),
        )
    )
    assert poll.say("1") == "feedback"
    assert poll.responses() == []


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("1", 1),
        ("2.", 2),
        ("opción 2", 2),
        ("la primera", 1),
        ("One", 1),
        ("en", 1),
        ("premye", 1),
        ("Sí!", 1),
        ("si", 1),
        ("yes", 1),
        ("wi", 1),
        ("oui", 1),
        ("no", 2),
        ("Non", 2),
        ("deux", 2),
        ("la segunda", 2),
        ("3", None),
        ("tres", None),
        ("hola", None),
        ("sí, pero no", None),
    ],
)
def test_replies_in_four_languages(poll: Poll, reply: str, expected: int | None) -> None:
    assert match_option(reply, options_of(poll.db, poll.campaign.id)) == expected


def test_results_suppress_small_cells_except_for_admins(poll: Poll) -> None:
    for number, people in ((1, 6), (2, 2)):
        for _ in range(people):
            contact = make_contact(
                poll.db, org=poll.org, cipher=poll.cipher, communities=[poll.community]
            )
            message = poll.question(poll.campaign, hours_ago=1)  # any message id will do
            poll.db.add(
                PollResponse(
                    organization_id=poll.org.id,
                    campaign_id=poll.campaign.id,
                    option_number=number,
                    contact_id=contact.id,
                    community_id=poll.community.id,
                    language="es",
                    message_id=message.id,
                )
            )
    viewer = make_token(poll.db, user=make_user(poll.db, org=poll.org, role=Role.viewer))
    admin = make_token(poll.db, user=make_user(poll.db, org=poll.org, role=Role.admin))
    poll.db.commit()
    path = f"/v1/campaigns/{poll.campaign.id}/poll-results"

    seen = poll.client.get(path, headers=auth(viewer))
    assert seen.status_code == 200, seen.text
    body = seen.json()
    assert body["suppressed"] is True
    assert body["communities"] == [
        {"community_id": poll.community.id, "name": "Tapachula", "counts": {"1": 6, "2": "<5"}}
    ]
    assert [o["number"] for o in body["options"]] == [1, 2]

    exact = poll.client.get(path, headers=auth(admin)).json()
    assert exact["suppressed"] is False
    assert exact["communities"][0]["counts"] == {"1": 6, "2": 2}
