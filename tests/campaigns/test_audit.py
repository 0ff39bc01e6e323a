"""Every write through the API or CLI leaves an audit event naming who, what and when."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.audit import AuditEvent
from tests.factories import auth, make_organization, make_token, make_user, random_mobile


def test_api_writes_are_audited_without_personal_data(client: TestClient, db: Session) -> None:
    org = make_organization(db)
    admin = make_user(db, org=org)
    token = make_token(db, user=admin)
    db.commit()
    phone = random_mobile()
    community = client.post(
        "/v1/communities",
        json={
            "name": "Tenosique",
            "country": "MX",
            "timezone": "America/Mexico_City",
            "default_language": "es",
        },
        headers=auth(token),
    ).json()
    client.patch(
        f"/v1/communities/{community['id']}", json={"region": "Tabasco"}, headers=auth(token)
    )
    contact = client.post("/v1/contacts", json={"phone": phone}, headers=auth(token)).json()
    client.post(f"/v1/contacts/{contact['id']}/erase", headers=auth(token))

    events = db.scalars(
        select(AuditEvent).where(AuditEvent.organization_id == org.id).order_by(AuditEvent.id)
    ).all()
    actions = [e.action for e in events]
    assert "community.create" in actions and "community.update" in actions
    assert "contact.create" in actions
    update = next(e for e in events if e.action == "community.update")
    assert update.before == {"region": ""} and update.after == {"region": "Tabasco"}
    assert all(e.actor_user_id == admin.id and e.via == "api" and e.request_id for e in events)
    erased = [
        e for e in events if e.action == "contact.update" and e.after and e.after.get("erased")
    ]
    assert erased and erased[0].after is not None
    assert erased[0].after["address_ciphertext"] is None
    assert erased[0].before is not None and erased[0].before["address_ciphertext"] == "<personal>"
    text = " ".join(str((e.before, e.after)) for e in events)
    assert phone not in text and phone[1:] not in text


def test_reads_are_not_audited_but_token_use_is_not_noise(client: TestClient, db: Session) -> None:
    org = make_organization(db)
    token = make_token(db, user=make_user(db, org=org))
    db.commit()
    before = len(db.scalars(select(AuditEvent)).all())
    for _ in range(3):
        client.get("/v1/communities", headers=auth(token))
    assert len(db.scalars(select(AuditEvent)).all()) == before
