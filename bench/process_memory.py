"""Memory of one API process and one Celery worker process, for docs/deploy.md's capacity table.

    .venv/bin/python -m bench.process_memory [--requests 1000] [--json out.json]

Starts the real API (``uvicorn api.app:create_app --factory``, one process, as each of the
compose file's API workers is) on a fresh migrated database, sends it a mix of requests (health,
metrics scrape with its database and Redis reads, a rejected ``/v1`` call, a signed inbound
webhook for an unknown number), and a ``faro worker --queues bulk --concurrency 16`` idling
against Redis with its metrics server on.  Prints the resident memory (RSS) of each.  The
assistant's processes are measured in docs/assistant.md (``bench.nlu_parse``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from bench.common import (
    REDIS_URL,
    ROOT,
    _free_port,
    bench_database,
    load_average,
    mib,
    running_server,
)
from bench.common import write_json as save

TOKEN = "bench-metrics-token-0123456789abcdefghij"


def rss_tree(pid: int) -> int:
    process = psutil.Process(pid)
    return sum(p.memory_info().rss for p in (process, *process.children(recursive=True)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--json")
    args = parser.parse_args()
    os.environ["FARO_METRICS_TOKEN"] = TOKEN
    results: dict[str, float] = {"load_before": load_average()}
    with (
        bench_database() as url,
        tempfile.TemporaryDirectory() as tmp,
        running_server(url, log_dir=Path(tmp)) as server,
    ):
        env = {**os.environ, "FARO_DATABASE_URL": url, "FARO_REDIS_URL": REDIS_URL}
        env |= {"FARO_VAR_DIR": tmp, "FARO_LOG_LEVEL": "WARNING"}
        env["FARO_METRICS_PORT"] = str(_free_port())  # as in docker-compose.yml
        faro = str(Path(sys.executable).with_name("faro"))
        worker = subprocess.Popen(
            [faro, "worker", "--queues", "bulk", "--concurrency", "16"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            with httpx.Client(base_url=server.base_url, timeout=10) as client:
                scrape = {"Authorization": f"Bearer {TOKEN}"}
                for n in range(args.requests):
                    match n % 4:
                        case 0:
                            client.get("/healthz")
                        case 1:
                            client.get("/metrics", headers=scrape)
                        case 2:
                            client.get("/v1/contacts", headers={"Authorization": "Bearer x"})
                        case _:
                            client.post("/webhooks/twilio/messages", data={"Body": "hola"})
            time.sleep(10)  # the worker has connected and settled
            results["api_rss_mib"] = mib(rss_tree(server.pid))
            results["worker_rss_mib"] = mib(rss_tree(worker.pid))
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    results["load_after"] = load_average()
    print(
        f"API process after {args.requests} requests: {results['api_rss_mib']:.0f} MiB; "
        f"faro worker (bulk, 16 threads), idle: {results['worker_rss_mib']:.0f} MiB; "
        f"load {results['load_before']:.1f} -> {results['load_after']:.1f}"
    )
    save(args.json, dict(results))


if __name__ == "__main__":
    main()
