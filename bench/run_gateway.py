"""Run the gateway benchmarks of issue 3 and print a summary against the goals.

Each benchmark runs as its own process (``python -m bench.<name>``) from the project root, with
its own database, server and fake Twilio, and the Redis database 11 flushed before and after.
This prints figures and the goal beside each; it never fails on time.

    python -m bench.run_gateway [--quick] [--json out.json]

``--quick`` shortens every run (20 s instead of 60 s, fewer messages) to check the scripts.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import load_average, write_json

ROOT = Path(__file__).resolve().parent.parent

INBOUND_GOAL_P99_MS = 50.0
STATUS_GOAL_PER_S = 1_000.0
SENDER_GOAL_PER_S = 500.0
LIMIT_TOLERANCE = 0.05


def run(name: str, out: Path, args: list[str]) -> dict[str, Any]:
    print(f"\n=== bench.{name} {' '.join(args)} (load {load_average()}) ===", flush=True)
    subprocess.run(
        [sys.executable, "-m", f"bench.{name}", *args, "--json", str(out)], cwd=ROOT, check=True
    )
    figures: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return figures


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short runs, to check the scripts")
    parser.add_argument("--json", help="also write all the figures to this file")
    args = parser.parse_args()
    inbound_args = ["--duration", "20"] if args.quick else ["--ramp"]
    status_args = ["--messages", "1500"] if args.quick else []
    sender_args = ["--messages", "2000", "--rate-seconds", "10"] if args.quick else []
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="faro-bench-") as tmp:
        figures |= run("webhook_inbound", Path(tmp) / "inbound.json", inbound_args)
        figures |= run("status_callbacks", Path(tmp) / "status.json", status_args)
        figures |= run("sender", Path(tmp) / "sender.json", sender_args)
    summary(figures)
    write_json(args.json, figures)


def summary(figures: dict[str, Any]) -> None:
    print("\n=== summary (issue 3) ===")
    for r in figures["webhook_inbound"]:
        s = r["storage"]
        p99 = r.get("p99_ms", float("inf"))
        exact = s["missing"] == 0 and s["duplicates_stored"] == 0
        print(
            f"inbound webhook, {r['workers']} worker(s), {r['offered_rate']:g}/s for "
            f"{r['duration_s']:g} s: p50 {r.get('p50_ms')} p99 {p99} ms, answered "
            f"{r['answered_per_s']}/s, codes {r['status_codes']}; offered {s['offered_distinct']} "
            f"stored {s['stored_distinct']} missing {s['missing']} duplicates "
            f"{s['duplicates_stored']}; load {r['load_before']}->{r['load_after']}"
        )
        print(
            f"  goal p99 < {INBOUND_GOAL_P99_MS:g} ms: {verdict(p99 < INBOUND_GOAL_P99_MS)}; "
            f"every message stored exactly once: {verdict(exact)}"
        )
        sustained = [
            step["offered_rate"]
            for step in r["ramp"]
            if step.get("p99_ms", float("inf")) < INBOUND_GOAL_P99_MS
            and step["answered_per_s"] >= 0.98 * step["offered_rate"]
        ]
        if r["ramp"]:
            print(f"  ramp: highest rate with p99 < 50 ms: {max(sustained, default='none')}")
    for r in figures["status_callbacks"]:
        c = r["check"]
        ok = r["per_s"] >= STATUS_GOAL_PER_S and c["events_lost"] == 0
        print(
            f"status callbacks, {r['workers']} worker(s): {r['per_s']}/s, p99 {r['p99_ms']} ms, "
            f"events lost {c['events_lost']}, wrong final status {c['messages_wrong_status']}; "
            f"goal >= {STATUS_GOAL_PER_S:g}/s with none lost: {verdict(ok)} "
            f"({r['per_s'] / STATUS_GOAL_PER_S:.0%})"
        )
    sender = figures["sender"]
    for latency in sorted({r["latency_s"] for r in sender.get("unthrottled", [])}):
        rows = [r for r in sender["unthrottled"] if r["latency_s"] == latency]
        best = max(rows, key=lambda r: r["per_s"])
        print(
            f"sender unthrottled, latency {latency:g} s: "
            + ", ".join(f"{r['mode']} x{r['parallel']} {r['per_s']}/s" for r in rows)
            + f"; goal >= {SENDER_GOAL_PER_S:g}/s per process: "
            f"{verdict(best['per_s'] >= SENDER_GOAL_PER_S)}"
        )
    for r in sender.get("limited", []):
        ok = abs(r["error_pct"]) <= LIMIT_TOLERANCE * 100
        print(
            f"sender limited to {r['limit']:g}/s over {r['processes']} processes: observed "
            f"{r['rate']}/s ({r['error_pct']:+}%), busiest second {r['busiest_1s']}; "
            f"goal within ±{LIMIT_TOLERANCE:.0%}: {verdict(ok)}"
        )
    if "baseline" in sender:
        b = sender["baseline"]
        print(f"baseline: sequential messages.create at {b['latency_s']} s: {b['per_s']}/s")


if __name__ == "__main__":
    main()
