"""Analytics at scale: 5,000,000 status events and 500,000 turns, rolled up and served.

    python -m bench.analytics [--events 5000000] [--turns 500000] [--requests 50] [--json out]

In a fresh PostgreSQL database (dropped at the end): generates the events with set-based SQL
(``bench/analytics_data.py``), times a full rollup pass from scratch, then an incremental pass
after 10,000 new status events, then measures every ``/v1/analytics`` endpoint over real HTTP
(uvicorn child process, httpx, ``--requests`` sequential requests each after 5 warm-ups) and, if
the dashboard is there, its overview page: answered from the per-pass cache (the same request
repeated), and computed (a new pass counted before each request), as an admin and a viewer.  Prints
figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select, update

from bench.analytics_data import add_status_events, generate
from bench.common import (
    analyze,
    bench_database,
    latency_summary,
    load_average,
    print_table,
    running_server,
    write_json,
)
from campaigns.analytics import models as am
from campaigns.analytics.cache import COUNTER_SOURCE
from campaigns.analytics.rollup import run_rollup
from campaigns.db import make_engine, make_sessionmaker, unit_of_work, utcnow
from campaigns.organizations.models import Role, User
from campaigns.organizations.service import create_user, hash_password, issue_token

ENDPOINTS = (
    "/v1/analytics/overview",
    "/v1/analytics/campaigns",
    "/v1/analytics/campaigns/failures",
    "/v1/analytics/communities",
    "/v1/analytics/communities?by=day",
    "/v1/analytics/topics",
    "/v1/analytics/topics?by=day",
    "/v1/analytics/polls",
    "/v1/analytics/unanswered",
    "/v1/analytics/alerts",
    "/v1/analytics/stale-knowledge",
    "/v1/analytics/feedback",
)
PASSWORD = "bench-password-not-a-secret"


def _rollup(url: str) -> tuple[float, int]:
    """One pass in its own transaction (as the beat task runs it): seconds, source rows read."""
    engine = make_engine(url, pool_size=1, max_overflow=0)
    try:
        started = time.perf_counter()
        with unit_of_work(make_sessionmaker(engine)) as session:
            report = run_rollup(session, settle_seconds=0)
        seconds = time.perf_counter() - started
        print(f"  steps (s): {report.seconds}")
        return seconds, report.rows_read
    finally:
        engine.dispose()


def _table_sizes(url: str) -> dict[str, int]:
    engine = make_engine(url, pool_size=1, max_overflow=0)
    sizes = {}
    try:
        with make_sessionmaker(engine)() as session:
            for model in (am.CampaignDay, am.CommunityDay, am.TopicDay, am.MessageStage):
                sizes[model.__tablename__] = int(
                    session.scalar(select(func.count()).select_from(model)) or 0
                )
            session.commit()
            with session.begin():
                # The dashboard signs in with a password (the API uses the bearer token).
                session.execute(update(User).values(password_hash=hash_password(PASSWORD)))
    finally:
        engine.dispose()
    return sizes


def _measure(
    client: httpx.Client,
    path: str,
    requests: int,
    *,
    new_pass: Callable[[], None] | None = None,
    **kw: Any,
) -> dict[str, float]:
    """``requests`` sequential GETs after 5 warm-ups.  The API keeps a result until the next
    rollup pass; with ``new_pass`` (which counts one more pass, as a pass that found new
    events does) before every request, none is answered from that cache: the cost of the
    first request after a pass."""
    seconds = []
    for i in range(requests + 5):
        if new_pass is not None:
            new_pass()
        started = time.perf_counter()
        r = client.get(path, **kw)
        if i >= 5:
            seconds.append(time.perf_counter() - started)
        r.raise_for_status()
    return latency_summary(seconds)


@contextmanager
def _pass_counter(url: str) -> Iterator[Callable[[], None]]:
    """A function that counts one more rollup pass (the number the API's cache is keyed on)."""
    engine = make_engine(url, pool_size=1, max_overflow=0)
    bump = (
        update(am.Watermark)
        .where(am.Watermark.source == COUNTER_SOURCE)
        .values(last_id=am.Watermark.last_id + 1)
    )
    try:
        with engine.connect() as conn:

            def new_pass() -> None:
                conn.execute(bump)
                conn.commit()

            yield new_pass
    finally:
        engine.dispose()


def _viewer_token(url: str, organization_id: int) -> str:
    """A communicator's token: their responses are suppressed, an admin's are exact."""
    engine = make_engine(url, pool_size=1, max_overflow=0)
    try:
        with unit_of_work(make_sessionmaker(engine)) as session:
            user = create_user(
                session,
                organization_id=organization_id,
                email="viewer@bench.example.org",
                role=Role.viewer,
            )
            _, token = issue_token(session, user=user, name="bench-viewer")
            return token
    finally:
        engine.dispose()


def _dashboard_login(client: httpx.Client) -> bool:
    form = client.get("/dashboard/login")
    if form.status_code == 404:
        return False
    match = re.search(r'name="csrf" value="([^"]+)"', form.text)
    if match is None:
        return False
    r = client.post(
        "/dashboard/login",
        data={"email": "admin@bench.example.org", "password": PASSWORD, "csrf": match.group(1)},
    )
    return r.status_code in (200, 303)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--turns", type=int, default=500_000)
    parser.add_argument("--contacts", type=int, default=250_000)
    parser.add_argument("--new-events", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--json")
    args = parser.parse_args()
    results: dict[str, Any] = {"date": utcnow().isoformat(), "args": vars(args)}
    with bench_database() as url:
        started = time.perf_counter()
        data = generate(url, status_events=args.events, turns=args.turns, contacts=args.contacts)
        results["generate_s"] = round(time.perf_counter() - started, 1)
        results["generated_rows"] = data.counts
        results["generate_steps_s"] = data.seconds
        analyze(url)
        print(f"generated in {results['generate_s']} s: {data.counts}")

        seconds, rows = _rollup(url)
        results["full_pass_s"] = round(seconds, 2)
        results["full_pass_rows_read"] = rows
        print(f"full rollup pass: {seconds:.2f} s ({rows} source rows)")
        seconds, rows = _rollup(url)
        results["empty_pass_s"] = round(seconds, 3)
        print(f"pass with nothing new: {seconds:.3f} s")

        insert_s = add_status_events(
            url, organization_id=data.organization_id, n=args.new_events, at=utcnow()
        )
        seconds, rows = _rollup(url)
        results["incremental_pass_s"] = round(seconds, 3)
        results["incremental_rows_read"] = rows
        print(
            f"incremental pass after {args.new_events} new events: {seconds:.3f} s "
            f"({rows} rows read; inserting them took {insert_s:.2f} s)"
        )
        results["rollup_rows"] = _table_sizes(url)
        analyze(url)

        admin = {"Authorization": f"Bearer {data.token}"}
        viewer = {"Authorization": f"Bearer {_viewer_token(url, data.organization_id)}"}
        # Per endpoint: admin (exact counts) answered from the pass cache, admin and viewer
        # (suppressed) with every request a new range, so computed.
        series: dict[str, dict[str, dict[str, float]]] = {
            "admin_cached": {},
            "admin_fresh": {},
            "viewer_fresh": {},
        }
        loads: list[float] = []
        with (
            tempfile.TemporaryDirectory() as log_dir,
            running_server(url, log_dir=Path(log_dir)) as server,
            httpx.Client(base_url=server.base_url, timeout=60) as client,
            _pass_counter(url) as new_pass,
        ):
            csv_path = "/v1/analytics/campaigns?format=csv"
            for path in (*ENDPOINTS, csv_path):
                for name, headers, bump in (
                    ("admin_cached", admin, None),
                    ("admin_fresh", admin, new_pass),
                    ("viewer_fresh", viewer, new_pass),
                ):
                    series[name][path] = _measure(
                        client, path, args.requests, new_pass=bump, headers=headers
                    )
                loads.append(load_average())
            if _dashboard_login(client):
                page = "/dashboard (client)"
                series["admin_cached"][page] = _measure(client, "/dashboard", args.requests)
                series["admin_fresh"][page] = _measure(
                    client, "/dashboard", args.requests, new_pass=new_pass
                )
                loads.append(load_average())
        results["latency"] = series
        results["load_average"] = load_average()
        results["load_average_during_http"] = loads
    print_table(
        ["endpoint", "cached p50", "p95", "fresh p50", "p95", "p99", "viewer p50", "p95"],
        [
            [
                path,
                cached["p50_ms"],
                cached["p95_ms"],
                series["admin_fresh"][path]["p50_ms"],
                series["admin_fresh"][path]["p95_ms"],
                series["admin_fresh"][path]["p99_ms"],
                series["viewer_fresh"].get(path, {}).get("p50_ms", "-"),
                series["viewer_fresh"].get(path, {}).get("p95_ms", "-"),
            ]
            for path, cached in series["admin_cached"].items()
        ],
    )
    print(
        f"rollup tables: {results['rollup_rows']}; load average {results['load_average']} "
        f"(during HTTP: {min(loads)} to {max(loads)})"
    )
    write_json(args.json, results)


if __name__ == "__main__":
    main()
