"""Run every benchmark and print a summary against the goals (``make bench``).

Each benchmark runs as its own process (``python -m bench.<name>``) from the project root, so
one's server, database and memory never colour another's figures.  This prints figures and the
goal beside each; it never fails on time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ("import_contacts", "api_contacts", "campaign_dispatch")

IMPORT_GOAL_ROWS_PER_S = 5_000
API_GOAL_P95_MS = 30.0


def run(name: str, out: Path) -> dict[str, Any]:
    print(f"\n=== bench.{name} ===", flush=True)
    subprocess.run(
        [sys.executable, "-m", f"bench.{name}", "--json", str(out)], cwd=ROOT, check=True
    )
    figures: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return figures


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> None:
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="faro-bench-") as tmp:
        for name in BENCHMARKS:
            figures.update(run(name, Path(tmp) / f"{name}.json"))

    print("\n=== summary ===")
    for r in figures["import"]:
        print(
            f"import {r['rows']:>7} rows: {r['rows_per_s']:>6} rows/s, "
            f"server RSS {r['rss_baseline_mib']} -> peak {r['rss_peak_mib']} MiB, "
            f"server CPU {r['server_cpu_s']} s, load before {r['load_before']}"
        )
    largest = max(figures["import"], key=lambda r: r["rows"])
    rate = largest["rows_per_s"]
    print(
        f"goal: >= {IMPORT_GOAL_ROWS_PER_S} rows/s on {largest['rows']} rows: {rate} rows/s, "
        f"{verdict(rate >= IMPORT_GOAL_ROWS_PER_S)} ({rate / IMPORT_GOAL_ROWS_PER_S:.0%} of goal)"
    )
    for r in figures["import"]:
        print(f"memory: {r['rows']:>7} rows, peak RSS {r['rss_growth_mib']} MiB over baseline")

    api = figures["api"]
    p95 = api["sequential"]["p95_ms"]
    print(
        f"GET /v1/contacts (100 per page, {api['contacts']} contacts): sequential p50 "
        f"{api['sequential']['p50_ms']} ms, p95 {p95} ms; walk p95 {api['walk']['p95_ms']} ms; "
        f"{api['concurrent']['clients']} clients {api['concurrent']['req_per_s']} req/s, "
        f"p95 {api['concurrent']['p95_ms']} ms"
    )
    print(
        f"server CPU {api['sequential']['server_cpu_ms_per_request']} ms per request; "
        f"load before {api['load_before']}"
    )
    print(f"goal: p95 < {API_GOAL_P95_MS} ms: {p95} ms, {verdict(p95 < API_GOAL_P95_MS)}")

    # Campaign dispatch (issue 5): bench.campaign_dispatch prints its own table and verdicts.
    if "campaign_150ms" in figures:
        loop, slow = figures["loop_150ms"]["per_s"], figures["campaign_150ms"]["per_s"]
        noop, fast = figures["noop_tasks"]["per_s"], figures["campaign_0ms"]["per_s"]
        print(
            f"campaign dispatch: {slow}/s at 150 ms = {slow / loop:.0f}x the sequential loop "
            f"(goal >= 50x: {verdict(slow / loop >= 50)}); {fast}/s at 0 ms = "
            f"{fast / noop:.0%} of no-op tasks (goal >= 50%: {verdict(fast / noop >= 0.5)})"
        )
    if "assistant" in figures:
        print(f"assistant reply p95 during a campaign / idle: {figures['assistant']['p95_ratio']}x")


if __name__ == "__main__":
    main()
