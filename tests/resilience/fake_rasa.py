"""A stand-in for Rasa's REST channel, run as its own process so a test can kill it.

    python tests/resilience/fake_rasa.py --port 5005

``POST /webhooks/rest/webhook`` answers ``[{"recipient_id": sender, "text": "Rasa: <message>"}]``
and appends the sender to ``--log`` (one line per turn, so a test counts what Rasa was asked);
``GET /`` answers 200 like Rasa's health check.  It knows no intents: the resilience tests only
need to see an answer come back once the "assistant" is up again.
"""

from __future__ import annotations

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args()
    log_path: Path = args.log

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._json(200, {"status": "ok"})

        def do_POST(self) -> None:
            if self.path != "/webhooks/rest/webhook":
                self._json(404, {"error": "not found"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            sender = str(body.get("sender", ""))
            with log_path.open("a", encoding="utf-8") as log:
                log.write(sender + "\n")
            self._json(200, [{"recipient_id": sender, "text": f"Rasa: {body.get('message')}"}])

        def _json(self, status: int, payload: object) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
