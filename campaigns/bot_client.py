"""The only caller of Rasa: its REST channel (a conversation turn) and its parse API (NLU only).

Rasa never sees a phone number: the sender id is a keyed pseudonym, and the metadata carries
only what the answer needs (organization, language, country, community, message id).
"""

from __future__ import annotations

from typing import Any, Protocol

import httpx

from campaigns.metrics import BOT_DURATION, timed

CHANNEL_PATH = "/webhooks/rest/webhook"


class AssistantUnavailable(Exception):
    """Rasa could not be reached or answered with an error; the caller retries."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # Rasa's HTTP status, when it answered


class Assistant(Protocol):
    def turn(self, *, sender: str, text: str, metadata: dict[str, Any]) -> list[dict[str, Any]]: ...


class BotClient:
    def __init__(self, base_url: str, *, timeout: float = 15.0) -> None:
        self._base = base_url.rstrip("/")
        self._client = httpx.Client(timeout=timeout)

    def turn(self, *, sender: str, text: str, metadata: dict[str, Any]) -> list[dict[str, Any]]:
        with timed(BOT_DURATION):
            try:
                response = self._client.post(
                    f"{self._base}{CHANNEL_PATH}",
                    json={"sender": sender, "message": text, "metadata": metadata},
                )
            except httpx.HTTPError as exc:
                raise AssistantUnavailable(type(exc).__name__) from exc
            if response.status_code != 200:
                code = response.status_code
                raise AssistantUnavailable(f"HTTP {code}", status=code)
        body = response.json()
        return body if isinstance(body, list) else []

    def parse(self, text: str) -> dict[str, Any]:
        try:
            response = self._client.post(f"{self._base}/model/parse", json={"text": text})
        except httpx.HTTPError as exc:
            raise AssistantUnavailable(type(exc).__name__) from exc
        if response.status_code != 200:
            raise AssistantUnavailable(f"HTTP {response.status_code}")
        result: dict[str, Any] = response.json()
        return result

    def ready(self) -> bool:
        try:
            return self._client.get(f"{self._base}/", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def close(self) -> None:
        self._client.close()
