"""The assistant for real: signed webhooks into the API, the worker asking the trained Rasa
server, Rasa's action server calling Faro back, and replies reaching the fake Twilio.

Needs the trained model (``make bot-train``; ``make test`` trains it first).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from urllib.parse import urlencode

import httpx
import pytest
import redis
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from campaigns.assistant.models import Handover, Turn, UnansweredQuestion
from campaigns.knowledge.seed import seed_knowledge
from campaigns.messaging.senders import create_sender
from campaigns.organizations.service import create_organization
from tests.conftest import PG_ADMIN_URL
from tests.factories import TWILIO_SID, TWILIO_TOKEN, random_mobile
from tests.stack import Assistant, Stack, free_port, running_stack, wait_for

SENDER = "+14155238887"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Assistant]]:
    logs = tmp_path_factory.mktemp("e2e-assistant")
    api_port = free_port()
    assistant = Assistant(logs, faro_url=f"http://127.0.0.1:{api_port}")
    os.environ["FARO_RASA_URL"] = assistant.rasa_url  # read by the stack's processes
    try:
        with running_stack(PG_ADMIN_URL, logs, redis_db=12, port=api_port) as stack:
            with stack.session() as session, session.begin():
                org = create_organization(session, name="Assistant e2e", country="MX")
                create_sender(session, organization_id=org.id, channel="whatsapp", address=SENDER)
                seed_knowledge(session, organization_id=org.id)
            assistant.start()
            yield stack, assistant
            assistant.stop()
    finally:
        os.environ.pop("FARO_RASA_URL", None)


def say(stack: Stack, phone: str, body: str) -> str:
    sid = "SM" + os.urandom(16).hex()
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
    r = httpx.post(
        url,
        content=urlencode(form),
        timeout=10,
        headers={
            "X-Twilio-Signature": signature,
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert r.status_code == 200, r.text
    return sid


def replies(stack: Stack, phone: str, count: int, timeout: float = 60) -> list[str]:
    """Wait until ``count`` messages to ``phone`` reached Twilio; their bodies, in order."""

    def got() -> list[str]:
        return [
            m.params.get("Body", "")
            for m in stack.fake.messages
            if m.params["To"] == f"whatsapp:{phone}"
        ]

    wait_for(lambda: len(got()) >= count, timeout=timeout, what=f"{count} replies")
    time.sleep(0.5)
    return got()


@pytest.mark.slow
def test_spanish_question_gets_the_mexican_answer_with_its_source(
    world: tuple[Stack, Assistant],
) -> None:
    stack, _ = world
    phone = random_mobile("MX")
    say(stack, phone, "hola buenas, como pido asilo aqui en mexico? llegue hace una semana")
    answer, feedback = replies(stack, phone, 2)
    assert answer.startswith("Servicio gratuito. Fuentes oficiales. No es asesoría legal.")
    assert "COMAR" in answer and "Fuente:" in answer
    assert feedback == "¿Te sirvió? 1 Sí / 2 No"
    # Someone is talking to the assistant: campaigns yield the machines for the next seconds.
    assert 0 < redis.Redis.from_url(stack.redis_url).pttl("faro:rate:chatting") <= 10_000
    with stack.session() as session:
        turn = session.scalars(select(Turn).order_by(Turn.id.desc())).first()
        assert turn is not None and turn.topic == "asylum_protection" and turn.language == "es"
        assert turn.confidence is not None and turn.confidence > 0.5


@pytest.mark.slow
def test_creole_trafficking_gives_the_hotline_first_and_a_person(
    world: tuple[Stack, Assistant],
) -> None:
    stack, _ = world
    phone = random_mobile("HT")
    say(stack, phone, "patwon an pran paspò m epi li di m pa ka kite travay la si m pa peye dèt la")
    first, *_ = replies(stack, phone, 3)
    assert "840" in first and first.index("840") < 300  # Haiti's verified CNLTP number
    assert "Si w an danje" in first
    say(stack, phone, "wi")
    replies(stack, phone, 4)
    with stack.session() as session:
        handover = session.scalars(select(Handover)).first()
        assert handover is not None and handover.topic == "human_trafficking"


@pytest.mark.slow
def test_gibberish_is_answered_honestly_and_recorded(world: tuple[Stack, Assistant]) -> None:
    stack, _ = world
    phone = random_mobile("GT")
    say(stack, phone, "qwzx pflm 🍕🍕 trrr 4521")
    [reply] = replies(stack, phone, 1)
    assert "no tengo una respuesta confiable" in reply or "Solo puedo ayudarte" in reply
    with stack.session() as session:
        unanswered = session.scalars(select(UnansweredQuestion)).all()
        texts = [u.text_redacted for u in unanswered]
    assert any("####" in t for t in texts) or "Solo puedo ayudarte" in reply


@pytest.mark.slow
def test_managers_can_try_a_phrasing(world: tuple[Stack, Assistant]) -> None:
    from campaigns.organizations.models import Organization, Role
    from campaigns.organizations.service import create_user, issue_token

    stack, _ = world
    with stack.session() as session, session.begin():
        org = session.scalars(select(Organization)).first()
        assert org is not None
        user = create_user(
            session, organization_id=org.id, email="tester@e2e.example", role=Role.manager
        )
        _, token = issue_token(session, user=user)
    r = httpx.post(
        f"{stack.base_url}/v1/assistant/parse",
        timeout=30,
        headers={"Authorization": f"Bearer {token}"},
        json={
            "text": "me ofrecieron una visa de trabajo si pago 500 dolares, es real?",
            "language": "es",
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["intent"] == "scams_fraud" and body["topic"] == "scams_fraud"
    assert body["answer_preview"] and body["language"] == "es"
