"""The one custom action of the assistant: ask Faro what to answer.

Every intent (and `nlu_fallback`) runs `action_faro_turn`. Rasa only classifies; Faro owns the
answers (knowledge base per language and country, safety hotlines, menus, hand-over) and the
record of each turn. One turn:

    Rasa ──run action──▶ action server ──POST /internal/assistant/turn──▶ Faro
                                         ◀── {"messages": [...], "topic": ..., "answered": ...}
         ◀── texts, then {"faro": {intent, confidence, topic, answered}} as a custom message

When Faro cannot be reached, times out (5 s) or answers non-2xx, the person gets a short apology
in their language and the custom message carries `"answered": false, "error": "faro_unreachable"`
(`"faro_bad_response"` when Faro answers 2xx with a body of the wrong shape).

Privacy: the user's text is forwarded to Faro and never logged here; logs carry the intent,
the confidence and the outcome only.

Settings, read from the action server's environment at each call:
    FARO_URL            Faro's base URL, default http://127.0.0.1:8000
    FARO_ACTIONS_TOKEN  bearer token Faro expects on /internal/assistant/turn
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import aiohttp
from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

logger = logging.getLogger(__name__)

DEFAULT_FARO_URL = "http://127.0.0.1:8000"
TURN_PATH = "/internal/assistant/turn"
TIMEOUT_SECONDS = 5.0
RANKING_SIZE = 5
DEFAULT_LANGUAGE = "es"

# Said when Faro cannot answer; kept short and free of promises Faro has not made.
APOLOGIES: dict[str, str] = {
    "es": "Lo siento, ahora no puedo responder. Por favor, escribe de nuevo en unos minutos.",
    "en": "Sorry, I can't answer right now. Please write again in a few minutes.",
    "ht": "Padon, mwen pa ka reponn kounye a. Tanpri ekri ankò nan kèk minit.",
    "fr": "Désolé, je ne peux pas répondre pour le moment. Réécrivez-moi dans quelques minutes.",
}


class FaroError(Exception):
    """Faro gave no usable answer; `code` goes into the custom message as `error`."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


class ActionFaroTurn(Action):  # type: ignore[misc]  # rasa_sdk ships no type information
    """Forward the classified turn to Faro and utter what Faro answers."""

    def name(self) -> str:
        return "action_faro_turn"

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[dict[str, Any]]:
        message: dict[str, Any] = tracker.latest_message or {}
        metadata = message.get("metadata") or {}
        if not isinstance(metadata, dict):
            metadata = {}
        intent = message.get("intent") or {}
        intent_name = intent.get("name")
        confidence = float(intent.get("confidence") or 0.0)
        payload = {
            "intent": intent_name,
            "confidence": confidence,
            "text": message.get("text") or "",
            "metadata": metadata,
            "intent_ranking": [
                {"name": r.get("name"), "confidence": float(r.get("confidence") or 0.0)}
                for r in (message.get("intent_ranking") or [])[:RANKING_SIZE]
            ],
        }
        summary: dict[str, Any] = {"intent": intent_name, "confidence": confidence}

        try:
            answer = await post_turn(payload)
        except FaroError as exc:
            logger.warning(
                "faro_turn.failed intent=%s error=%s detail=%s", intent_name, exc.code, exc
            )
            dispatcher.utter_message(text=apology(metadata.get("language")))
            dispatcher.utter_message(
                json_message={
                    "faro": {**summary, "topic": None, "answered": False, "error": exc.code}
                }
            )
            return []

        for text in answer["texts"]:
            dispatcher.utter_message(text=text)
        dispatcher.utter_message(
            json_message={
                "faro": {**summary, "topic": answer["topic"], "answered": answer["answered"]}
            }
        )
        logger.info(
            "faro_turn.answered intent=%s confidence=%.3f topic=%s messages=%d",
            intent_name,
            confidence,
            answer["topic"],
            len(answer["texts"]),
        )
        return []


def apology(language: object) -> str:
    """The apology in the person's language, Spanish when it is unknown."""
    if isinstance(language, str) and language in APOLOGIES:
        return APOLOGIES[language]
    return APOLOGIES[DEFAULT_LANGUAGE]


async def post_turn(
    payload: dict[str, Any],
    *,
    faro_url: str | None = None,
    token: str | None = None,
    timeout: float = TIMEOUT_SECONDS,
) -> dict[str, Any]:
    """POST the turn to Faro; return its texts, topic and answered flag, or raise FaroError.

    `faro_url` and `token` default to FARO_URL and FARO_ACTIONS_TOKEN from the environment.
    """
    base = faro_url or os.environ.get("FARO_URL") or DEFAULT_FARO_URL
    token = token if token is not None else os.environ.get("FARO_ACTIONS_TOKEN")
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.post(base.rstrip("/") + TURN_PATH, json=payload, headers=headers) as response,
        ):
            if not 200 <= response.status < 300:
                raise FaroError("faro_unreachable", f"HTTP {response.status}")
            body = await response.json(content_type=None)
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise FaroError("faro_unreachable", type(exc).__name__) from exc
    except ValueError as exc:  # a 2xx whose body is not JSON
        raise FaroError("faro_bad_response", "body is not JSON") from exc
    return parse_answer(body)


def parse_answer(body: object) -> dict[str, Any]:
    """Check the shape of Faro's answer; raise FaroError("faro_bad_response") when wrong."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        raise FaroError("faro_bad_response", "no messages list")
    texts: list[str] = []
    for item in body["messages"]:
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            raise FaroError("faro_bad_response", "a message without text")
        texts.append(item["text"])
    topic = body.get("topic")
    if topic is not None and not isinstance(topic, str):
        raise FaroError("faro_bad_response", "topic is not a string")
    return {"texts": texts, "topic": topic, "answered": bool(body.get("answered", False))}
