"""Phone numbers and message bodies never reach the logs, whatever the request carries."""

from __future__ import annotations

import io

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from campaigns.logging import configure_logging, get_logger
from campaigns.settings import Settings
from tests.factories import auth, make_organization, make_token, make_user, random_mobile


def test_full_requests_with_numbers_leave_no_number_in_logs(
    client: TestClient, db: Session, settings: Settings
) -> None:
    buffer = io.StringIO()
    configure_logging(settings.model_copy(update={"log_level": "DEBUG"}), stream=buffer)
    org = make_organization(db)
    token = make_token(db, user=make_user(db, org=org))
    db.commit()
    phones = [random_mobile("MX"), random_mobile("HT"), random_mobile("GT")]
    created = client.post("/v1/contacts", json={"phone": phones[0]}, headers=auth(token))
    assert created.status_code == 201
    client.post("/v1/contacts", json={"phone": phones[0]}, headers=auth(token))  # 409
    client.post("/v1/contacts", json={"phone": phones[1] + "999"}, headers=auth(token))  # 422
    client.post(
        "/v1/contacts/import",
        content=f"phone\n{phones[1]}\n{phones[2]}\nnope\n".encode(),
        headers={**auth(token), "Content-Type": "text/csv"},
    )
    client.post("/v1/contacts/lookup", json={"phone": phones[2]}, headers=auth(token))
    client.post(f"/v1/contacts/{created.json()['id']}/reveal", headers=auth(token))
    logs = buffer.getvalue()
    assert "request.completed" in logs  # the logs were captured at all
    for phone in phones:
        for form in (phone, phone[1:], phone[-8:]):
            assert form not in logs, f"{form} leaked into the logs"
    assert token not in logs


def test_scrubber_masks_numbers_a_careless_caller_logs(settings: Settings) -> None:
    buffer = io.StringIO()
    configure_logging(settings, stream=buffer)
    log = get_logger("careless")
    log.warning("contact.wrote", note="call me at +50931234567 or 5512345678", body="secret story")
    err = buffer.getvalue()
    assert "+50931234567" not in err and "5512345678" not in err and "secret story" not in err
    assert "contact.wrote" in err


def test_a_full_inbound_webhook_request_leaves_no_number_or_body_in_logs(
    client: TestClient, db: Session, settings: Settings
) -> None:
    from tests.factories import make_sender, signed_post, twilio_form

    buffer = io.StringIO()
    configure_logging(settings.model_copy(update={"log_level": "DEBUG"}), stream=buffer)
    org = make_organization(db)
    sender = make_sender(db, org=org)
    db.commit()
    phone = random_mobile("HN")
    story = "me quitaron el pasaporte en la finca y no me dejan salir"
    form = twilio_form(sender=sender, phone=phone, body=story, ProfileName="Rosa Martínez")
    assert signed_post(client, "/webhooks/twilio/messages", form).status_code == 200
    stop = twilio_form(sender=sender, phone=phone, body="BAJA")
    assert signed_post(client, "/webhooks/twilio/messages", stop).status_code == 200
    bad = twilio_form(sender=sender, phone=phone, body="x" * 5000)
    assert signed_post(client, "/webhooks/twilio/messages", bad).status_code == 422
    logs = buffer.getvalue()
    assert "inbound.received" in logs and "inbound.keyword" in logs
    for secret in (phone, phone[1:], phone[-8:], story, "pasaporte", "Rosa", "x" * 50):
        assert secret not in logs, f"{secret!r} leaked into the logs"
