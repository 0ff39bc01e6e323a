"""The contact import on SQLite (the embedded default) gives the same result as on PostgreSQL."""

from __future__ import annotations

import io
from pathlib import Path

from sqlalchemy import func, select

from campaigns.communities import create_community
from campaigns.contacts.importer import import_contacts
from campaigns.contacts.models import ConsentState, Contact, ContactCommunity
from campaigns.contacts.service import create_contact
from campaigns.crypto import AddressCipher
from campaigns.db import make_engine, make_sessionmaker
from campaigns.embedded import upgrade_database
from campaigns.organizations.service import create_organization
from campaigns.settings import Settings
from tests.factories import random_mobile


def test_sqlite_import_merges_and_respects_stops(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'import.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    cipher = AddressCipher.from_settings(Settings(env="test"))
    stopped, fresh = random_mobile("GT"), random_mobile("HN")
    with make_sessionmaker(engine)() as session, session.begin():
        org = create_organization(session, name="SQLite org", country="GT")
        community = create_community(
            session,
            organization_id=org.id,
            name="Xela",
            country="GT",
            timezone="America/Guatemala",
            default_language="es",
        )
        create_contact(
            session,
            cipher=cipher,
            organization_id=org.id,
            channel="whatsapp",
            phone=stopped,
            consent=False,
        )
        csv = (
            f"phone,language,community,consent\n{stopped},en,Xela,yes\n{fresh},,Xela,yes\n"
            f"{fresh},fr,,\nnope,,,\n"
        )
        report = import_contacts(
            session, cipher=cipher, organization_id=org.id, stream=io.BytesIO(csv.encode())
        )
        assert (report.created, report.merged, report.rejected) == (1, 2, 1)
        assert (report.kept_opted_out, report.opted_in) == (1, 1)
        rows = {
            cipher.decrypt(c.address_ciphertext or b""): c for c in session.scalars(select(Contact))
        }
        assert rows[stopped].consent == ConsentState.opted_out and rows[stopped].language == "en"
        assert rows[fresh].consent == ConsentState.opted_in and rows[fresh].language == "fr"
        members = session.scalar(
            select(func.count())
            .select_from(ContactCommunity)
            .where(ContactCommunity.community_id == community.id)
        )
        assert members == 2
    engine.dispose()
