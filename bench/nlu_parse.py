"""The assistant's NLU: Rasa server start-up, memory, and ``POST /model/parse`` latency.

Starts ``rasa run --enable-api`` from the bot's own environment on the trained model (as
``faro run`` does, without the channel traffic), waits until the model is loaded, samples the
server's RSS, then parses the held-out questions (never seen in training) round-robin over one
keep-alive connection, then with 4 concurrent clients. Prints figures; asserts nothing.

    python -m bench.nlu_parse [--requests 600] [--model bot/models/current.tar.gz]
    python -m bench.nlu_parse --url http://127.0.0.1:5005   # a server already running

Needs ``make bot-train`` first (the model) and nothing else: no database, no action server.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.common import (
    ROOT,
    _free_port,
    latency_summary,
    load_average,
    mib,
    print_table,
    write_json,
)

RASA = ROOT / "bot" / ".venv" / "bin" / "rasa"
HELDOUT = ROOT / "bot" / "tests" / "nlu_heldout.yml"
DEFAULT_MODEL = ROOT / "bot" / "models" / "current.tar.gz"
WARMUP = 20
CONCURRENCY = 4


def heldout_texts() -> list[str]:
    """The example lines of the held-out file (``    - text``), without a YAML parser."""
    texts = []
    for line in HELDOUT.read_text(encoding="utf-8").splitlines():
        if line.startswith("    - "):
            texts.append(line[6:].strip())
    return texts


def start_server(model: Path, port: int, log: Path) -> tuple[subprocess.Popen[bytes], float]:
    env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false"}
    cmd = [str(RASA), "run", "--enable-api", "--port", str(port), "-m", str(model)]
    started = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = started + 300
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"rasa exited with {proc.returncode}; see {log}")
        try:
            if httpx.get(f"{url}/status", timeout=2).status_code == 200:
                return proc, time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    proc.kill()
    raise SystemExit(f"rasa did not load the model within 300 s; see {log}")


def rss_bytes(pid: int) -> int:
    proc = psutil.Process(pid)
    return int(sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]))


def sequential(url: str, texts: list[str], n: int) -> list[float]:
    timings = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for text in texts[:WARMUP]:
            client.post("/model/parse", json={"text": text}).raise_for_status()
        for i in range(n):
            t0 = time.perf_counter()
            client.post("/model/parse", json={"text": texts[i % len(texts)]}).raise_for_status()
            timings.append(time.perf_counter() - t0)
    return timings


def concurrent(url: str, texts: list[str], n: int) -> tuple[list[float], float]:
    timings: list[float] = []
    lock = threading.Lock()

    def worker(offset: int) -> None:
        mine = []
        with httpx.Client(base_url=url, timeout=30) as client:
            for i in range(offset, n, CONCURRENCY):
                t0 = time.perf_counter()
                resp = client.post("/model/parse", json={"text": texts[i % len(texts)]})
                resp.raise_for_status()
                mine.append(time.perf_counter() - t0)
        with lock:
            timings.extend(mine)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(CONCURRENCY)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return timings, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--url", help="use this running Rasa server instead of starting one")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()

    texts = heldout_texts()
    results: dict[str, Any] = {
        "machine": f"{platform.node()} {os.cpu_count()} CPUs",
        "load_average_before": load_average(),
        "requests": args.requests,
    }
    proc = None
    with tempfile.TemporaryDirectory(prefix="faro-bench-nlu-") as tmp:
        try:
            if args.url:
                url = args.url.rstrip("/")
            else:
                port = _free_port()
                url = f"http://127.0.0.1:{port}"
                proc, startup = start_server(args.model, port, Path(tmp) / "rasa.log")
                results["startup_s"] = round(startup, 1)
                results["rss_after_load_mib"] = mib(rss_bytes(proc.pid))
                results["model_mib"] = mib(args.model.stat().st_size)

            results["sequential"] = latency_summary(sequential(url, texts, args.requests))
            timings, wall = concurrent(url, texts, args.requests)
            results["concurrent"] = {
                **latency_summary(timings),
                "throughput_per_s": round(args.requests / wall, 1),
            }
            if proc is not None:
                results["rss_after_parses_mib"] = mib(rss_bytes(proc.pid))
        finally:
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()

    results["load_average_after"] = load_average()
    print(f"machine: {results['machine']}; load average before {results['load_average_before']}")
    for key in ("startup_s", "model_mib", "rss_after_load_mib", "rss_after_parses_mib"):
        if key in results:
            print(f"{key}: {results[key]}")
    rows = []
    for phase in ("sequential", "concurrent"):
        s = results[phase]
        rows.append(
            [phase, args.requests, s["p50_ms"], s["p95_ms"], s["p99_ms"], s["max_ms"],
             s.get("throughput_per_s", "")]
        )  # fmt: skip
    print_table(["phase", "requests", "p50 ms", "p95 ms", "p99 ms", "max ms", "req/s"], rows)
    write_json(args.json, results)


if __name__ == "__main__":
    main()
