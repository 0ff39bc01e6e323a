"""The inbound webhook: signed, stored once, consent keywords, hostile input."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaigns.contacts.models import ConsentEvent, ConsentState, Contact
from campaigns.crypto import AddressCipher
from campaigns.messaging import inbound
from campaigns.messaging.models import Direction, Message, Purpose, Sender
from campaigns.outbox import Job
from tests.factories import (
    make_organization,
    make_sender,
    random_mobile,
    signed_post,
    twilio_form,
)

PATH = "/webhooks/twilio/messages"


def _messages(db: Session, direction: Direction | None = None) -> list[Message]:
    db.expire_all()
    stmt = select(Message).order_by(Message.id)
    if direction is not None:
        stmt = stmt.where(Message.direction == direction)
    return list(db.scalars(stmt))


def _setup(db: Session, channel: str = "whatsapp") -> tuple[int, Sender]:
    org = make_organization(db)
    sender = make_sender(db, org=org, channel=channel)
    db.commit()
    return org.id, sender


def test_signed_message_is_stored_once_and_answered_with_empty_twiml(
    client: TestClient, db: Session, cipher: AddressCipher, jobs: list[Job]
) -> None:
    org_id, sender = _setup(db)
    phone = random_mobile("HT")
    form = twilio_form(
        sender=sender,
        phone=phone,
        body="Kijan pou m jwenn paspò?",
        ProfileName="Jean",
    )
    first = signed_post(client, PATH, form)
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("text/xml")
    assert first.text.endswith("<Response/>")
    again = signed_post(client, PATH, form)  # Twilio retries with the same MessageSid
    assert again.status_code == 200

    inbound = _messages(db, Direction.inbound)
    assert len(inbound) == 1
    assert inbound[0].body == "Kijan pou m jwenn paspò?"
    assert [j.task for j in jobs] == ["conversation.handle"]
    assert jobs[0].args == (inbound[0].id,) and jobs[0].queue == "conversation"
    contact = db.get(Contact, inbound[0].contact_id)
    assert contact is not None and contact.organization_id == org_id
    assert contact.language == "ht" and contact.country == "HT"
    assert contact.last_inbound_at is not None
    assert contact.profile_name_ciphertext is not None
    assert cipher.decrypt(contact.profile_name_ciphertext) == "Jean"
    assert cipher.decrypt(contact.address_ciphertext or b"") == phone


def test_signature_is_checked_against_the_public_url(client: TestClient, db: Session) -> None:
    _, sender = _setup(db)
    form = twilio_form(sender=sender, phone=random_mobile())
    # Signed for the URL this process sees (behind a proxy), not the public one: refused.
    wrong_url = signed_post(client, PATH, form, public_url="http://testserver")
    assert wrong_url.status_code == 403
    wrong_token = signed_post(client, PATH, form, token="another-token")
    assert wrong_token.status_code == 403
    unsigned = client.post(
        PATH,
        content=urlencode(form).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert unsigned.status_code == 401
    tampered_form = dict(form, Body="changed after signing")
    from twilio.request_validator import RequestValidator

    good_sig = RequestValidator("test-auth-token-for-faro").compute_signature(
        "https://faro.test" + PATH, form
    )
    tampered = client.post(
        PATH,
        content=urlencode(tampered_form).encode(),
        headers={
            "X-Twilio-Signature": good_sig,
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert tampered.status_code == 403
    assert _messages(db) == []
    assert db.scalar(select(func.count()).select_from(Contact)) == 0
    # Twilio's back end sometimes signs the URL with the port spelled out: still Twilio's.
    with_port = signed_post(client, PATH, form, public_url="https://faro.test:443")
    assert with_port.status_code == 200
    assert len(_messages(db)) == 1


def test_missing_fields_and_unknown_sender_are_4xx_and_store_nothing(
    client: TestClient, db: Session
) -> None:
    _, sender = _setup(db)
    phone = random_mobile()
    for drop, field in [("MessageSid", "MessageSid"), ("From", "From"), ("To", "To")]:
        form = twilio_form(sender=sender, phone=phone)
        del form[drop]
        r = signed_post(client, PATH, form)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["field"] == field
    stranger = twilio_form(sender=sender, phone=phone, To="whatsapp:+14155550000")
    r = signed_post(client, PATH, stranger)
    assert r.status_code == 404 and r.json()["error"]["field"] == "To"
    bad_from = twilio_form(sender=sender, phone="not-a-number")
    assert signed_post(client, PATH, bad_from).status_code == 422
    assert _messages(db) == []


def test_media_location_buttons_and_extra_fields(
    client: TestClient, db: Session, jobs: list[Job]
) -> None:
    _, sender = _setup(db)
    phone = random_mobile()
    forms = [
        twilio_form(
            sender=sender,
            phone=phone,
            body="",
            NumMedia="1",
            MediaUrl0="https://api.twilio.com/x",
            MediaContentType0="image/jpeg",
        ),
        twilio_form(sender=sender, phone=phone, body="", Latitude="14.9", Longitude="-92.2"),
        twilio_form(
            sender=sender,
            phone=phone,
            body="Sí",
            ButtonPayload="feedback_yes",
            ButtonText="Sí",
        ),
        twilio_form(
            sender=sender,
            phone=phone,
            body="hola",
            SomethingNew="x",
            ReferralNumMedia="0",
            WaId="123",
        ),
    ]
    for form in forms:
        assert signed_post(client, PATH, form).status_code == 200
    kinds = [(m.kind, m.num_media, m.button_payload) for m in _messages(db, Direction.inbound)]
    assert kinds == [
        ("media", 1, None),
        ("location", 0, None),
        ("button", 0, "feedback_yes"),
        ("text", 0, None),
    ]
    assert len(jobs) == 4  # every one of them reaches the assistant


def test_hostile_bodies(client: TestClient, db: Session) -> None:
    _, sender = _setup(db)
    long_form = twilio_form(sender=sender, phone=random_mobile(), body="a" * 4097)
    r = signed_post(client, PATH, long_form)
    assert r.status_code == 422 and r.json()["error"]["field"] == "Body"
    ok_long = twilio_form(sender=sender, phone=random_mobile(), body="b" * 2000)
    assert signed_post(client, PATH, ok_long).status_code == 200  # a long WhatsApp message
    forged_button = twilio_form(
        sender=sender, phone=random_mobile(), body="Sí", ButtonText="Sí", ButtonPayload="p" * 257
    )
    r = signed_post(client, PATH, forged_button)
    assert r.status_code == 422 and r.json()["error"]["field"] == "ButtonPayload"
    for raw in (b"Body=%FF%FE&From=x", b"Body=\xff\xfe&From=x"):
        invalid_utf8 = client.post(
            PATH,
            content=raw,
            headers={
                "X-Twilio-Signature": "x",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        assert invalid_utf8.status_code == 422, raw
        assert "UTF-8" in invalid_utf8.json()["error"]["message"]
    huge = client.post(
        PATH,
        content=b"Body=" + b"x" * 70_000,
        headers={"X-Twilio-Signature": "x", "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert huge.status_code == 413
    assert len(_messages(db)) == 1


def test_stop_in_four_languages_opts_out_and_confirms_once(
    client: TestClient, db: Session, jobs: list[Job]
) -> None:
    _, sender = _setup(db)
    for word, country, language in [
        ("STOP", "US", "en"),
        ("Baja", "MX", "es"),
        ("kanpe", "HT", "ht"),
        ("ARRÊT", "FR", "fr"),
    ]:
        phone = random_mobile(country)
        for _ in range(2):  # the second STOP is not confirmed again
            form = twilio_form(sender=sender, phone=phone, body=f" {word}! ")
            assert signed_post(client, PATH, form).status_code == 200
        db.expire_all()
        contact = db.scalars(select(Contact).order_by(Contact.id.desc())).first()
        assert contact is not None and contact.consent == ConsentState.opted_out
        replies = [m for m in _messages(db, Direction.outbound) if m.contact_id == contact.id]
        assert len(replies) == 1 and replies[0].purpose == Purpose.consent
        assert contact.language == language, word
    sends = [j for j in jobs if j.task == "messages.send"]
    assert len(sends) == 4 and all(j.queue == "conversation" for j in sends)
    assert not [j for j in jobs if j.task == "conversation.handle"]


def test_twilio_advanced_opt_out_on_sms_is_not_confirmed_twice(
    client: TestClient, db: Session
) -> None:
    _, sender = _setup(db, channel="sms")
    form = twilio_form(
        sender=sender,
        phone=random_mobile(),
        body="Stop please",
        OptOutType="STOP",
    )
    assert signed_post(client, PATH, form).status_code == 200
    contact = db.scalars(select(Contact)).one()
    assert contact.consent == ConsentState.opted_out
    event = db.scalars(select(ConsentEvent)).one()
    assert event.source.value == "twilio_opt_out"
    assert _messages(db, Direction.outbound) == []  # Twilio already confirmed on SMS


def test_start_opts_back_in_and_opted_out_people_still_reach_the_assistant(
    client: TestClient, db: Session, jobs: list[Job]
) -> None:
    _, sender = _setup(db)
    phone = random_mobile()
    for body in ("alto", "necesito ayuda con mi visa", "alta"):
        signed_post(client, PATH, twilio_form(sender=sender, phone=phone, body=body))
    contact = db.scalars(select(Contact)).one()
    assert contact.consent == ConsentState.opted_in
    assert [j.task for j in jobs].count("conversation.handle") == 1
    states = [e.state.value for e in db.scalars(select(ConsentEvent).order_by(ConsentEvent.id))]
    assert states == ["opted_out", "opted_in"]


def test_erase_keyword_removes_bodies_and_sends_a_confirmation_that_finishes_it(
    client: TestClient, db: Session, cipher: AddressCipher, jobs: list[Job]
) -> None:
    _, sender = _setup(db)
    phone = random_mobile()
    signed_post(
        client,
        PATH,
        twilio_form(
            sender=sender,
            phone=phone,
            body="me pegan en casa",
            ProfileName="María",
        ),
    )
    signed_post(client, PATH, twilio_form(sender=sender, phone=phone, body="BORRAR"))
    contact = db.scalars(select(Contact)).one()
    assert contact.profile_name_ciphertext is None
    assert contact.consent == ConsentState.opted_out
    assert [m.body for m in _messages(db, Direction.inbound)] == [None, None]
    confirmation = _messages(db, Direction.outbound)
    assert len(confirmation) == 1 and confirmation[0].then_erase
    assert confirmation[0].body and "borr" in confirmation[0].body.lower()
    # The number stays only until the confirmation has left (see the dispatch tests).
    assert contact.address_ciphertext is not None and not contact.erased
    # And the assistant's copy of the conversation is deleted (Rasa's tracker events).
    forget = [j for j in jobs if j.task == "retention.forget_sender"]
    assert forget == [
        Job("retention.forget_sender", (contact.organization_id, contact.id), queue="conversation")
    ]


def test_segment_calculator_endpoint(client: TestClient, db: Session) -> None:
    from tests.factories import auth, make_token, make_user

    org = make_organization(db)
    token = make_token(db, user=make_user(db, org=org))
    db.commit()
    r = client.post(
        "/v1/messages/segments",
        headers=auth(token),
        json={"text": "Hola 🙂 " * 10, "price_per_segment": "0.0079", "recipients": 1000},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["encoding"] == "UCS-2" and body["ucs2_characters"] == ["🙂"]
    assert body["segments"] == 2 and body["estimated_cost"] == "15.8000"
    plain = client.post("/v1/messages/segments", headers=auth(token), json={"text": "a" * 161})
    assert plain.json()["encoding"] == "GSM-7" and plain.json()["segments"] == 2


def test_a_batch_stores_each_message_once_and_answers_each_for_itself(
    db: Session, cipher: AddressCipher, jobs: list[Job]
) -> None:
    """What the webhook's group commit hands ``inbound.store`` when messages arrive together:
    Twilio's retry racing its original, two messages from a number never seen before, an
    unknown To number and a message already stored — one outcome each, one contact per
    person, one message per MessageSid, one task per new non-keyword message."""
    org_id, sender = _setup(db)
    newcomer, regular = random_mobile("GT"), random_mobile("MX")
    earlier = twilio_form(sender=sender, phone=regular, body="¿Dónde hay un albergue?")
    assert inbound.receive(db, cipher=cipher, form=earlier).message_id is not None
    db.commit()
    jobs.clear()
    photo = twilio_form(sender=sender, phone=newcomer, body="", NumMedia="1", ProfileName="Ana")
    question = twilio_form(sender=sender, phone=newcomer, body="¿Cuánto cuesta la visa?")
    elsewhere = twilio_form(sender=sender, phone=regular, body="hola")
    elsewhere["To"] = "whatsapp:+15005550199"  # nobody's sender
    forms = [photo, question, dict(photo), earlier, elsewhere]

    outcomes = inbound.store(db, cipher=cipher, items=[inbound.prepare(f) for f in forms])
    db.commit()

    assert [type(o).__name__ for o in outcomes] == [
        "InboundResult",
        "InboundResult",
        "InboundResult",
        "InboundResult",
        "NotFound",
    ]
    first, second, retry, old = outcomes[:4]
    assert isinstance(first, inbound.InboundResult) and isinstance(second, inbound.InboundResult)
    assert not first.duplicate and not second.duplicate
    assert isinstance(retry, inbound.InboundResult) and retry.duplicate
    assert isinstance(old, inbound.InboundResult) and old.duplicate
    assert first.contact_id == second.contact_id
    contacts = db.scalars(select(Contact).where(Contact.organization_id == org_id)).all()
    assert len(contacts) == 2
    person = next(c for c in contacts if c.id == first.contact_id)
    assert cipher.decrypt(person.address_ciphertext or b"") == newcomer
    assert cipher.decrypt(person.profile_name_ciphertext or b"") == "Ana"
    assert person.language == "es" and person.last_inbound_at is not None
    stored = _messages(db, Direction.inbound)
    assert [m.twilio_sid for m in stored] == [
        earlier["MessageSid"],
        photo["MessageSid"],
        question["MessageSid"],
    ]
    assert [m.kind for m in stored[1:]] == ["media", "text"]
    assert [j.args for j in jobs if j.task == "conversation.handle"] == [
        (first.message_id,),
        (second.message_id,),
    ]
