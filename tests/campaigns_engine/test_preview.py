"""Preview: who would receive a campaign, who would not and why, what it costs, what it says."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert
from sqlalchemy.orm import Session

from campaigns.communities import Community
from campaigns.contacts.models import Channel, ConsentState, Contact, ContactCommunity
from campaigns.contacts.service import erase_contact
from campaigns.crypto import AddressCipher
from campaigns.organizations.models import Organization, Role, User
from campaigns.outreach.models import CampaignKind
from campaigns.outreach.preview import preview_campaign
from campaigns.outreach.validation import ContentInput
from tests.campaigns_engine.factories import NOW, SID, make_campaign, make_place
from tests.factories import make_contact, make_organization, make_user

QUESTION_ES = "¿Te pidieron dinero por una cita migratoria?"
QUESTION_HT = "Eske yo te mande w lajan pou yon randevou imigrasyon?"


@pytest.fixture
def org(db: Session) -> Organization:
    return make_organization(db)


@pytest.fixture
def author(db: Session, org: Organization) -> User:
    return make_user(db, org=org, role=Role.manager)


@pytest.fixture
def tapachula(db: Session, org: Organization) -> Community:
    return make_place(db, org=org, name="Tapachula", timezone="America/Mexico_City")


@pytest.fixture
def haiti(db: Session, org: Organization) -> Community:
    return make_place(
        db, org=org, name="Puerto Príncipe", timezone="America/Port-au-Prince", language="ht"
    )


def contacts(
    db: Session,
    org: Organization,
    cipher: AddressCipher,
    n: int,
    *,
    where: list[Community],
    channel: str = "whatsapp",
    language: str = "es",
    consent: bool | None = True,
    wrote_hours_ago: float | None = None,
) -> list[Contact]:
    made = []
    for _ in range(n):
        c = make_contact(
            db,
            org=org,
            cipher=cipher,
            channel=channel,
            communities=where,
            language=language,
            consent=consent,
        )
        if wrote_hours_ago is not None:
            c.last_inbound_at = NOW - dt.timedelta(hours=wrote_hours_ago)
        made.append(c)
    db.flush()
    return made


def test_recipients_exclusions_segments_and_cost(
    db: Session,
    org: Organization,
    author: User,
    cipher: AddressCipher,
    tapachula: Community,
    haiti: Community,
) -> None:
    campaign = make_campaign(
        db,
        org=org,
        author=author,
        communities=[tapachula, haiti],
        kind=CampaignKind.poll,
        contents=[
            ContentInput(
                language="es",
                sms_text=QUESTION_ES,
                whatsapp_content_sid=SID,
                whatsapp_variables={"1": "cita"},
                whatsapp_text="¿Te pidieron dinero por una {{1}}?",
            ),
            ContentInput(language="ht", sms_text=QUESTION_HT),
        ],
    )
    # Tapachula
    contacts(db, org, cipher, 3, where=[tapachula])  # template (outside the window)
    contacts(db, org, cipher, 2, where=[tapachula], channel="sms")
    contacts(db, org, cipher, 1, where=[tapachula], consent=False)
    contacts(db, org, cipher, 2, where=[tapachula], consent=None)
    [gone] = contacts(db, org, cipher, 1, where=[tapachula])
    erase_contact(db, contact=gone)
    contacts(db, org, cipher, 1, where=[tapachula], channel="sms", language="en")  # fallback es
    # Port-au-Prince
    contacts(db, org, cipher, 2, where=[haiti], language="ht", wrote_hours_ago=1)  # free text
    contacts(db, org, cipher, 2, where=[haiti], language="ht", wrote_hours_ago=30)  # es template
    contacts(db, org, cipher, 1, where=[haiti], channel="sms", language="ht")
    # In both: counted in each community, once in distinct_recipients.
    contacts(db, org, cipher, 1, where=[tapachula, haiti], channel="sms")
    # Another organization's contacts never count.
    other = make_organization(db)
    other_place = make_place(db, org=other, name="Tapachula", timezone="America/Mexico_City")
    contacts(db, other, cipher, 3, where=[other_place])

    result = preview_campaign(db, campaign.id, now=NOW, price_per_segment=Decimal("0.05"))
    by_name = {c.name: c for c in result.communities}
    t, h = by_name["Tapachula"], by_name["Puerto Príncipe"]
    assert t.by_language == {"es": {"whatsapp": 3, "sms": 4}}
    assert t.recipients == 7
    assert t.excluded == {
        "opted_out": 1,
        "erased": 1,
        "no_consent": 2,
        "no_content_for_language": 0,
        "outside_whatsapp_window_no_template": 0,
    }
    assert h.by_language == {"ht": {"whatsapp": 2, "sms": 1}, "es": {"whatsapp": 2, "sms": 1}}
    assert h.recipients == 6
    assert sum(h.excluded.values()) == 0
    assert result.recipients == 13
    assert result.distinct_recipients == 12
    assert result.excluded["no_consent"] == 2

    # Both questions fit one GSM-7/UCS-2 segment with the options appended.
    assert t.sms_segments == 4 and h.sms_segments == 2
    assert t.estimated_cost == Decimal("0.20") and h.estimated_cost == Decimal("0.10")
    assert result.estimated_cost == Decimal("0.30")

    messages = {m.language: m for m in result.messages}
    assert messages["es"].sms_text == f"{QUESTION_ES}\n\n1 Sí\n2 No"
    assert messages["ht"].sms_text == f"{QUESTION_HT}\n\n1 Wi\n2 Non"
    assert messages["es"].whatsapp_text == "¿Te pidieron dinero por una cita?\n\n1 Sí\n2 No"
    assert messages["es"].whatsapp_content_sid == SID
    assert messages["ht"].whatsapp_text == f"{QUESTION_HT}\n\n1 Wi\n2 Non"
    assert messages["es"].sms_segments == 1


def test_content_reasons_and_the_whatsapp_window(
    db: Session, org: Organization, author: User, cipher: AddressCipher, tapachula: Community
) -> None:
    text_only = make_campaign(
        db,
        org=org,
        author=author,
        communities=[tapachula],
        contents=[ContentInput(language="es", sms_text="Aviso importante")],
    )
    contacts(db, org, cipher, 2, where=[tapachula], wrote_hours_ago=2)
    contacts(db, org, cipher, 3, where=[tapachula], wrote_hours_ago=25)
    contacts(db, org, cipher, 1, where=[tapachula])  # never wrote
    contacts(db, org, cipher, 4, where=[tapachula], channel="sms")
    [t] = preview_campaign(db, text_only.id, now=NOW).communities
    assert t.by_language == {"es": {"whatsapp": 2, "sms": 4}}
    assert t.excluded["outside_whatsapp_window_no_template"] == 4
    assert t.estimated_cost is None  # no price, no estimate

    template_only = make_campaign(
        db,
        org=org,
        author=author,
        communities=[tapachula],
        contents=[ContentInput(language="es", whatsapp_content_sid=SID)],
    )
    [t] = preview_campaign(db, template_only.id, now=NOW).communities
    assert t.by_language == {"es": {"whatsapp": 6}}
    assert t.excluded["no_content_for_language"] == 4  # SMS contacts: nothing to send them


def test_language_without_content_and_no_fallback_content(
    db: Session, org: Organization, author: User, cipher: AddressCipher, haiti: Community
) -> None:
    campaign = make_campaign(
        db,
        org=org,
        author=author,
        communities=[haiti],
        fallback_language="fr",
        contents=[ContentInput(language="fr", whatsapp_content_sid=SID)],
    )
    contacts(db, org, cipher, 2, where=[haiti], channel="sms", language="ht")
    contacts(db, org, cipher, 1, where=[haiti], language="ht")
    [h] = preview_campaign(db, campaign.id, now=NOW).communities
    assert h.excluded["no_content_for_language"] == 2
    assert h.by_language == {"fr": {"whatsapp": 1}}


def test_filters_narrow_the_audience(
    db: Session,
    org: Organization,
    author: User,
    cipher: AddressCipher,
    tapachula: Community,
    haiti: Community,
) -> None:
    campaign = make_campaign(
        db,
        org=org,
        author=author,
        communities=[tapachula, haiti],
        filters={"languages": ["ht"], "channels": ["sms"]},
        contents=[
            ContentInput(language="es", sms_text="Hola"),
            ContentInput(language="ht", sms_text="Bonjou"),
        ],
    )
    contacts(db, org, cipher, 2, where=[tapachula], channel="sms")
    contacts(db, org, cipher, 2, where=[haiti], language="ht")
    contacts(db, org, cipher, 3, where=[haiti], language="ht", channel="sms")
    contacts(db, org, cipher, 1, where=[haiti], language="ht", channel="sms", consent=False)
    result = preview_campaign(db, campaign.id, now=NOW)
    assert result.recipients == 3
    assert result.excluded["opted_out"] == 1
    assert {c.name: c.recipients for c in result.communities} == {
        "Tapachula": 0,
        "Puerto Príncipe": 3,
    }


# --- the number of statements does not grow with the number of contacts ------------------------


def _bulk_contacts(db: Session, org: Organization, community: Community, n: int) -> None:
    """Contacts written set-based (thousands of them through the service would be slow)."""
    rows: list[dict[str, Any]] = [
        {
            "organization_id": org.id,
            "channel": Channel.sms if i % 3 == 0 else Channel.whatsapp,
            "address_hash": uuid.uuid4().hex,
            "country": "MX",
            "language": ("es", "ht", "en", "fr")[i % 4],
            "consent": (ConsentState.opted_in, ConsentState.opted_out, ConsentState.unknown)[
                i % 5 % 3
            ],
            "last_inbound_at": NOW - dt.timedelta(hours=i % 48),
            "is_simulated": False,
            "erased": i % 17 == 0,
            "created_at": NOW,
            "updated_at": NOW,
        }
        for i in range(n)
    ]
    ids = db.scalars(insert(Contact).returning(Contact.id), rows).all()
    db.execute(
        insert(ContactCommunity),
        [{"contact_id": i, "community_id": community.id, "joined_at": NOW} for i in ids],
    )


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    yield seen
    event.remove(engine, "before_cursor_execute", count)


def test_preview_runs_the_same_few_queries_for_20_or_2000_contacts(
    db: Session, org: Organization, author: User, statements: list[str]
) -> None:
    counts = []
    for n in (20, 2000):
        place = make_place(db, org=org, name=f"Lugar {n}", timezone="America/Mexico_City")
        campaign = make_campaign(
            db,
            org=org,
            author=author,
            communities=[place],
            kind=CampaignKind.poll,
            contents=[
                ContentInput(language="es", sms_text="¿Sí o no?", whatsapp_content_sid=SID),
                ContentInput(language="ht", sms_text="Wi oswa non?"),
            ],
        )
        _bulk_contacts(db, org, place, n)
        db.flush()
        statements.clear()
        result = preview_campaign(db, campaign.id, now=NOW, price_per_segment=Decimal("0.01"))
        counts.append(len(statements))
        excluded = sum(result.excluded.values())
        assert result.recipients + excluded == n
        assert result.recipients > 0 and excluded > 0
    assert counts[0] == counts[1]
    assert counts[1] <= 8, statements
