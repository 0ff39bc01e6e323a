"""The demo: sample organizations, communities across the region and simulated contacts,
loaded from ``data/demo/``, with the knowledge base of ``data/knowledge/`` and fictional example
information hubs for each organization.  Idempotent: running it twice changes nothing the
second time.

Demo contacts are ``is_simulated``: they live in the simulator and are never sent to Twilio.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.communities import Community, create_community
from campaigns.contacts.models import Contact
from campaigns.contacts.service import create_contact
from campaigns.crypto import AddressCipher
from campaigns.knowledge.seed import seed_info_hubs, seed_knowledge
from campaigns.organizations.models import Organization, Role, User
from campaigns.organizations.service import (
    create_organization,
    create_user,
    hash_password,
    issue_token,
)
from campaigns.simulator import ensure_demo_senders

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "demo"


@dataclass
class SeedResult:
    organizations: int = 0
    communities: int = 0
    users: int = 0
    contacts: int = 0
    admin_token: str | None = None
    admin_login: tuple[str, str] | None = None  # (email, password) for the dashboard


def _time(value: str | None) -> dt.time | None:
    return dt.time.fromisoformat(value) if value else None


def seed(session: Session, *, cipher: AddressCipher, data_dir: Path = DATA_DIR) -> SeedResult:
    """Load the demo.  Returns a fresh admin token for the first organization."""
    result = SeedResult()
    orgs = json.loads((data_dir / "organizations.json").read_text(encoding="utf-8"))
    by_name: dict[str, Organization] = {}
    first_admin: User | None = None
    for spec in orgs:
        org = session.scalar(select(Organization).where(Organization.name == spec["name"]))
        if org is None:
            org = create_organization(
                session, name=spec["name"], country=spec["country"], kind=spec["kind"]
            )
            result.organizations += 1
        by_name[org.name] = org
        ensure_demo_senders(session, org.id)
        people = [{"email": spec["admin_email"], "name": "Admin demo", "role": "admin"}]
        for person in people + spec.get("users", []):
            user = session.scalar(select(User).where(User.email == person["email"]))
            if user is None:
                user = create_user(
                    session,
                    organization_id=org.id,
                    email=person["email"],
                    name=person["name"],
                    role=Role(person["role"]),
                )
                result.users += 1
            if first_admin is None and user.role == Role.admin:
                first_admin = user
        for c in spec["communities"]:
            exists = session.scalar(
                select(Community.id).where(
                    Community.organization_id == org.id, Community.name == c["name"]
                )
            )
            if exists is None:
                create_community(
                    session,
                    organization_id=org.id,
                    name=c["name"],
                    country=c["country"],
                    region=c.get("region", ""),
                    municipality=c.get("municipality", ""),
                    timezone=c["timezone"],
                    default_language=c["default_language"],
                    quiet_start=_time(c.get("quiet_start")),
                    quiet_end=_time(c.get("quiet_end")),
                )
                result.communities += 1
        seed_knowledge(session, organization_id=org.id)
        seed_info_hubs(session, organization_id=org.id, path=data_dir / "info_hubs.json")
    with (data_dir / "contacts.csv").open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            org = by_name[row["organization"]]
            community_id = session.scalar(
                select(Community.id).where(
                    Community.organization_id == org.id, Community.name == row["community"]
                )
            )
            known = session.scalar(
                select(Contact.id).where(
                    Contact.organization_id == org.id,
                    Contact.address_hash == cipher.lookup_hash(row["channel"], row["phone"]),
                )
            )
            if known is not None:
                continue
            create_contact(
                session,
                cipher=cipher,
                organization_id=org.id,
                channel=row["channel"],
                phone=row["phone"],
                language=row["language"],
                community_ids=[community_id] if community_id else [],
                consent=row["consent"] == "yes",
                is_simulated=True,
            )
            result.contacts += 1
    if first_admin is not None:
        _, result.admin_token = issue_token(session, user=first_admin, name="demo", days=30)
        # A fresh dashboard password on every seed, like the token: the demo has no fixed secret.
        password = secrets.token_urlsafe(12)
        first_admin.password_hash = hash_password(password)
        result.admin_login = (first_admin.email, password)
    return result
