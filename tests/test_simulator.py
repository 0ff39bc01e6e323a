"""The simulator: simulated contacts chat with Faro through the real pipeline, and only they."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import re
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from api.routes.simulator import simulator_enabled
from campaigns.contacts.models import ConsentState, Contact, ContactCommunity
from campaigns.crypto import AddressCipher
from campaigns.messaging.dispatch import send_batch
from campaigns.messaging.keywords import KeywordKind, confirmation
from campaigns.messaging.models import Direction, Message, MessageStatus, Sender
from campaigns.messaging.twilio_gateway import OutboundRequest, SimulatorGateway, SubmitResult
from campaigns.organizations.models import Organization
from campaigns.outbox import Job, install_publisher
from campaigns.phones import parse_mobile
from campaigns.settings import Settings
from campaigns.simulator import ensure_demo_senders, new_identity
from tests.factories import (
    make_community,
    make_contact,
    make_organization,
    make_sender,
    random_mobile,
)

API = "/simulator/api"


class NoNetwork:
    """The real gateway's place in ``send_batch``: a simulated message must never reach it."""

    simulated = False

    async def submit(self, request: OutboundRequest) -> SubmitResult:
        raise AssertionError("a simulated message was handed to the Twilio gateway")

    async def find(self, request: OutboundRequest, *, since: dt.datetime) -> SubmitResult | None:
        raise AssertionError("a simulated message was looked up at Twilio")

    async def close(self) -> None:
        return None


def _setup(client: TestClient, org: Organization) -> dict[str, Any]:
    response = client.get(f"{API}/setup", params={"organization_id": org.id})
    assert response.status_code == 200, response.text
    (entry,) = response.json()["organizations"]
    assert isinstance(entry, dict)
    return entry


def _sender_id(entry: dict[str, Any], channel: str) -> int:
    (sender,) = [s for s in entry["senders"] if s["channel"] == channel]
    return int(sender["id"])


def _send(
    client: TestClient, org: Organization, sender_id: int, phone: str, body: str, **extra: Any
) -> Any:
    payload = {"organization_id": org.id, "sender_id": sender_id, "phone": phone, "body": body}
    return client.post(f"{API}/messages", json={**payload, **extra})


def _chat(
    client: TestClient, org: Organization, sender_id: int, phone: str, after_id: int = 0
) -> Any:
    params: dict[str, str | int] = {
        "organization_id": org.id,
        "sender_id": sender_id,
        "phone": phone,
        "after_id": after_id,
    }
    return client.get(f"{API}/messages", params=params)


def _messages(db: Session) -> list[Message]:
    db.expire_all()
    return list(db.scalars(select(Message).order_by(Message.id)))


def _contact(db: Session, cipher: AddressCipher, channel: str, phone: str) -> Contact | None:
    db.expire_all()
    return db.scalar(
        select(Contact).where(Contact.address_hash == cipher.lookup_hash(channel, phone))
    )


def test_setup_offers_each_organization_a_simulated_whatsapp_and_sms_sender(
    client: TestClient, db: Session
) -> None:
    org = make_organization(db)
    community = make_community(db, org=org, name="Tapachula")
    make_sender(db, org=org, channel="whatsapp")  # a real Twilio number: never offered
    db.commit()

    entry = _setup(client, org)
    assert [c["name"] for c in entry["communities"]] == ["Tapachula"]
    assert entry["communities"][0]["id"] == community.id
    assert sorted(s["channel"] for s in entry["senders"]) == ["sms", "whatsapp"]
    addresses = {s["address"] for s in entry["senders"]}
    assert len(addresses) == 2
    assert all(a.startswith("+1500555") for a in addresses)
    assert "+14155238886" not in addresses

    again = _setup(client, org)  # idempotent: still one of each, and the demo seed agrees
    assert again["senders"] == entry["senders"]
    ensure_demo_senders(db, org.id)
    count = db.scalar(
        select(func.count()).select_from(Sender).where(Sender.organization_id == org.id)
    )
    assert count == 3


def test_a_message_goes_through_the_real_pipeline_as_a_simulated_contact(
    client: TestClient, db: Session, cipher: AddressCipher, jobs: list[Job]
) -> None:
    org = make_organization(db)
    community = make_community(db, org=org, name="Tenosique", language="es")
    db.commit()
    sender_id = _sender_id(_setup(client, org), "whatsapp")
    made = client.post(f"{API}/identities", json={"country": "HT"})
    assert made.status_code == 201, made.text
    phone = made.json()["phone"]
    assert parse_mobile(phone).country == "HT"

    sent = _send(
        client,
        org,
        sender_id,
        phone,
        "Bonjou, kijan pou m jwenn paspò?",
        community_id=community.id,
        language="fr",
        profile_name="Jean",
    )
    assert sent.status_code == 201, sent.text
    message_id = sent.json()["message_id"]

    (message,) = _messages(db)
    assert message.id == message_id
    assert message.direction == Direction.inbound and message.status == MessageStatus.received
    assert message.body == "Bonjou, kijan pou m jwenn paspò?" and message.simulated
    contact = _contact(db, cipher, "whatsapp", phone)
    assert contact is not None and contact.is_simulated and contact.organization_id == org.id
    assert contact.language == "fr" and contact.country == "HT"
    assert cipher.decrypt(contact.profile_name_ciphertext or b"") == "Jean"
    joined = db.scalars(
        select(ContactCommunity.community_id).where(ContactCommunity.contact_id == contact.id)
    )
    assert list(joined) == [community.id]
    assert [(j.task, j.args, j.queue) for j in jobs] == [
        ("conversation.handle", (message_id,), "conversation")
    ]

    chat = _chat(client, org, sender_id, phone)
    assert chat.status_code == 200, chat.text
    assert [(m["id"], m["direction"], m["body"]) for m in chat.json()["messages"]] == [
        (message_id, "inbound", "Bonjou, kijan pou m jwenn paspò?")
    ]
    listed = _setup(client, org)["contacts"]
    assert [(c["phone"], c["language"], c["community_names"]) for c in listed] == [
        (phone, "fr", ["Tenosique"])
    ]


def test_stop_opts_the_simulated_contact_out_and_the_confirmation_stays_in_faro(
    client: TestClient,
    db: Session,
    cipher: AddressCipher,
    jobs: list[Job],
    connection: Connection,
) -> None:
    org = make_organization(db)
    db.commit()
    sender_id = _sender_id(_setup(client, org), "sms")
    phone = new_identity("MX")

    sent = _send(client, org, sender_id, phone, "STOP", language="ht")
    assert sent.status_code == 201, sent.text
    assert sent.json()["keyword"] == "stop"
    contact = _contact(db, cipher, "sms", phone)
    assert contact is not None and contact.is_simulated
    assert contact.consent == ConsentState.opted_out
    inbound, reply = _messages(db)
    assert reply.direction == Direction.outbound and reply.status == MessageStatus.pending
    assert reply.body == confirmation(KeywordKind.stop, "ht")
    assert [(j.task, j.args) for j in jobs] == [("messages.send", ([reply.id],))]

    # What the worker does next: the simulated message is kept, never handed to Twilio.
    factory = sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    report = asyncio.run(
        send_batch(
            factory=factory,
            gateway=NoNetwork(),
            simulator=SimulatorGateway(),
            limiter=None,
            cipher=cipher,
            public_url="https://faro.test",
            message_ids=[reply.id],
        )
    )
    assert report.simulated == 1
    chat = _chat(client, org, sender_id, phone).json()["messages"]
    assert [(m["direction"], m["status"], m["body"]) for m in chat] == [
        ("inbound", "received", "STOP"),
        ("outbound", "simulated", confirmation(KeywordKind.stop, "ht")),
    ]
    newer = _chat(client, org, sender_id, phone, after_id=inbound.id).json()["messages"]
    assert [m["id"] for m in newer] == [reply.id]


def test_real_senders_and_real_contacts_are_refused_and_nothing_is_stored(
    client: TestClient, db: Session, cipher: AddressCipher, jobs: list[Job]
) -> None:
    org = make_organization(db)
    real_sender = make_sender(db, org=org, channel="whatsapp")
    real_contact = make_contact(db, org=org, cipher=cipher, channel="whatsapp")
    real_phone = cipher.decrypt(real_contact.address_ciphertext or b"")
    db.commit()
    simulated_id = _sender_id(_setup(client, org), "whatsapp")

    through_real = _send(client, org, real_sender.id, random_mobile(), "hola")
    assert through_real.status_code == 403
    assert through_real.json()["error"]["field"] == "sender_id"
    as_real_person = _send(client, org, simulated_id, real_phone, "hola")
    assert as_real_person.status_code == 403
    assert as_real_person.json()["error"]["field"] == "phone"
    reading_real = _chat(client, org, simulated_id, real_phone)
    assert reading_real.status_code == 403

    assert _messages(db) == []
    assert jobs == []
    db.refresh(real_contact)
    assert real_contact.last_inbound_at is None and not real_contact.is_simulated
    assert db.scalar(select(func.count()).select_from(Contact)) == 1
    assert real_phone not in {c["phone"] for c in _setup(client, org)["contacts"]}


def test_bad_input_gets_a_clear_4xx(client: TestClient, db: Session, jobs: list[Job]) -> None:
    org = make_organization(db)
    other = make_organization(db)
    foreign_community = make_community(db, org=other)
    db.commit()
    sender_id = _sender_id(_setup(client, org), "whatsapp")
    other_sender_id = _sender_id(_setup(client, other), "whatsapp")
    ok = {"organization_id": org.id, "sender_id": sender_id, "phone": random_mobile(), "body": "hi"}

    cases: list[tuple[dict[str, Any], int, str]] = [
        ({**ok, "body": "x" * 4097}, 422, "body"),
        ({**ok, "body": ""}, 422, "body"),
        ({**ok, "body": "   "}, 422, "body"),
        ({**ok, "sender_id": 10**12}, 404, "not_found"),
        ({**ok, "sender_id": other_sender_id}, 404, "not_found"),  # not this organization's
        ({**ok, "community_id": 10**12}, 404, "community_id"),
        ({**ok, "community_id": foreign_community.id}, 404, "community_id"),
        ({**ok, "language": "de"}, 422, "language"),
        ({**ok, "phone": "12345"}, 422, "phone"),
        ({**ok, "phone": "+50222123456"}, 422, "phone"),  # a Guatemala City landline
        ({**ok, "surprise": 1}, 422, "surprise"),
        ({k: v for k, v in ok.items() if k != "organization_id"}, 422, "organization_id"),
    ]
    for payload, code, where in cases:
        response = client.post(f"{API}/messages", json=payload)
        assert response.status_code == code, (payload, response.text)
        error = response.json()["error"]
        assert where in (error.get("field"), error["code"]), (payload, error)

    assert client.post(f"{API}/identities", json={"country": "XX"}).status_code == 422
    assert client.post(f"{API}/identities", json={"country": "TA"}).status_code == 422
    assert client.post(f"{API}/identities", json={"country": "MX", "n": 2}).status_code == 422
    assert client.get(f"{API}/setup", params={"organization_id": 10**12}).status_code == 404
    listing = _chat(client, org, sender_id, "not a phone")
    assert listing.status_code == 422
    assert _messages(db) == [] and jobs == []


def test_new_identities_are_mobiles_faro_accepts() -> None:
    rng = random.Random(7)
    for country in ("MX", "GT", "HN", "SV", "HT", "CU", "DO", "VE", "CO", "US", "BJ", "AX"):
        phone = new_identity(country, rng=rng)
        parse_mobile(phone)  # raises if Faro would refuse it from Twilio
    assert len({new_identity("MX", rng=rng) for _ in range(5)}) == 5


def test_the_page_is_served_self_contained(client: TestClient) -> None:
    page = client.get("/simulator")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "Simulator — messages here never leave Faro" in page.text
    assert "http://" not in page.text and "https://" not in page.text
    assert not re.search(r"""(src|href)\s*=\s*["']?//""", page.text)
    assert "innerHTML" not in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'sha256-" in policy


@pytest.fixture
def production_client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    production = settings.model_copy(
        update={
            "env": "production",
            "secret_key": SecretStr("a-production-secret-for-this-test-only"),
            "encryption_keys": SecretStr(Fernet.generate_key().decode()),
            "hash_key": SecretStr("a-production-hash-key-for-this-test-only"),
            "actions_token": SecretStr("a-production-actions-token-for-this-test"),
        }
    )
    app = create_app(production, engine=engine)
    install_publisher(None)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client
    finally:
        install_publisher(None)


def test_in_production_the_simulator_does_not_exist(
    production_client: TestClient, settings: Settings
) -> None:
    assert simulator_enabled(settings)
    assert not simulator_enabled(settings.model_copy(update={"env": "production"}))
    for method, path in [
        ("GET", "/simulator"),
        ("GET", f"{API}/setup"),
        ("POST", f"{API}/identities"),
        ("POST", f"{API}/messages"),
        ("GET", f"{API}/messages"),
    ]:
        response = production_client.request(method, path, json={} if method == "POST" else None)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["error"]["code"] == "not_found"
