"""The README's run command, for real: `make run` on the embedded default, then a clean stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_make_run_serves_the_demo_and_stops_cleanly(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARO_")} | {
        "FARO_VAR_DIR": str(tmp_path / "var"),
        "FARO_PORT": str(port),
    }
    log = (tmp_path / "run.log").open("w+")
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "run"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp_path / "run.log").read_text()
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "faro did not come up in 120 s"
            time.sleep(0.3)
        ready = httpx.get(f"{base}/readyz", timeout=5).json()
        # SQLite and the embedded Redis (the assistant may still be loading).
        assert (ready["checks"]["database"], ready["checks"]["redis"]) == ("ok", "ok")
        token = (tmp_path / "var" / "demo-token.txt").read_text().strip()
        page = httpx.get(
            f"{base}/v1/contacts?limit=5", headers={"Authorization": f"Bearer {token}"}, timeout=5
        )
        assert page.status_code == 200 and len(page.json()["items"]) == 5
        assert (tmp_path / "var" / "faro.db").exists()
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    output = (tmp_path / "run.log").read_text()
    assert "Faro stopped" in output, output
    redis_pid = int((tmp_path / "var" / "embedded-redis.pid").read_text())
    assert (
        not Path(f"/proc/{redis_pid}").exists()
        or "zombie" in Path(f"/proc/{redis_pid}/status").read_text()
    ), "the embedded Redis outlived faro"
