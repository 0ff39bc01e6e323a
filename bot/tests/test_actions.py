"""ActionFaroTurn against a fake Faro speaking HTTP on a local port.

Standard library unittest, so the bot's environment needs nothing extra (`make bot-test-actions`):

    cd bot && .venv/bin/python -m unittest discover -s tests -p 'test_*.py'
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import unittest
from typing import Any

from aiohttp import web
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.actions import APOLOGIES, ActionFaroTurn, FaroError, post_turn

TOKEN = "test-token"  # noqa: S105 - a test double's token
METADATA = {
    "organization_id": 1,
    "language": "ht",
    "country": "MX",
    "community_id": 3,
    "inbound_message_id": 42,
    "contact_ref": "c-7f3a",
}
TEXT = "mwen bezwen fè demann azil"

logging.getLogger("actions.actions").addHandler(logging.NullHandler())  # quiet test output


def tracker(text: str = TEXT, metadata: dict[str, Any] | None = METADATA) -> Tracker:
    ranking = [{"name": f"intent_{i}", "confidence": 0.01} for i in range(7)]
    ranking.insert(0, {"name": "asylum_protection", "confidence": 0.93})
    latest = {
        "text": text,
        "intent": {"name": "asylum_protection", "confidence": 0.93},
        "intent_ranking": ranking,
        "entities": [],
        "metadata": metadata,
    }
    return Tracker("c-7f3a", {}, latest, [], False, None, {}, "action_listen")


class FakeFaro:
    """Plays Faro's /internal/assistant/turn: records requests, answers what it is told."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.body: Any = {
            "messages": [{"text": "Primera respuesta"}, {"text": "Segunda respuesta"}],
            "topic": "asylum_protection",
            "answered": True,
        }
        self.delay = 0.0
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(
            {
                "path": request.path,
                "authorization": request.headers.get("Authorization"),
                "json": await request.json(),
            }
        )
        if self.delay:
            await asyncio.sleep(self.delay)
        if isinstance(self.body, str):
            return web.Response(status=self.status, text=self.body)
        return web.json_response(self.body, status=self.status)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/internal/assistant/turn", self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class ActionFaroTurnTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self) -> None:
        self.faro = FakeFaro()
        await self.faro.start()
        self.saved_env = {k: os.environ.get(k) for k in ("FARO_URL", "FARO_ACTIONS_TOKEN")}
        os.environ["FARO_URL"] = self.faro.url
        os.environ["FARO_ACTIONS_TOKEN"] = TOKEN

    async def asyncTearDown(self) -> None:
        await self.faro.stop()
        for key, value in self.saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    async def run_action(self, t: Tracker | None = None) -> list[dict[str, Any]]:
        dispatcher = CollectingDispatcher()
        events = await ActionFaroTurn().run(dispatcher, t or tracker(), {})
        self.assertEqual(events, [])
        messages: list[dict[str, Any]] = dispatcher.messages
        return messages

    async def test_utters_faros_messages_in_order_then_the_classification(self) -> None:
        messages = await self.run_action()

        self.assertEqual(
            [m["text"] for m in messages[:2]], ["Primera respuesta", "Segunda respuesta"]
        )
        self.assertEqual(
            messages[2]["custom"],
            {
                "faro": {
                    "intent": "asylum_protection",
                    "confidence": 0.93,
                    "topic": "asylum_protection",
                    "answered": True,
                }
            },
        )
        self.assertEqual(len(messages), 3)

    async def test_sends_the_turn_with_the_token_metadata_and_top_five(self) -> None:
        await self.run_action()

        (request,) = self.faro.requests
        self.assertEqual(request["authorization"], f"Bearer {TOKEN}")
        sent = request["json"]
        self.assertEqual(sent["intent"], "asylum_protection")
        self.assertEqual(sent["confidence"], 0.93)
        self.assertEqual(sent["text"], TEXT)
        self.assertEqual(sent["metadata"], METADATA)
        self.assertEqual(len(sent["intent_ranking"]), 5)
        self.assertEqual(
            sent["intent_ranking"][0], {"name": "asylum_protection", "confidence": 0.93}
        )

    async def test_faro_error_gives_an_apology_in_the_persons_language(self) -> None:
        self.faro.status = 503

        messages = await self.run_action()

        self.assertEqual(messages[0]["text"], APOLOGIES["ht"])
        self.assertEqual(
            messages[1]["custom"]["faro"],
            {
                "intent": "asylum_protection",
                "confidence": 0.93,
                "topic": None,
                "answered": False,
                "error": "faro_unreachable",
            },
        )

    async def test_faro_down_apologizes_in_spanish_when_the_language_is_unknown(self) -> None:
        await self.faro.stop()

        messages = await self.run_action(tracker(metadata=None))

        self.assertEqual(messages[0]["text"], APOLOGIES["es"])
        self.assertEqual(messages[1]["custom"]["faro"]["error"], "faro_unreachable")

    async def test_a_body_of_the_wrong_shape_is_not_uttered(self) -> None:
        self.faro.body = {"messages": [{"texto": "?"}]}

        messages = await self.run_action()

        self.assertEqual(messages[0]["text"], APOLOGIES["ht"])
        self.assertEqual(messages[1]["custom"]["faro"]["error"], "faro_bad_response")

    async def test_a_slow_faro_times_out(self) -> None:
        self.faro.delay = 1.0

        with self.assertRaises(FaroError) as caught:
            await post_turn({}, faro_url=self.faro.url, token=TOKEN, timeout=0.2)

        self.assertEqual(caught.exception.code, "faro_unreachable")

    async def test_the_persons_text_never_reaches_the_logs(self) -> None:
        with self.assertLogs("actions.actions", level="DEBUG") as logs:
            await self.run_action()
            self.faro.status = 500
            await self.run_action()

        self.assertTrue(logs.output)
        for line in logs.output:
            self.assertNotIn(TEXT, line)
            self.assertNotIn("azil", line)
        self.assertNotIn(TEXT, json.dumps(logs.output))


if __name__ == "__main__":
    unittest.main()
