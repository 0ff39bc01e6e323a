"""Rasa and its action server killed and restarted mid-conversation: every message gets exactly
one reply — Rasa's answer, or the apology docs/assistant.md describes — and nobody gets two.

Everything is real: the API and a conversation worker as processes (``tests.stack``), the
trained model served by ``rasa run`` and ``rasa run actions`` (``tests.stack.Assistant``, which
``make test`` prepares the model for), the fake Twilio over HTTP, signed webhooks.  The two Rasa
processes are SIGKILLed as a crash would, not stopped politely.

People write one question each, in groups:

- before: everything up; Rasa's answer (the answer with its source, then the feedback prompt);
- mid-turn: a burst, and both Rasa processes are killed once its first turn is done, so some
  turns are in flight; each gets the answer (if the action had reached Faro, whose task, retried
  because Rasa died before replying, then finds the message answered) or the apology;
- down: written while both stay down past the task's retries (2, 4 and 8 s): the apology;
- restarting: written as the restart begins; a retry that lands after Rasa has loaded its
  model (about 14 s here) gets the answer, otherwise the apology;
- after: everything back; Rasa's answer;
- actions down: Rasa up, its action server killed.  Rasa answers ``200 []`` (its REST channel
  swallows the failed action), so Faro sends its own apology at once, without retrying;
- actions back: Rasa's answer again.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import select

from campaigns.assistant.texts import say
from campaigns.knowledge.seed import seed_knowledge
from campaigns.messaging.models import Direction, Message
from campaigns.messaging.senders import create_sender
from campaigns.organizations.service import create_organization
from tests.conftest import PG_ADMIN_URL
from tests.resilience.helpers import TwilioLikeClient, verdict
from tests.stack import Assistant, PrivateRedis, Stack, free_port, running_stack, wait_for

SENDER = "+14155230902"
QUESTION = "hola buenas, como pido asilo aqui en mexico? llegue hace una semana"
FEEDBACK = "¿Te sirvió? 1 Sí / 2 No"
APOLOGY = say("unavailable", "es")
# A retry scheduled before a reply could still come this long after it (the last countdown).
RETRY_WINDOW = 8.0


@pytest.fixture
def world(tmp_path: Path, private_redis: PrivateRedis) -> Iterator[tuple[Stack, Assistant]]:
    api_port = free_port()
    assistant = Assistant(tmp_path, faro_url=f"http://127.0.0.1:{api_port}")
    os.environ["FARO_RASA_URL"] = assistant.rasa_url  # read by the stack's processes
    try:
        with running_stack(
            PG_ADMIN_URL, tmp_path / "stack", port=api_port, redis_url=private_redis.url
        ) as stack:
            with stack.session() as db, db.begin():
                org = create_organization(db, name="Rasa restart", country="MX")
                create_sender(db, organization_id=org.id, channel="whatsapp", address=SENDER)
                seed_knowledge(db, organization_id=org.id)
            try:
                assistant.start()
                yield stack, assistant
            finally:
                assistant.stop()
    finally:
        os.environ.pop("FARO_RASA_URL", None)


@dataclass
class Heard:
    """What one person received, sorted into the replies a person can tell apart."""

    answers: int = 0  # Rasa's answer: it cites its source
    feedback: int = 0  # the prompt that follows an answer
    apologies: int = 0
    other: list[str] = field(default_factory=list)

    @property
    def replies(self) -> int:
        return max(self.answers, self.feedback) + self.apologies + len(self.other)

    @property
    def complete(self) -> bool:
        return self.apologies > 0 or self.other != [] or (self.answers > 0 and self.feedback > 0)


def _heard(stack: Stack, phones: list[str]) -> dict[str, Heard]:
    heard = {p: Heard() for p in phones}
    for m in list(stack.fake.messages):
        person = heard.get(m.params["To"].removeprefix("whatsapp:"))
        if person is None:
            continue
        body = m.params.get("Body", "")
        if body == APOLOGY:
            person.apologies += 1
        elif body == FEEDBACK:
            person.feedback += 1
        elif "Fuente:" in body:
            person.answers += 1
        else:
            person.other.append(body)
    return heard


class People:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.client = TwilioLikeClient(stack)
        self.groups: dict[str, list[str]] = {}
        self.sids: dict[str, list[str]] = {}

    def write(self, group: str, count: int, prefix: str) -> list[str]:
        # E.164 as Faro stores them (Mexico's old mobile "1" is dropped), so replies match.
        phones = [f"{prefix}{i:08d}" for i in range(count)]
        forms = [
            self.client.form(sid="SM" + uuid.uuid4().hex, phone=p, to=SENDER, body=QUESTION)
            for p in phones
        ]
        self.groups[group] = phones
        self.sids[group] = [f["MessageSid"] for f in forms]
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = [d.status for d in pool.map(self.client.deliver, forms)]
        assert statuses == [200] * count
        return phones

    def wait_replied(self, *groups: str, timeout: float = 90) -> None:
        phones = [p for g in groups for p in self.groups[g]]

        def done() -> bool:
            return all(h.complete for h in _heard(self.stack, phones).values())

        try:
            wait_for(done, timeout=timeout, what=f"a reply to everyone in {groups}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {self.unhandled()}") from None

    def unhandled(self) -> str:
        sids = [sid for group in self.sids.values() for sid in group]
        with self.stack.session() as db:
            rows = db.execute(
                select(Message.id, Message.handling_started_at).where(
                    Message.twilio_sid.in_(sids), Message.handled_at.is_(None)
                )
            ).all()
        return "unhandled: " + "; ".join(f"{r.id} (lease {r.handling_started_at})" for r in rows)

    def handled(self, *groups: str) -> int:
        """How many of these groups' messages Faro marked handled (it answered them)."""
        sids = [sid for g in groups for sid in self.sids.get(g, [])]
        with self.stack.session() as db:
            return len(
                db.scalars(
                    select(Message.id).where(
                        Message.twilio_sid.in_(sids),
                        Message.direction == Direction.inbound,
                        Message.handled_at.is_not(None),
                    )
                ).all()
            )


@pytest.mark.slow
def test_rasa_and_its_action_server_killed_mid_conversation(
    world: tuple[Stack, Assistant],
) -> None:
    stack, assistant = world
    people = People(stack)
    started = time.monotonic()

    people.write("before", 8, "+5255")
    people.wait_replied("before")

    # Kill both once the burst's first turn is done: the rest are mid-turn or queued.
    background = ThreadPoolExecutor(max_workers=1)  # re-raises its failures on .result()
    burst = background.submit(people.write, "mid-turn", 24, "+5256")
    wait_for(lambda: people.handled("mid-turn") > 0, timeout=60, what="the burst's first turn")
    assistant.kill("rasa")
    assistant.kill("actions")
    handled_at_kill = people.handled("mid-turn")
    burst.result()
    people.write("down", 8, "+5281")
    people.wait_replied("mid-turn", "down")  # Rasa stays down: the retries run out

    def restart_both() -> float:
        began = time.monotonic()
        for part in ("actions", "rasa"):
            assistant.restart(part)
        return time.monotonic() - began

    restart = background.submit(restart_both)
    people.write("restarting", 8, "+5233")
    restart_took = restart.result()
    background.shutdown()
    people.wait_replied("restarting")
    people.write("after", 8, "+5222")
    people.wait_replied("after")

    assistant.kill("actions")
    people.write("actions down", 6, "+5244")
    people.wait_replied("actions down")
    assistant.restart("actions")
    people.write("actions back", 6, "+5266")
    people.wait_replied("actions back")

    time.sleep(RETRY_WINDOW)  # a retry that would reply a second time has come by now
    people.client.close()

    everyone = [p for phones in people.groups.values() for p in phones]
    heard = _heard(stack, everyone)
    lost = [p for p in everyone if heard[p].replies == 0]
    duplicated = [p for p in everyone if heard[p].replies > 1]
    by_group = {
        g: f"{sum(heard[p].answers for p in ps)} answered/"
        f"{sum(heard[p].apologies for p in ps)} apologies"
        for g, ps in people.groups.items()
    }
    verdict(
        "rasa restart",
        offered=len(everyone),
        processed=people.handled(*people.groups),
        lost=len(lost),
        duplicated=len(duplicated),
        **{g.replace(" ", "_"): v for g, v in by_group.items()},
        mid_turn_handled_at_the_kill=handled_at_kill,
        retries_that_found_it_answered=stack.log_text().count("'already_handled'"),
        restart_seconds=round(restart_took, 1),
        wall_seconds=round(time.monotonic() - started, 1),
        load=Path("/proc/loadavg").read_text().split()[0],
    )
    assert [p for p in everyone if heard[p].other] == [], {p: heard[p].other for p in everyone}
    assert duplicated == [], {p: heard[p] for p in duplicated}
    assert lost == []
    # The kill came mid-burst, not after it: some turns were still to come.
    assert handled_at_kill < len(people.groups["mid-turn"])
    assert people.handled(*people.groups) == len(everyone)
    # An answer is the answer with its source, then the feedback prompt: never half of it.
    assert all(heard[p].answers == heard[p].feedback for p in everyone)
    # Up: Rasa's own answer.  Down past the retries, or the action server down: the apology.
    for group in ("before", "after", "actions back"):
        assert all(heard[p].answers == 1 for p in people.groups[group]), group
    for group in ("down", "actions down"):
        assert all(heard[p].apologies == 1 for p in people.groups[group]), group
