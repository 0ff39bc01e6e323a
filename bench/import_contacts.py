"""Contact import through the real API: rows per second and the server's peak memory.

Goal (issue 2): at least 5,000 rows/s for a 100,000-row CSV on PostgreSQL, encryption and
normalization included, with memory that stays flat as the file grows.

For each size (10k, 50k, 100k rows) a fresh server is started, warmed up with a small import
(so phone metadata and compiled SQL are loaded), its RSS is read as the baseline, and the file
is streamed from disk to ``POST /v1/contacts/import`` for a fresh organization while a thread
samples the server's RSS every 10 ms.  The wall clock covers the upload and the import.

``--profile`` runs the importer in-process on the largest file under cProfile instead, and
prints where the time goes.

    python -m bench.import_contacts [--sizes 10000,50000,100000] [--json out.json] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    RssSampler,
    bench_database,
    contact_rows,
    import_csv,
    load_average,
    make_tenant,
    mib,
    print_table,
    running_server,
    write_csv,
    write_json,
)

SIZES = (10_000, 50_000, 100_000)
WARM_UP_ROWS = 300
SEED = 20261128


def measure(sizes: tuple[int, ...], work: Path) -> list[dict[str, Any]]:
    started = time.perf_counter()
    rows = contact_rows(max(sizes), seed=SEED)
    files = {}
    for size in sizes:
        path = work / f"contacts-{size}.csv"
        files[size] = (path, write_csv(path, rows[:size]))
    warm_up = work / "warm-up.csv"
    write_csv(warm_up, contact_rows(WARM_UP_ROWS, seed=SEED + 1))
    print(f"generated {len(sizes)} CSVs in {time.perf_counter() - started:.1f} s")

    results = []
    with bench_database() as url:
        for size in sizes:
            path, n_bytes = files[size]
            with (
                running_server(url, log_dir=work) as server,
                httpx.Client(base_url=server.base_url) as client,
            ):
                cold = server.rss()
                import_csv(client, make_tenant(url), warm_up)
                baseline = server.rss()
                tenant = make_tenant(url)
                load = load_average()
                cpu = server.cpu_seconds()
                with RssSampler(server.pid) as sampler:
                    seconds, report = import_csv(client, tenant, path)
                cpu = server.cpu_seconds() - cpu
                after = server.rss()
            result = {
                "rows": size,
                "file_mib": mib(n_bytes),
                "seconds": round(seconds, 2),
                "rows_per_s": round(size / seconds),
                "created": report["created"],
                "merged": report["merged"],
                "rejected": report["rejected"],
                "rss_cold_mib": mib(cold),
                "rss_baseline_mib": mib(baseline),
                "rss_peak_mib": mib(sampler.peak),
                "rss_growth_mib": mib(sampler.peak - baseline),
                "rss_after_mib": mib(after),
                "rss_samples": sampler.samples,
                "server_cpu_s": round(cpu, 2),
                "load_before": load,
            }
            results.append(result)
            print(
                f"{size:>7} rows: {result['seconds']} s, {result['rows_per_s']} rows/s, "
                f"peak RSS {result['rss_peak_mib']} MiB (baseline {result['rss_baseline_mib']}), "
                f"server CPU {result['server_cpu_s']} s, load before {load}"
            )
    return results


def profile(size: int, work: Path) -> str:
    """The importer in-process on ``size`` rows, in a session scoped as the API scopes it, under
    cProfile, with the time of each SQL statement kind; returns the summary."""
    from sqlalchemy import event

    from campaigns.contacts.importer import import_contacts
    from campaigns.crypto import AddressCipher
    from campaigns.db import make_engine, make_sessionmaker, scope_session, unit_of_work
    from campaigns.settings import Settings

    path = work / f"profile-{size}.csv"
    write_csv(path, contact_rows(size, seed=SEED))
    sql: dict[str, list[float]] = {}
    profiler = cProfile.Profile()
    with bench_database() as url:
        tenant = make_tenant(url)
        engine = make_engine(url)

        @event.listens_for(engine, "before_cursor_execute")
        def _started(conn: Any, *args: Any) -> None:
            conn.info["bench_started"] = time.perf_counter()

        @event.listens_for(engine, "after_cursor_execute")
        def _ended(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            kind = " ".join(statement.split())[:60]
            sql.setdefault(kind, []).append(time.perf_counter() - conn.info["bench_started"])

        cipher = AddressCipher.from_settings(Settings(database_url=url))
        try:
            with unit_of_work(make_sessionmaker(engine)) as session, path.open("rb") as stream:
                scope_session(session, tenant.organization_id)
                start = time.perf_counter()
                profiler.enable()
                import_contacts(
                    session, cipher=cipher, organization_id=tenant.organization_id, stream=stream
                )
                profiler.disable()
                seconds = time.perf_counter() - start
        finally:
            engine.dispose()
    out = io.StringIO()
    out.write(f"{size} rows in-process under cProfile: {seconds:.2f} s\n\n")
    out.write(
        "SQL by statement (seconds in cursor.execute, calls, first and slowest call in ms):\n"
    )
    for kind, times in sorted(sql.items(), key=lambda kv: -sum(kv[1])):
        first, slowest = times[0] * 1000, max(times) * 1000
        out.write(f"{sum(times):8.2f} s {len(times):5}  {first:7.1f} {slowest:7.1f}  {kind}\n")
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(15)
    stats.sort_stats("cumulative").print_stats(25)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--profile", action="store_true", help="cProfile the importer instead")
    args = parser.parse_args()
    sizes = tuple(int(s) for s in args.sizes.split(","))
    with tempfile.TemporaryDirectory(prefix="faro-bench-") as tmp:
        if args.profile:
            print(profile(max(sizes), Path(tmp)))
            return
        results = measure(sizes, Path(tmp))
    print("\nContact import (POST /v1/contacts/import, PostgreSQL, one server per size)")
    print_table(
        [
            "rows",
            "MiB",
            "s",
            "rows/s",
            "created",
            "merged",
            "rejected",
            "RSS base",
            "RSS peak",
            "server CPU s",
        ],
        [
            [
                r["rows"],
                r["file_mib"],
                r["seconds"],
                r["rows_per_s"],
                r["created"],
                r["merged"],
                r["rejected"],
                r["rss_baseline_mib"],
                r["rss_peak_mib"],
                r["server_cpu_s"],
            ]
            for r in results
        ],
    )
    write_json(args.json, {"import": results})


if __name__ == "__main__":
    main()
