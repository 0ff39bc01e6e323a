"""Delivery reports: signed, logged as they come, status only forward; hostile forms."""

from __future__ import annotations

import string
import uuid

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaigns.contacts.models import ConsentState, Contact
from campaigns.crypto import AddressCipher
from campaigns.messaging.models import Message, MessageStatus, MessageStatusEvent, Purpose
from campaigns.messaging.outbound import queue_text
from tests.factories import (
    TWILIO_SID,
    make_contact,
    make_organization,
    make_sender,
    random_mobile,
    signed_post,
    twilio_form,
)

PATH = "/webhooks/twilio/status"


def _sent_message(db: Session, cipher: AddressCipher, sid: str | None = None) -> Message:
    org = make_organization(db)
    sender = make_sender(db, org=org, address="+1415" + str(uuid.uuid4().int)[:7])
    contact = make_contact(db, org=org, cipher=cipher)
    message = queue_text(
        db, contact=contact, sender=sender, purpose=Purpose.reply, body="x", publish=False
    )
    message.twilio_sid = sid
    message.status = MessageStatus.queued if sid else MessageStatus.submitting
    message.status_rank = message.status.rank
    db.commit()
    return message


def _callback(sid: str, status: str, **extra: str) -> dict[str, str]:
    return {
        "MessageSid": sid,
        "MessageStatus": status,
        "AccountSid": TWILIO_SID,
        "ApiVersion": "2010-04-01",
        **extra,
    }


def test_out_of_order_and_duplicate_callbacks_only_move_forward(
    client: TestClient, db: Session, cipher: AddressCipher
) -> None:
    sid = "SM" + uuid.uuid4().hex
    message = _sent_message(db, cipher, sid)
    for status in ("delivered", "sent", "read", "delivered", "read", "queued"):
        assert signed_post(client, PATH, _callback(sid, status)).status_code == 204
    db.expire_all()
    assert db.get(Message, message.id).status == MessageStatus.read  # type: ignore[union-attr]
    events = db.scalars(select(MessageStatusEvent.status).order_by(MessageStatusEvent.id)).all()
    assert [e.value for e in events] == ["delivered", "sent", "read", "delivered", "read", "queued"]


def test_failure_keeps_its_code_and_21610_opts_the_contact_out(
    client: TestClient, db: Session, cipher: AddressCipher
) -> None:
    sid = "SM" + uuid.uuid4().hex
    message = _sent_message(db, cipher, sid)
    signed_post(client, PATH, _callback(sid, "failed", ErrorCode="21610"))
    signed_post(client, PATH, _callback(sid, "delivered"))  # late and wrong: ignored
    db.expire_all()
    row = db.get(Message, message.id)
    assert row is not None and row.status == MessageStatus.failed and row.error_code == 21610
    contact = db.get(Contact, row.contact_id)
    assert contact is not None and contact.consent == ConsentState.opted_out


def test_a_callback_completes_a_message_whose_worker_died_after_twilio_accepted(
    client: TestClient, db: Session, cipher: AddressCipher
) -> None:
    message = _sent_message(db, cipher, sid=None)  # submitting, no SID saved
    sid = "SM" + uuid.uuid4().hex
    r = signed_post(client, PATH, _callback(sid, "sent"), query=f"m={message.id}")
    assert r.status_code == 204
    db.expire_all()
    row = db.get(Message, message.id)
    assert row is not None and row.twilio_sid == sid and row.status == MessageStatus.sent


def test_unknown_status_and_unknown_message(client: TestClient, db: Session) -> None:
    r = signed_post(client, PATH, _callback("SM" + "0" * 32, "exploded"))
    assert r.status_code == 422 and r.json()["error"]["field"] == "MessageStatus"
    r = signed_post(client, PATH, _callback("SM" + "1" * 32, "delivered"))
    assert r.status_code == 204  # not ours (or erased): logged and ignored
    assert db.scalar(select(func.count()).select_from(MessageStatusEvent)) == 0


_fields = st.sampled_from(
    [
        "MessageSid",
        "MessageStatus",
        "From",
        "To",
        "Body",
        "AccountSid",
        "ErrorCode",
        "NumMedia",
        "OptOutType",
        "ButtonPayload",
        "X",
    ]
)
_values = st.one_of(
    st.text(max_size=50),
    st.text(alphabet=string.digits + "+", max_size=16),
    st.sampled_from(
        [
            "whatsapp:+50931234567",
            "+5215512345678",
            "STOP",
            "delivered",
            "999",
            "SM" + "a" * 32,
            TWILIO_SID,
            "",
        ]
    ),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    form=st.dictionaries(_fields, _values, max_size=9),
    signed=st.booleans(),
    path=st.sampled_from(["/webhooks/twilio/messages", PATH]),
)
def test_random_forms_never_cause_a_server_error(
    client: TestClient, db: Session, form: dict[str, str], signed: bool, path: str
) -> None:
    if signed:
        r = signed_post(client, path, form)
    else:
        r = client.post(path, data=form, headers={"X-Twilio-Signature": "bogus"})
    assert r.status_code < 500, (form, r.text)


def test_a_registered_sender_with_random_signed_forms_never_fails(
    client: TestClient, db: Session, cipher: AddressCipher
) -> None:
    org = make_organization(db)
    sender = make_sender(db, org=org)
    db.commit()

    @settings(max_examples=60, deadline=None)
    @given(
        body=st.text(max_size=300),
        media=st.sampled_from(["0", "1", "x", ""]),
        extra=st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=20), max_size=3),
    )
    def check(body: str, media: str, extra: dict[str, str]) -> None:
        form = {
            **extra,
            **twilio_form(sender=sender, phone=random_mobile(), body=body, NumMedia=media),
        }
        r = signed_post(client, "/webhooks/twilio/messages", form)
        assert r.status_code in (200, 422), (form, r.text)

    check()
