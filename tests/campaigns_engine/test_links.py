"""Tracked links in campaign content, their redirect and click counts; and test sends."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.communities import Community
from campaigns.contacts.models import Contact
from campaigns.crypto import AddressCipher
from campaigns.messaging.models import Message, Purpose
from campaigns.organizations.models import Organization, Role, User
from campaigns.outbox import Job
from campaigns.outreach.engagement import LinkClick, TrackedLink
from campaigns.outreach.links import track_links
from campaigns.outreach.models import Campaign, CampaignKind
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
)

PUBLIC = "https://faro.test"
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148"


class Setup:
    def __init__(self, db: Session) -> None:
        self.db = db
        self.org: Organization = make_organization(db)
        self.manager: User = make_user(db, org=self.org, role=Role.manager)
        self.community: Community = make_community(db, org=self.org, name="Tapachula")
        self.other: Community = make_community(db, org=self.org, name="Tijuana")
        self.campaign: Campaign = make_campaign(
            db,
            org=self.org,
            author=self.manager,
            communities=[self.community, self.other],
            kind=CampaignKind.poll,
        )

    def track(self, text: str, community: Community | None = None) -> str:
        return track_links(
            self.db,
            campaign_id=self.campaign.id,
            community_id=(community or self.community).id,
            text=text,
            public_url=PUBLIC,
        )


@pytest.fixture
def setup(db: Session) -> Setup:
    return Setup(db)


def _codes(text: str) -> list[str]:
    return re.findall(r"https://faro\.test/l/([0-9A-Za-z]{8})", text)


def test_urls_become_tracked_links_per_campaign_and_community(setup: Setup) -> None:
    text = (
        "Citas gratis: https://www.gob.mx/inm/citas?x=1. Más (https://comar.gob.mx/a) "
        "y javascript:alert(1) o data:text/html,hola o ftp://files.example.org"
    )
    tracked = setup.track(text)
    codes = _codes(tracked)
    assert len(codes) == 2
    assert tracked.startswith(f"Citas gratis: {PUBLIC}/l/{codes[0]}. Más ({PUBLIC}/l/{codes[1]}) ")
    assert tracked.endswith("y javascript:alert(1) o data:text/html,hola o ftp://files.example.org")
    links = {link.code: link.url for link in setup.db.scalars(select(TrackedLink))}
    assert links == {
        codes[0]: "https://www.gob.mx/inm/citas?x=1",
        codes[1]: "https://comar.gob.mx/a",
    }
    # The same URL again: the same link; another community: its own link.
    assert _codes(setup.track("https://www.gob.mx/inm/citas?x=1")) == codes[:1]
    assert _codes(setup.track("https://www.gob.mx/inm/citas?x=1", setup.other)) != codes[:1]
    # A URL hiding its host behind user@ is not tracked (nor made to look official).
    sneaky = "https://www.gob.mx@evil.example/x"
    assert setup.track(sneaky) == sneaky


def test_redirect_counts_clicks_and_links_are_reported(setup: Setup, client: TestClient) -> None:
    (code,) = _codes(setup.track("Infórmate: https://www.gob.mx/comar"))
    viewer = make_token(setup.db, user=make_user(setup.db, org=setup.org, role=Role.viewer))
    setup.db.commit()

    r = client.get(f"/l/{code}", headers={"User-Agent": IPHONE}, follow_redirects=False)
    assert r.status_code == 302
    assert r.headers["location"] == "https://www.gob.mx/comar"
    client.get(f"/l/{code}", headers={"User-Agent": "WhatsApp/2.23"}, follow_redirects=False)
    families = sorted(setup.db.scalars(select(LinkClick.user_agent_family)))
    assert families == ["ios", "preview"]

    stats = client.get(f"/v1/campaigns/{setup.campaign.id}/links", headers=auth(viewer))
    assert stats.status_code == 200, stats.text
    (row,) = stats.json()
    assert (row["code"], row["url"], row["community_id"]) == (
        code,
        "https://www.gob.mx/comar",
        setup.community.id,
    )
    assert (row["clicks"], row["preview_fetches"]) == (1, 1)


@pytest.mark.parametrize("code", ["AAAAAAAA", "short", "aaaaaaaaaaaa", "..%2F..%2Fv1", "ñññññññ"])
def test_unknown_codes_are_a_404_with_the_standard_body(client: TestClient, code: str) -> None:
    r = client.get(f"/l/{code}", follow_redirects=False)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    assert "location" not in r.headers


def test_a_stored_non_http_url_is_never_redirected_to(setup: Setup, client: TestClient) -> None:
    setup.db.add(
        TrackedLink(
            organization_id=setup.org.id,
            code="Zz9Zz9Zz",
            campaign_id=setup.campaign.id,
            community_id=setup.community.id,
            url="javascript:alert(document.cookie)",
        )
    )
    setup.db.commit()
    r = client.get("/l/Zz9Zz9Zz", follow_redirects=False)
    assert r.status_code == 404 and "location" not in r.headers


# --- test send ---------------------------------------------------------------------------------


def test_test_send_goes_to_an_opted_in_contact_through_the_gateway(
    setup: Setup, client: TestClient, cipher: AddressCipher, jobs: list[Job]
) -> None:
    make_sender(setup.db, org=setup.org, channel="sms", address="+15005550006")
    phone = random_mobile("MX")
    make_contact(setup.db, org=setup.org, cipher=cipher, phone=phone, channel="sms")
    token = make_token(setup.db, user=setup.manager)
    setup.db.commit()

    r = client.post(
        f"/v1/campaigns/{setup.campaign.id}/test-send",
        json={"phone": phone, "channel": "sms", "language": "es"},
        headers=auth(token),
    )
    assert r.status_code == 202, r.text
    message = setup.db.get(Message, r.json()["message_id"])
    assert message is not None
    assert message.purpose == Purpose.test
    assert message.campaign_id == setup.campaign.id
    assert message.body == ("Nadie cobra por una cita migratoria. Denuncia al 089.\n\n1 Sí\n2 No")
    assert [j.task for j in jobs] == ["messages.send"]
    assert jobs[0].args == ([message.id],)


def test_test_send_never_bypasses_consent(
    setup: Setup, client: TestClient, cipher: AddressCipher, jobs: list[Job]
) -> None:
    make_sender(setup.db, org=setup.org, channel="sms", address="+15005550006")
    no_consent = random_mobile("MX")
    opted_out = random_mobile("MX")
    make_contact(
        setup.db, org=setup.org, cipher=cipher, phone=no_consent, channel="sms", consent=None
    )
    make_contact(
        setup.db, org=setup.org, cipher=cipher, phone=opted_out, channel="sms", consent=False
    )
    manager = make_token(setup.db, user=setup.manager)
    viewer = make_token(setup.db, user=make_user(setup.db, org=setup.org, role=Role.viewer))
    setup.db.commit()
    url = f"/v1/campaigns/{setup.campaign.id}/test-send"

    for phone in (no_consent, opted_out, random_mobile("MX")):
        r = client.post(
            url, json={"phone": phone, "channel": "sms", "language": "es"}, headers=auth(manager)
        )
        assert r.status_code == 409, r.text
        assert "opted in" in r.json()["error"]["message"]
    no_content = client.post(
        url, json={"phone": no_consent, "channel": "sms", "language": "ht"}, headers=auth(manager)
    )
    assert no_content.status_code == 422
    forbidden = client.post(
        url, json={"phone": no_consent, "channel": "sms", "language": "es"}, headers=auth(viewer)
    )
    assert forbidden.status_code == 403
    assert jobs == []
    setup.db.expire_all()
    assert setup.db.scalars(select(Message)).all() == []
    assert len(setup.db.scalars(select(Contact)).all()) == 2
