"""What counting a request costs on the hot path (``campaigns.metrics.observe_request``).

    .venv/bin/python -m bench.metrics_overhead [--calls 200000]

Runs the call the request middleware makes for every request, in this process (one API worker)
and again in a child process with ``PROMETHEUS_MULTIPROC_DIR`` set (several API workers, as
docker-compose.yml runs them).  Prints microseconds per request, best of three rounds.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from bench.common import load_average


def per_call_us(calls: int) -> float:
    from campaigns.metrics import observe_request

    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(calls):
            observe_request("POST", "/webhooks/twilio/messages", 200, 0.004)
        best = min(best, (time.perf_counter() - start) / calls * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(f"{per_call_us(args.calls):.2f}")
        return
    load = load_average()
    with tempfile.TemporaryDirectory() as directory:
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": directory}
        env.pop("FARO_METRICS_TOKEN", None)
        single = subprocess.run(
            [sys.executable, "-m", "bench.metrics_overhead", "--child", f"--calls={args.calls}"],
            env={k: v for k, v in env.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        multi = subprocess.run(
            [sys.executable, "-m", "bench.metrics_overhead", "--child", f"--calls={args.calls}"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    print(
        f"observe_request: {single} us per request in one process, {multi} us in multiprocess "
        f"mode (best of 3 x {args.calls:,} calls; load {load} -> {load_average()})"
    )


if __name__ == "__main__":
    main()
