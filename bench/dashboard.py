"""Server time of the dashboard's overview page (issue 6 goal: p95 < 150 ms).

A fresh database gets rollup rows shaped like a large installation (written straight into the
rollup tables with ``generate_series``: the page reads only those), a user signs in through the
real form, then ``GET /dashboard`` is timed over keep-alive connections on loopback, with the
default 30-day range and with a community filter.  ``bench/analytics.py`` (the backend's) times
the JSON API on rollups built from 5,000,000 real events.

    python -m bench.dashboard [--communities 50] [--days 120] [--requests 50] [--json out.json]
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select, text

from bench.common import (
    analyze,
    bench_database,
    latency_summary,
    load_average,
    print_table,
    running_server,
    write_json,
)
from campaigns.analytics.models import CampaignDay, CommunityDay, PollDay, TopicDay
from campaigns.communities import create_community
from campaigns.db import make_engine, make_sessionmaker, unit_of_work
from campaigns.organizations.models import Role
from campaigns.organizations.service import create_organization, create_user
from campaigns.topics import TOPICS

PASSWORD = "bench password for the dashboard"
EMAIL = "viewer@bench.example.org"


def seed(url: str, *, communities: int, days: int) -> dict[str, int]:
    """Rollup rows for ``communities`` communities over the last ``days`` days."""
    engine = make_engine(url)
    with unit_of_work(make_sessionmaker(engine)) as session:
        org = create_organization(session, name="Bench dashboard", country="MX")
        create_user(
            session, organization_id=org.id, email=EMAIL, role=Role.viewer, password=PASSWORD
        )
        ids = [
            create_community(
                session,
                organization_id=org.id,
                name=f"Comunidad {i:02d}",
                country="MX",
                timezone="America/Mexico_City",
                default_language="es",
            ).id
            for i in range(communities)
        ]
        org_id = org.id
    topics = list(TOPICS)
    params = {
        "org": org_id,
        "lo": min(ids),
        "hi": max(ids),
        "n": len(ids),
        "days": days,
        "topics": topics,
    }
    with engine.begin() as conn:
        conn.execute(
            text(
                """
                INSERT INTO analytics_community_day (organization_id, community_id, day,
                  active_contacts, new_contacts, opted_out, conversations, turns, unanswered,
                  handovers_opened, handovers_closed)
                SELECT :org, c, current_date - d, 40 + (c * 7 + d) % 60, (c + d) % 9, (c * d) % 3,
                       20 + (c + d) % 30, 80 + (c * d) % 90, (c + 2 * d) % 12, d % 3, d % 2
                FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) c,
                     generate_series(0, CAST(:days AS integer) - 1) d
                """
            ),
            params,
        )
        conn.execute(
            text(
                """
                INSERT INTO analytics_topic_day (organization_id, community_id, day, topic,
                  language, questions, unanswered, feedback_yes, feedback_no)
                SELECT :org, c, current_date - d, t, l, 1 + (c + d + length(t)) % 11,
                       (c + d) % 3, (c + d + length(t)) % 4, (c * d) % 2
                FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) c,
                     generate_series(0, CAST(:days AS integer) - 1) d,
                     unnest(CAST(:topics AS text[])) t, unnest(ARRAY['es','en','ht','fr']) l
                """
            ),
            params,
        )
        # 200 campaigns, each to 5 communities in 2 languages, each sending for 14 days.
        conn.execute(
            text(
                """
                INSERT INTO analytics_campaign_day (organization_id, campaign_id, community_id,
                  language, day, targeted, sent, delivered, read, failed, replies, clicks,
                  opt_outs, segments, cost)
                SELECT :org, k,
                       CAST(:lo AS bigint) + (k * 5 + j) % CAST(:n AS bigint),
                       l,
                       current_date - ((k % GREATEST(CAST(:days AS integer) - 14, 1)) + d),
                       300, 297, 280, 190, 17, 25 + k % 20, 11, k % 4, 297, 0
                FROM generate_series(1, 200) k, generate_series(0, 4) j,
                     unnest(ARRAY['es','ht']) l, generate_series(0, 13) d
                """
            ),
            params,
        )
        conn.execute(
            text(
                """
                INSERT INTO analytics_poll_day (organization_id, campaign_id, community_id,
                  language, day, option_number, answers)
                SELECT :org, k,
                       CAST(:lo AS bigint) + (k * 5 + j) % CAST(:n AS bigint),
                       'es',
                       current_date - ((k % GREATEST(CAST(:days AS integer) - 14, 1)) + d), o,
                       3 + (k + o + d) % 17
                FROM generate_series(1, 200, 4) k, generate_series(0, 4) j,
                     generate_series(0, 13) d, generate_series(1, 3) o
                """
            ),
            params,
        )
    counts = {}
    with engine.connect() as conn:
        for model in (CommunityDay, TopicDay, CampaignDay, PollDay):
            counts[model.__tablename__] = int(
                conn.execute(select(func.count()).select_from(model)).scalar_one()
            )
    engine.dispose()
    analyze(url)
    return {"first_community": min(ids), **counts}


def sign_in(client: httpx.Client) -> None:
    form = client.get("/dashboard/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf, "no CSRF field on the sign-in form"
    r = client.post(
        "/dashboard/login", data={"email": EMAIL, "password": PASSWORD, "csrf": csrf.group(1)}
    )
    assert r.status_code == 303, f"sign-in failed: {r.status_code}"


def timed(client: httpx.Client, path: str, n: int) -> list[float]:
    for _ in range(3):  # warm-up: connections, template compilation, plan caches
        client.get(path)
    seconds = []
    for _ in range(n):
        start = time.perf_counter()
        r = client.get(path)
        seconds.append(time.perf_counter() - start)
        assert r.status_code == 200, f"{path}: {r.status_code}"
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--communities", type=int, default=50)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    results: dict[str, Any] = {"load_average_before": load_average()}
    with bench_database() as url, tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        sizes = seed(url, communities=args.communities, days=args.days)
        results["seed_seconds"] = round(time.perf_counter() - start, 1)
        results["rows"] = {k: v for k, v in sizes.items() if k != "first_community"}
        with (
            running_server(url, log_dir=Path(tmp)) as server,
            httpx.Client(base_url=server.base_url, timeout=30) as client,
        ):
            sign_in(client)
            cases = {
                "overview, 30 days, all communities": "/dashboard",
                "overview, 30 days, one community": (
                    f"/dashboard?community_id={sizes['first_community']}"
                ),
                "community page, 30 days": f"/dashboard/communities/{sizes['first_community']}",
            }
            rows = []
            for name, path in cases.items():
                summary = latency_summary(timed(client, path, args.requests))
                results[name] = summary
                rows.append([name, summary["p50_ms"], summary["p95_ms"], summary["max_ms"]])
    results["load_average_after"] = load_average()
    print("rows:", ", ".join(f"{k} {v:,}" for k, v in results["rows"].items()))
    print_table(["page", "p50 ms", "p95 ms", "max ms"], rows)
    print(
        f"load average before {results['load_average_before']}, after "
        f"{results['load_average_after']}"
    )
    write_json(args.json, results)


if __name__ == "__main__":
    main()
