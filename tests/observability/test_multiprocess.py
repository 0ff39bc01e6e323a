"""Several uvicorn workers behind one port, one ``/metrics``: with ``PROMETHEUS_MULTIPROC_DIR``
set (as docker-compose.yml sets it for the API) a scrape, whichever worker answers it, counts the
requests of every worker.  Without it each worker would report only its own share."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

TOKEN = "multiprocess-metrics-token-0123456789abcdef"
REQUESTS = 40


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _healthz_count(text: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "faro_http_requests_total" and s.labels.get("route") == "/healthz":
                return s.value
    return 0.0


def _writers(metrics_dir: Path) -> set[str]:
    """The processes that wrote counters (prometheus_client names the files counter_<pid>.db)."""
    return {p.stem.removeprefix("counter_") for p in metrics_dir.glob("counter_*.db")}


def test_one_scrape_counts_the_requests_of_every_worker(tmp_path: Path) -> None:
    port = _free_port()
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FARO_")},
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "FARO_VAR_DIR": str(tmp_path / "var"),
        "FARO_DATABASE_URL": f"sqlite:///{tmp_path / 'faro.db'}",
        "FARO_METRICS_TOKEN": TOKEN,
        "FARO_LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory"),
            *("--host", "127.0.0.1", "--port", str(port), "--workers", "2"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "uvicorn did not start"
                assert server.poll() is None, "uvicorn exited"
                time.sleep(0.2)
        # Both workers must have started before the requests are spread over them.
        while len(_writers(metrics_dir)) < 2 and time.monotonic() < deadline:
            httpx.get(f"{base}/healthz")
        before = _healthz_count(
            httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
        )
        for _ in range(REQUESTS):  # a new connection each time: the kernel spreads them
            assert httpx.get(f"{base}/healthz").status_code == 200
        for _ in range(4):
            scraped = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            assert scraped.status_code == 200
            assert _healthz_count(scraped.text) - before == REQUESTS
        assert len(_writers(metrics_dir)) == 2, "expected two workers writing counters"
    finally:
        server.terminate()
        server.wait(timeout=30)
