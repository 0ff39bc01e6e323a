"""Organization scoping: a user of organization B walks every /v1 route against A's objects.

The route table is read from the app itself, so a new route without an entry here fails this
test until someone says how to attack it.
"""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.assistant.models import Handover
from campaigns.communities import Community
from campaigns.contacts.models import Contact, ContactCommunity
from campaigns.crypto import AddressCipher
from campaigns.knowledge.models import Hotline, InfoHub, KnowledgeEntry, KnowledgeRevision
from campaigns.messaging.models import Sender
from campaigns.messaging.senders import create_sender
from campaigns.organizations.models import ApiToken, Organization, Role, User
from campaigns.outreach import lifecycle
from campaigns.outreach.models import (
    Campaign,
    CampaignCommunity,
    CampaignContent,
    CampaignKind,
    CampaignRun,
    PollOption,
)
from tests.campaigns_engine.factories import NOW, approved, make_campaign
from tests.factories import (
    auth,
    make_community,
    make_contact,
    make_organization,
    make_token,
    make_user,
    random_mobile,
)
from tests.knowledge.factories import NAMES, make_entry, make_hotline, make_hub

# (method, path) -> request keyword arguments, with {placeholders} filled from A's objects.
ATTACKS: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/v1/organizations"): {},
    ("POST", "/v1/organizations"): {
        "json": {"name": "Hijack", "country": "MX", "admin_email": "x@hijack.example"}
    },
    ("GET", "/v1/organizations/{organization_id}"): {},
    ("PATCH", "/v1/organizations/{organization_id}"): {"json": {"name": "Renamed by B"}},
    ("GET", "/v1/users/me"): {},
    ("GET", "/v1/users"): {},
    ("POST", "/v1/users"): {"json": {"email": "new@b.example", "role": "viewer"}},
    ("GET", "/v1/users/{user_id}"): {},
    ("PATCH", "/v1/users/{user_id}"): {"json": {"role": "viewer", "is_active": False}},
    ("GET", "/v1/tokens"): {},
    ("POST", "/v1/tokens"): {"json": {"user_id": "{user_id}"}},
    ("DELETE", "/v1/tokens/{token_id}"): {},
    ("GET", "/v1/communities"): {},
    ("POST", "/v1/communities"): {
        "json": {
            "name": "{community_name}",
            "country": "MX",
            "timezone": "America/Mexico_City",
            "default_language": "es",
        }
    },
    ("GET", "/v1/communities/{community_id}"): {},
    ("PATCH", "/v1/communities/{community_id}"): {"json": {"name": "Renamed by B"}},
    ("GET", "/v1/contacts"): {"params": {"community_id": "{community_id}"}},
    ("POST", "/v1/contacts"): {
        "json": {"phone": "{new_phone}", "community_ids": ["{community_id}"]}
    },
    ("POST", "/v1/contacts/lookup"): {"json": {"phone": "{phone}"}},
    ("POST", "/v1/contacts/import"): {
        "params": {"community_id": "{community_id}"},
        "content": "phone\n{new_phone}\n",
        "headers": {"Content-Type": "text/csv"},
    },
    ("GET", "/v1/contacts/{contact_id}"): {},
    ("PATCH", "/v1/contacts/{contact_id}"): {"json": {"language": "en"}},
    ("POST", "/v1/contacts/{contact_id}/erase"): {},
    ("POST", "/v1/contacts/{contact_id}/reveal"): {},
    ("GET", "/v1/audit-events"): {},
    ("POST", "/v1/messages/segments"): {"json": {"text": "hola"}},
    ("POST", "/v1/assistant/parse"): {"json": {"text": "visa canada"}},
    ("GET", "/v1/handovers"): {},
    ("GET", "/v1/handovers/{handover_id}"): {},
    ("POST", "/v1/handovers/{handover_id}/messages"): {"json": {"text": "hola"}},
    ("POST", "/v1/handovers/{handover_id}/close"): {},
    ("GET", "/v1/senders"): {},
    ("POST", "/v1/senders"): {"json": {"channel": "whatsapp", "address": "{sender_address}"}},
    ("GET", "/v1/senders/{sender_id}"): {},
    ("PATCH", "/v1/senders/{sender_id}"): {"json": {"rate_per_second": 1}},
    ("GET", "/v1/knowledge"): {"params": {"topic": "asylum_protection"}},
    ("POST", "/v1/knowledge"): {
        "json": {
            "topic": "asylum_protection",
            "language": "es",
            "body": "Respuesta de Bravo",
            "source_url": "https://www.gob.mx/comar",
            "reviewed_on": "2026-11-01",
        }
    },
    ("GET", "/v1/knowledge/{entry_id}"): {},
    ("PATCH", "/v1/knowledge/{entry_id}"): {"json": {"body": "Changed by B"}},
    ("DELETE", "/v1/knowledge/{entry_id}"): {},
    ("GET", "/v1/knowledge/{entry_id}/history"): {},
    ("GET", "/v1/hotlines"): {"params": {"country": "MX"}},
    ("POST", "/v1/hotlines"): {
        "json": {
            "country": "MX",
            "number": "{hotline_number}",
            "names": NAMES,
            "topics": ["human_trafficking"],
            "source_url": "https://www.gob.mx/comar",
            "reviewed_on": "2026-11-01",
        }
    },
    ("GET", "/v1/hotlines/{hotline_id}"): {},
    ("PATCH", "/v1/hotlines/{hotline_id}"): {"json": {"number": "911"}},
    ("DELETE", "/v1/hotlines/{hotline_id}"): {},
    ("GET", "/v1/info-hubs"): {"params": {"community_id": "{community_id}"}},
    ("POST", "/v1/info-hubs"): {
        "json": {"community_id": "{community_id}", "name": "Hub de Bravo", "address": "Calle 1"}
    },
    ("GET", "/v1/info-hubs/{hub_id}"): {},
    ("PATCH", "/v1/info-hubs/{hub_id}"): {"json": {"name": "Renamed by B"}},
    ("DELETE", "/v1/info-hubs/{hub_id}"): {},
    ("GET", "/v1/campaigns"): {},
    ("POST", "/v1/campaigns"): {
        "json": {
            "name": "Hijack",
            "topic": "scams_fraud",
            "kind": "announcement",
            "community_ids": ["{community_id}"],
        }
    },
    ("GET", "/v1/campaigns/{campaign_id}"): {},
    ("PATCH", "/v1/campaigns/{campaign_id}"): {"json": {"name": "Renamed by B"}},
    ("DELETE", "/v1/campaigns/{campaign_id}"): {},
    ("GET", "/v1/campaigns/{campaign_id}/content"): {},
    ("PUT", "/v1/campaigns/{campaign_id}/content"): {
        "json": [{"language": "es", "sms_text": "Changed by B"}]
    },
    ("GET", "/v1/campaigns/{campaign_id}/options"): {},
    ("PUT", "/v1/campaigns/{campaign_id}/options"): {
        "json": [{"number": 1, "labels": {"es": "B"}}, {"number": 2, "labels": {"es": "C"}}]
    },
    ("GET", "/v1/campaigns/{campaign_id}/targets"): {},
    ("PUT", "/v1/campaigns/{campaign_id}/targets"): {"json": {"community_ids": []}},
    ("POST", "/v1/campaigns/{campaign_id}/submit"): {},
    ("POST", "/v1/campaigns/{campaign_id}/approve"): {},
    ("POST", "/v1/campaigns/{campaign_id}/schedule"): {},
    ("POST", "/v1/campaigns/{campaign_id}/pause"): {},
    ("POST", "/v1/campaigns/{campaign_id}/resume"): {},
    ("POST", "/v1/campaigns/{campaign_id}/cancel"): {},
    ("GET", "/v1/campaigns/{campaign_id}/runs"): {},
    ("GET", "/v1/campaigns/{campaign_id}/preview"): {},
    ("GET", "/v1/campaigns/{campaign_id}/schedule-preview"): {},
    ("GET", "/v1/campaigns/{campaign_id}/poll-results"): {},
    ("GET", "/v1/campaigns/{campaign_id}/links"): {},
    ("POST", "/v1/campaigns/{campaign_id}/test-send"): {
        "json": {"phone": "{phone}", "channel": "whatsapp", "language": "es"}
    },
    ("GET", "/v1/analytics/overview"): {"params": {"community_id": "{community_id}"}},
    ("GET", "/v1/analytics/campaigns"): {"params": {"campaign_id": "{campaign_id}"}},
    ("GET", "/v1/analytics/campaigns/failures"): {"params": {"campaign_id": "{campaign_id}"}},
    ("GET", "/v1/analytics/communities"): {"params": {"community_id": "{community_id}"}},
    ("GET", "/v1/analytics/topics"): {"params": {"community_id": "{community_id}"}},
    ("GET", "/v1/analytics/polls"): {"params": {"campaign_id": "{campaign_id}"}},
    ("GET", "/v1/analytics/unanswered"): {"params": {"community_id": "{community_id}"}},
    ("GET", "/v1/analytics/alerts"): {"params": {"community_id": "{community_id}"}},
    ("GET", "/v1/analytics/stale-knowledge"): {},
    ("GET", "/v1/analytics/feedback"): {"params": {"community_id": "{community_id}"}},
}


def _fill(value: Any, ids: dict[str, Any]) -> Any:
    if isinstance(value, str):
        if value.startswith("{") and value.endswith("}") and value[1:-1] in ids:
            return ids[value[1:-1]]
        return value.format(**ids)
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    return value


def _snapshot(db: Session, org_id: int) -> list[Any]:
    db.expire_all()
    rows: list[Any] = []
    for model in (
        Organization,
        User,
        ApiToken,
        Community,
        Contact,
        Sender,
        KnowledgeEntry,
        KnowledgeRevision,
        Hotline,
        InfoHub,
        Campaign,
        CampaignRun,
    ):
        stmt = select(model)
        if model is Organization:
            stmt = stmt.where(Organization.id == org_id)
        else:
            stmt = stmt.where(model.organization_id == org_id)  # type: ignore[union-attr]
        for obj in db.scalars(stmt):
            rows.append(
                (
                    model.__name__,
                    {c.key: getattr(obj, c.key) for c in model.__mapper__.column_attrs},
                )
            )
    rows.append(
        sorted(db.execute(select(ContactCommunity.contact_id, ContactCommunity.community_id)).all())
    )
    for child in (CampaignCommunity, CampaignContent, PollOption):
        rows.append(
            sorted(
                tuple(getattr(obj, c.key) for c in child.__mapper__.column_attrs)
                for obj in db.scalars(select(child))
            )
        )
    return rows


def test_every_route_is_covered() -> None:
    from api.app import create_app
    from campaigns.settings import Settings

    app = create_app(Settings(env="test", database_url="sqlite://"))
    routes = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/v1")
        for method in operations
    }
    assert routes == set(ATTACKS), "add new routes to ATTACKS (and keep them scoped)"


def test_another_organization_can_neither_see_nor_change_anything(
    client: TestClient, db: Session, cipher: AddressCipher
) -> None:
    org_a = make_organization(db, name="Organización Alfa")
    admin_a = make_user(db, org=org_a, role=Role.admin)
    make_token(db, user=admin_a)
    token_a = db.scalars(select(ApiToken).where(ApiToken.user_id == admin_a.id)).one()
    community_a = make_community(db, org=org_a, name="Pueblo Zeta")
    sender_a = create_sender(
        db, organization_id=org_a.id, channel="whatsapp", address="+14155238886"
    )
    phone_a = random_mobile()
    contact_a = make_contact(db, org=org_a, cipher=cipher, phone=phone_a, communities=[community_a])
    entry_a = make_entry(db, org=org_a, body="Respuesta reservada de Alfa")
    hotline_a = make_hotline(db, org=org_a)
    hub_a = make_hub(db, community=community_a, name="Punto reservado de Alfa")

    handover_a = Handover(organization_id=org_a.id, contact_id=contact_a.id, language="es")
    db.add(handover_a)
    db.flush()
    campaign_a = make_campaign(
        db,
        org=org_a,
        author=admin_a,
        communities=[community_a],
        kind=CampaignKind.poll,
        name="Encuesta reservada de Alfa",
    )
    approved(db, campaign_a, org=org_a)
    lifecycle.schedule_campaign(db, campaign_a.id, now=NOW)

    org_b = make_organization(db, name="Bravo")
    token_b = make_token(db, user=make_user(db, org=org_b, role=Role.admin))
    db.commit()
    before = _snapshot(db, org_a.id)

    ids = {
        "organization_id": org_a.id,
        "user_id": admin_a.id,
        "token_id": token_a.id,
        "community_id": community_a.id,
        "community_name": community_a.name,
        "contact_id": contact_a.id,
        "handover_id": handover_a.id,
        "sender_id": sender_a.id,
        "sender_address": sender_a.address,
        "entry_id": entry_a.id,
        "hotline_id": hotline_a.id,
        "hotline_number": hotline_a.number,
        "hub_id": hub_a.id,
        "campaign_id": campaign_a.id,
        "phone": phone_a,
        "new_phone": random_mobile(),
    }
    # (B may name a community like A's: names are unique per organization only.)
    secrets_of_a = [
        org_a.name,
        admin_a.email,
        phone_a,
        token_a.prefix,
        entry_a.body,
        hub_a.name,
        campaign_a.name,
    ]
    for (method, path), kwargs in ATTACKS.items():
        request = _fill(kwargs, ids)
        headers = {**auth(token_b), **request.pop("headers", {})}
        r = client.request(method, path.format(**ids), headers=headers, **request)
        where = f"{method} {path} -> {r.status_code} {r.text[:200]}"
        assert r.status_code < 500, where
        if "{" in path:
            assert r.status_code in (403, 404), where
        else:
            for secret in secrets_of_a:
                assert secret not in r.text, where

    listed = client.get("/v1/contacts", headers=auth(token_b)).json()["items"]
    assert contact_a.id not in [c["id"] for c in listed]
    communities = client.get("/v1/communities", headers=auth(token_b)).json()
    assert community_a.id not in [c["id"] for c in communities]
    assert _snapshot(db, org_a.id) == before
