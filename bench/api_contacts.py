"""``GET /v1/contacts`` latency with 100,000 contacts in the organization.

Goal (issue 2): an authenticated page of 100 at p95 < 30 ms.

The contacts are imported through the API (so they are real: encrypted, normalized, in
communities), then the planner statistics are refreshed as autovacuum would.  Each request goes
through the whole stack: bearer-token authentication, organization scoping, the page query, the
memberships of the page, JSON.  Phases, all over keep-alive connections:

1. walk: follow ``next_cursor`` from the first page to the last (this collects the cursors);
2. mixed, sequential: first pages, pages at random cursors, and pages filtered by community or
   by language (from the start or from a random cursor), in a fixed shuffled order;
3. mixed, 4 concurrent clients: the same mix, for throughput.

    python -m bench.api_contacts [--contacts 100000] [--requests 1200] [--json out.json]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    Tenant,
    analyze,
    bench_database,
    contact_rows,
    import_csv,
    latency_summary,
    load_average,
    make_tenant,
    mib,
    print_table,
    running_server,
    write_csv,
    write_json,
)

PAGE = 100
CONTACTS = 100_000
REQUESTS = 1_200
CLIENTS = 4
SEED = 20261129
LANGUAGES = ("es", "ht", "en", "fr")

Params = dict[str, str | int]


def _get(client: httpx.Client, tenant: Tenant, params: Params) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    response = client.get("/v1/contacts", params=params, headers=tenant.headers)
    elapsed = time.perf_counter() - start
    if response.status_code != 200:
        raise RuntimeError(f"GET /v1/contacts {params}: {response.status_code} {response.text}")
    page: dict[str, Any] = response.json()
    return elapsed, page


def walk(client: httpx.Client, tenant: Tenant) -> tuple[list[float], list[str], int]:
    """Every page in order; returns the latencies, the cursors met and the contacts seen."""
    latencies: list[float] = []
    cursors: list[str] = []
    seen = 0
    params: Params = {"limit": PAGE}
    while True:
        elapsed, page = _get(client, tenant, params)
        latencies.append(elapsed)
        seen += len(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return latencies, cursors, seen
        cursors.append(cursor)
        params = {"limit": PAGE, "cursor": cursor}


def mixed_plan(
    count: int, tenant: Tenant, cursors: list[str], seed: int
) -> list[tuple[str, Params]]:
    """``count`` requests: a quarter each of first page, random cursor, community, language."""
    rng = random.Random(seed)
    communities = list(tenant.community_ids.values())
    plan: list[tuple[str, Params]] = []
    for i in range(count):
        kind = ("first page", "random cursor", "by community", "by language")[i % 4]
        params: Params = {"limit": PAGE}
        if kind == "random cursor":
            params["cursor"] = rng.choice(cursors)
        elif kind == "by community":
            params["community_id"] = rng.choice(communities)
        elif kind == "by language":
            params["language"] = rng.choice(LANGUAGES)
        if kind.startswith("by ") and rng.random() < 0.5:
            params["cursor"] = rng.choice(cursors)
        plan.append((kind, params))
    rng.shuffle(plan)
    return plan


def run_plan(
    base_url: str, tenant: Tenant, plan: list[tuple[str, Params]]
) -> list[tuple[str, float]]:
    with httpx.Client(base_url=base_url) as client:
        return [(kind, _get(client, tenant, params)[0]) for kind, params in plan]


def measure(contacts: int, requests: int, work: Path) -> dict[str, Any]:
    path = work / "contacts.csv"
    write_csv(path, contact_rows(contacts, seed=SEED, invalid_share=0, duplicate_share=0))
    with bench_database() as url, running_server(url, log_dir=work) as server:
        tenant = make_tenant(url)
        with httpx.Client(base_url=server.base_url) as client:
            seconds, report = import_csv(client, tenant, path)
            print(f"imported {report['created']} contacts in {seconds:.1f} s")
            analyze(url)
            load = load_average()
            for _ in range(20):  # warm-up: connections, compiled statements
                _get(client, tenant, {"limit": PAGE})
            walk_latencies, cursors, seen = walk(client, tenant)
        print(f"walked {len(walk_latencies)} pages, {seen} contacts")

        cpu = server.cpu_seconds()
        sequential = run_plan(server.base_url, tenant, mixed_plan(requests, tenant, cursors, SEED))
        cpu_per_request = (server.cpu_seconds() - cpu) / len(sequential)

        plans = [mixed_plan(requests // CLIENTS, tenant, cursors, SEED + n) for n in range(CLIENTS)]
        concurrent: list[list[tuple[str, float]]] = [[] for _ in range(CLIENTS)]

        def client_thread(n: int) -> None:
            concurrent[n] = run_plan(server.base_url, tenant, plans[n])

        threads = [threading.Thread(target=client_thread, args=(n,)) for n in range(CLIENTS)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        rss = server.rss()

    all_concurrent = [s for results in concurrent for _, s in results]
    by_kind: dict[str, list[float]] = {}
    for kind, s in sequential:
        by_kind.setdefault(kind, []).append(s)
    return {
        "contacts": report["created"],
        "import_seconds": round(seconds, 1),
        "walk": {"requests": len(walk_latencies), **latency_summary(walk_latencies)},
        "sequential": {
            "requests": len(sequential),
            **latency_summary([s for _, s in sequential]),
            "server_cpu_ms_per_request": round(cpu_per_request * 1000, 2),
        },
        "sequential_by_kind": {
            kind: {"requests": len(v), **latency_summary(v)} for kind, v in by_kind.items()
        },
        "concurrent": {
            "clients": CLIENTS,
            "requests": len(all_concurrent),
            "req_per_s": round(len(all_concurrent) / wall, 1),
            **latency_summary(all_concurrent),
        },
        "server_rss_mib": mib(rss),
        "load_before": load,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--contacts", type=int, default=CONTACTS)
    parser.add_argument("--requests", type=int, default=REQUESTS)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="faro-bench-") as tmp:
        results = measure(args.contacts, args.requests, Path(tmp))
    print(f"\nGET /v1/contacts?limit={PAGE} with {results['contacts']} contacts (latency in ms)")
    rows: list[list[object]] = [
        ["walk, sequential", results["walk"]["requests"], "", *_cuts(results["walk"])],
        ["mixed, sequential", results["sequential"]["requests"], "", *_cuts(results["sequential"])],
    ]
    for kind, figures in results["sequential_by_kind"].items():
        rows.append([f"  {kind}", figures["requests"], "", *_cuts(figures)])
    c = results["concurrent"]
    rows.append([f"mixed, {c['clients']} clients", c["requests"], c["req_per_s"], *_cuts(c)])
    print_table(["phase", "requests", "req/s", "p50", "p95", "p99", "max"], rows)
    print(
        f"server CPU per sequential request: {results['sequential']['server_cpu_ms_per_request']} "
        f"ms; load average before: {results['load_before']}"
    )
    write_json(args.json, {"api": results})


def _cuts(figures: dict[str, Any]) -> list[object]:
    return [figures["p50_ms"], figures["p95_ms"], figures["p99_ms"], figures["max_ms"]]


if __name__ == "__main__":
    main()
