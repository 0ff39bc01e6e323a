"""The health checks docker-compose.yml gives the workers and beat, run for real: against a
running ``faro worker`` and ``faro beat`` they pass, and with nothing running they fail.

The commands are taken from the compose file as written, ``$HOSTNAME`` being this machine's
name as it is a container's.  They use a Redis database of their own so that no other worker
can answer for the ones started here.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_lib

from tests.deploy.files import services

HEALTH_REDIS_DB = 9


def _health_command(service: str) -> list[str]:
    test = services()[service]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    shell = test[1].replace("$$HOSTNAME", socket.gethostname())
    argv = shlex.split(shell)
    return [str(Path(sys.executable).with_name(argv[0])), *argv[1:]]


@pytest.fixture
def env(tmp_path: Path, redis_url: str) -> Iterator[dict[str, str]]:
    url = f"{redis_url.rsplit('/', 1)[0]}/{HEALTH_REDIS_DB}"
    client = redis_lib.Redis.from_url(url)
    client.flushdb()
    yield {
        **{k: v for k, v in os.environ.items() if not k.startswith("FARO_")},
        "FARO_REDIS_URL": url,
        "FARO_VAR_DIR": str(tmp_path),
        "FARO_LOG_LEVEL": "WARNING",
    }
    client.flushdb()
    client.close()


def _passes(command: list[str], env: dict[str, str]) -> bool:
    done = subprocess.run(command, env=env, capture_output=True, timeout=60, check=False)
    return done.returncode == 0


@pytest.mark.slow
def test_worker_and_beat_health_checks_pass_only_while_they_run(env: dict[str, str]) -> None:
    worker_check, beat_check = _health_command("worker-bulk"), _health_command("beat")
    assert not _passes(worker_check, env), "a worker answered before any was started"
    assert not _passes(beat_check, env), "a beat answered before any was started"
    faro = str(Path(sys.executable).with_name("faro"))
    started = [
        subprocess.Popen(
            [faro, *argv], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for argv in (["worker", "--queues", "bulk", "--concurrency", "2"], ["beat"])
    ]
    try:
        deadline = time.monotonic() + 60
        while not (_passes(worker_check, env) and _passes(beat_check, env)):
            assert all(p.poll() is None for p in started), "the worker or beat exited"
            assert time.monotonic() < deadline, "no answer to the health checks within 60 s"
            time.sleep(1)
    finally:
        for process in started:
            process.terminate()
        for process in started:
            process.wait(timeout=30)
