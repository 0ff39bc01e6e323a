"""Contacts through the JSON API: numbers protected, filters, pagination, erase, reveal."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.audit import AuditEvent
from campaigns.contacts.models import Contact
from campaigns.crypto import AddressCipher
from campaigns.messaging.models import Direction, Message, MessageStatus
from campaigns.organizations.models import Role
from tests.factories import (
    auth,
    make_community,
    make_contact,
    make_organization,
    make_token,
    make_user,
    random_mobile,
)


def _admin(db: Session) -> tuple[int, str]:
    org = make_organization(db)
    token = make_token(db, user=make_user(db, org=org, role=Role.admin))
    db.commit()
    return org.id, token


def test_create_stores_number_encrypted_and_never_returns_it(
    client: TestClient, db: Session, cipher: AddressCipher
) -> None:
    _, token = _admin(db)
    phone = random_mobile("GT")
    r = client.post("/v1/contacts", json={"phone": phone, "consent": True}, headers=auth(token))
    assert r.status_code == 201, r.text
    body = r.json()
    assert phone not in r.text and phone[1:] not in r.text
    assert body["country"] == "GT" and body["language"] == "es" and body["consent"] == "opted_in"
    row = db.get(Contact, body["id"])
    assert row is not None and row.address_ciphertext is not None
    assert phone.encode() not in row.address_ciphertext
    assert cipher.decrypt(row.address_ciphertext) == phone
    assert row.address_hash == cipher.lookup_hash("whatsapp", phone)


def test_mexican_whatsapp_521_prefix_is_the_same_contact(client: TestClient, db: Session) -> None:
    _, token = _admin(db)
    r = client.post("/v1/contacts", json={"phone": "+5215512345678"}, headers=auth(token))
    assert r.status_code == 201
    again = client.post("/v1/contacts", json={"phone": "+52 55 1234 5678"}, headers=auth(token))
    assert again.status_code == 409
    assert again.json()["error"]["field"] == "phone"


def test_language_defaults_from_country_of_the_number(client: TestClient, db: Session) -> None:
    _, token = _admin(db)
    r = client.post("/v1/contacts", json={"phone": random_mobile("HT")}, headers=auth(token))
    assert r.json()["language"] == "ht"


def test_bad_numbers_are_rejected_naming_the_field(client: TestClient, db: Session) -> None:
    _, token = _admin(db)
    for phone, words in [
        ("hello", "not a phone number"),
        ("+52 55", "not a valid phone number"),
        ("+1 800 555 0100", "not a mobile"),  # toll-free
        ("+502 2245 6789", "not a mobile"),  # Guatemala City fixed line
        ("+" + "5" * 40, "at most 40 characters"),
    ]:
        r = client.post("/v1/contacts", json={"phone": phone}, headers=auth(token))
        assert r.status_code == 422, (phone, r.text)
        assert r.json()["error"]["field"] == "phone"
        assert words in r.json()["error"]["message"], r.json()
    assert db.scalars(select(Contact)).all() == []


def test_unknown_language_channel_and_community_are_4xx(client: TestClient, db: Session) -> None:
    _, token = _admin(db)
    phone = random_mobile()
    cases = [
        ({"phone": phone, "language": "pt"}, "language"),
        ({"phone": phone, "channel": "telegram"}, "channel"),
        ({"phone": phone, "community_ids": [999999]}, "community_ids"),
        ({"phone": phone, "nickname": "x"}, "nickname"),
    ]
    for body, field in cases:
        r = client.post("/v1/contacts", json=body, headers=auth(token))
        assert r.status_code == 422, r.text
        assert r.json()["error"]["field"] == field


def test_list_filters_and_cursor_pagination_walk_every_contact_once(
    client: TestClient, db: Session, cipher: AddressCipher
) -> None:
    org = make_organization(db)
    token = make_token(db, user=make_user(db, org=org, role=Role.manager))
    north = make_community(db, org=org)
    south = make_community(db, org=org)
    made = [
        make_contact(db, org=org, cipher=cipher, communities=[north if i % 2 else south])
        for i in range(23)
    ]
    make_contact(db, org=org, cipher=cipher, language="ht", communities=[north])
    db.commit()

    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 5}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/contacts", params=params, headers=auth(token)).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted([c.id for c in made] + [seen[-1]]) and len(set(seen)) == 24

    only_north = client.get(
        "/v1/contacts", params={"community_id": north.id, "limit": 100}, headers=auth(token)
    ).json()["items"]
    assert len(only_north) == 12 and all(north.id in c["community_ids"] for c in only_north)
    creole = client.get("/v1/contacts", params={"language": "ht"}, headers=auth(token)).json()
    assert [c["language"] for c in creole["items"]] == ["ht"]


def test_page_size_and_cursor_are_checked(client: TestClient, db: Session) -> None:
    _, token = _admin(db)
    big = client.get("/v1/contacts", params={"limit": 100000}, headers=auth(token))
    assert big.status_code == 422 and big.json()["error"]["field"] == "limit"
    bad = client.get("/v1/contacts", params={"cursor": "%%%"}, headers=auth(token))
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "cursor"


def test_update_language_and_communities(
    client: TestClient, db: Session, cipher: AddressCipher
) -> None:
    org = make_organization(db)
    token = make_token(db, user=make_user(db, org=org))
    a, b = make_community(db, org=org), make_community(db, org=org)
    contact = make_contact(db, org=org, cipher=cipher, communities=[a])
    db.commit()
    r = client.patch(
        f"/v1/contacts/{contact.id}",
        json={"language": "fr", "community_ids": [b.id]},
        headers=auth(token),
    )
    assert r.status_code == 200, r.text
    assert r.json()["language"] == "fr" and r.json()["community_ids"] == [b.id]


def test_erase_removes_number_and_message_bodies_but_keeps_counts(
    client: TestClient, db: Session, cipher: AddressCipher
) -> None:
    org = make_organization(db)
    token = make_token(db, user=make_user(db, org=org))
    contact = make_contact(db, org=org, cipher=cipher)
    for i in range(3):
        db.add(
            Message(
                organization_id=org.id,
                contact_id=contact.id,
                direction=Direction.inbound,
                channel=contact.channel,
                status=MessageStatus.received,
                body=f"mi historia {i}",
            )
        )
    db.commit()
    r = client.post(f"/v1/contacts/{contact.id}/erase", headers=auth(token))
    assert r.status_code == 200 and r.json()["erased"] is True
    db.expire_all()
    row = db.get(Contact, contact.id)
    assert row is not None
    assert row.address_ciphertext is None and row.address_hash is None
    bodies = db.scalars(select(Message.body).where(Message.contact_id == contact.id)).all()
    assert bodies == [None, None, None]
    # Erasing twice is harmless; editing an erased contact is refused.
    assert client.post(f"/v1/contacts/{contact.id}/erase", headers=auth(token)).status_code == 200
    r = client.patch(f"/v1/contacts/{contact.id}", json={"language": "en"}, headers=auth(token))
    assert r.status_code == 409


def test_reveal_is_admin_only_and_audited(
    client: TestClient, db: Session, cipher: AddressCipher
) -> None:
    org = make_organization(db)
    admin = make_user(db, org=org, role=Role.admin)
    manager = make_user(db, org=org, role=Role.manager)
    admin_token, manager_token = make_token(db, user=admin), make_token(db, user=manager)
    phone = random_mobile()
    contact = make_contact(db, org=org, cipher=cipher, phone=phone)
    db.commit()
    denied = client.post(f"/v1/contacts/{contact.id}/reveal", headers=auth(manager_token))
    assert denied.status_code == 403 and phone not in denied.text
    ok = client.post(f"/v1/contacts/{contact.id}/reveal", headers=auth(admin_token))
    assert ok.status_code == 200 and ok.json()["phone"] == phone
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "contact.address_revealed"))
    assert event is not None and event.actor_user_id == admin.id
    assert event.object_id == str(contact.id)


def test_lookup_by_number_uses_the_keyed_hash(
    client: TestClient, db: Session, cipher: AddressCipher
) -> None:
    org = make_organization(db)
    token = make_token(db, user=make_user(db, org=org, role=Role.manager))
    phone = random_mobile("HN")
    contact = make_contact(db, org=org, cipher=cipher, phone=phone)
    db.commit()
    found = client.post("/v1/contacts/lookup", json={"phone": phone}, headers=auth(token))
    assert found.status_code == 200 and found.json()["id"] == contact.id
    missing = client.post(
        "/v1/contacts/lookup", json={"phone": random_mobile("HN")}, headers=auth(token)
    )
    assert missing.status_code == 404


def test_viewer_cannot_read_or_write_contacts(client: TestClient, db: Session) -> None:
    org = make_organization(db)
    token = make_token(db, user=make_user(db, org=org, role=Role.viewer))
    db.commit()
    assert client.get("/v1/contacts", headers=auth(token)).status_code == 403
    r = client.post("/v1/contacts", json={"phone": random_mobile()}, headers=auth(token))
    assert r.status_code == 403
    assert "manager" in r.json()["error"]["message"]
