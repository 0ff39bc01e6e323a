"""End to end over real processes: a signed webhook into the API, the worker sending through
the real twilio client to the fake Twilio, and its signed callbacks back into the API."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from campaigns.contacts.models import ConsentState, Contact
from campaigns.messaging.models import Direction, Message, MessageStatus
from campaigns.messaging.senders import create_sender
from campaigns.organizations.service import create_organization
from tests.conftest import PG_ADMIN_URL
from tests.factories import TWILIO_SID, TWILIO_TOKEN, random_mobile
from tests.stack import Stack, running_stack, wait_for

SENDER = "+14155238886"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(PG_ADMIN_URL, tmp_path_factory.mktemp("e2e-gateway"), latency=0.05) as s:
        with s.session() as session, session.begin():
            org = create_organization(session, name="Gateway e2e", country="MX")
            create_sender(session, organization_id=org.id, channel="whatsapp", address=SENDER)
        yield s


def post_inbound(stack: Stack, phone: str, body: str, sid: str) -> httpx.Response:
    form = {
        "MessageSid": sid,
        "AccountSid": TWILIO_SID,
        "From": f"whatsapp:{phone}",
        "To": f"whatsapp:{SENDER}",
        "Body": body,
        "NumMedia": "0",
    }
    url = f"{stack.base_url}/webhooks/twilio/messages"
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(url, form)
    return httpx.post(
        url,
        content=urlencode(form),
        timeout=10,
        headers={
            "X-Twilio-Signature": signature,
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )


@pytest.mark.slow
def test_stop_is_confirmed_once_and_delivery_reports_come_back(stack: Stack) -> None:
    phone = random_mobile("HT")
    for _ in range(3):  # Twilio retrying the same webhook
        assert post_inbound(stack, phone, "KANPE", "SM" + "e2e0" * 8).status_code == 200
    wait_for(
        lambda: any(m.params["To"] == f"whatsapp:{phone}" for m in stack.fake.messages),
        what="the confirmation at Twilio",
    )
    [sent] = [m for m in stack.fake.messages if m.params["To"] == f"whatsapp:{phone}"]
    assert "Kòmanse" in sent.params["Body"]  # Haitian Creole, the contact's language
    assert sent.params["From"] == f"whatsapp:{SENDER}"

    def delivered() -> bool:
        with stack.session() as session:
            status = session.scalar(select(Message.status).where(Message.twilio_sid == sent.sid))
            return status == MessageStatus.read

    wait_for(delivered, what="the signed callbacks to reach 'read'")
    with stack.session() as session:
        contact = session.scalars(select(Contact).where(Contact.country == "HT")).one()
        assert contact.consent == ConsentState.opted_out
        outbound = session.scalars(
            select(Message).where(
                Message.direction == Direction.outbound, Message.contact_id == contact.id
            )
        ).all()
        assert len(outbound) == 1
    log = stack.log_text()
    assert phone not in log and phone[1:] not in log


@pytest.mark.slow
def test_a_question_gets_an_answer_even_without_the_assistant(stack: Stack) -> None:
    phone = random_mobile("MX")
    assert (
        post_inbound(stack, phone, "como saco mi pasaporte", "SM" + "e2e1" * 8).status_code == 200
    )
    wait_for(
        lambda: any(m.params["To"] == f"whatsapp:{phone}" for m in stack.fake.messages),
        what="the reply at Twilio",
    )
    [reply] = [m for m in stack.fake.messages if m.params["To"] == f"whatsapp:{phone}"]
    assert "asistente" in reply.params["Body"]
    with stack.session() as session:
        inbound = session.scalars(
            select(Message).where(Message.twilio_sid == "SM" + "e2e1" * 8)
        ).one()
        assert inbound.handled_at is not None


@pytest.mark.slow
def test_two_first_messages_from_a_new_number_at_once_are_both_kept(stack: Stack) -> None:
    from concurrent.futures import ThreadPoolExecutor

    phone = random_mobile("SV")
    sids = [f"SM{i:032x}" for i in range(900, 908)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(
            pool.map(lambda sid: post_inbound(stack, phone, "hola", sid).status_code, sids)
        )
    assert codes == [200] * 8
    with stack.session() as session:
        stored = session.scalars(select(Message.contact_id).where(Message.twilio_sid.in_(sids)))
        assert len(set(stored.all())) == 1  # one contact, eight messages
