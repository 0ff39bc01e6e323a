"""``GET /readyz`` names each dependency on its own: database, Redis, Rasa, action server.

Rasa and its action server are faked at Faro's boundary by a local HTTP server that answers the
paths /readyz asks for (the same paths docker-compose.yml's health checks ask).
"""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.app import create_app
from api.routes.health import ACTIONS_HEALTH_PATH, RASA_HEALTH_PATH
from campaigns.settings import Settings


class _Up(http.server.BaseHTTPRequestHandler):
    answers: dict[str, int] = {}

    def do_GET(self) -> None:
        self.send_response(self.answers.get(self.path, 404))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def assistant() -> Iterator[str]:
    """A server answering Rasa's and the action server's health paths with 200."""
    _Up.answers = {RASA_HEALTH_PATH: 200, ACTIONS_HEALTH_PATH: 200}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Up)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def _ready(settings: Settings, engine: Engine, **update: str) -> tuple[int, dict[str, str]]:
    with TestClient(create_app(settings.model_copy(update=update), engine=engine)) as client:
        response = client.get("/readyz")
    body = response.json()
    assert body["status"] == ("ok" if response.status_code == 200 else "unavailable")
    return response.status_code, body["checks"]


def test_everything_up(settings: Settings, engine: Engine, assistant: str) -> None:
    status, checks = _ready(settings, engine, rasa_url=assistant, action_server_url=assistant)
    assert (status, checks) == (
        200,
        {"database": "ok", "redis": "ok", "rasa": "ok", "actions": "ok"},
    )


def test_rasa_down_is_named_and_the_api_stays_ready(
    settings: Settings, engine: Engine, assistant: str
) -> None:
    status, checks = _ready(settings, engine, rasa_url=_closed_port(), action_server_url=assistant)
    # People get an apology while the assistant is down, but webhooks are still stored.
    assert status == 200
    assert checks["rasa"] == "error: ConnectError"
    assert checks["actions"] == "ok" and checks["database"] == "ok" and checks["redis"] == "ok"


def test_action_server_answering_an_error_is_named(
    settings: Settings, engine: Engine, assistant: str
) -> None:
    _Up.answers = {RASA_HEALTH_PATH: 200, ACTIONS_HEALTH_PATH: 503}
    status, checks = _ready(settings, engine, rasa_url=assistant, action_server_url=assistant)
    assert status == 200
    assert checks["rasa"] == "ok" and checks["actions"] == "error: HTTP 503"


def test_redis_down_makes_the_api_unready(
    settings: Settings, engine: Engine, assistant: str
) -> None:
    dead_redis = "redis://127.0.0.1:1/0"
    status, checks = _ready(
        settings, engine, redis_url=dead_redis, rasa_url=assistant, action_server_url=assistant
    )
    assert status == 503
    assert checks["redis"].startswith("error: ") and checks["database"] == "ok"
    assert checks["rasa"] == "ok" and checks["actions"] == "ok"
