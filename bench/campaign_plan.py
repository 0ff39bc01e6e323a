"""Planning a 100,000-recipient run on PostgreSQL: one INSERT … SELECT, timed.

    python -m bench.campaign_plan [--contacts 100000]

Creates a throwaway database, bulk-inserts contacts (set-based SQL), launches an
announcement to their community and times ``plan_run``.  Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
import uuid

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.common import PG_ADMIN_URL
from campaigns.db import make_engine, make_sessionmaker
from campaigns.embedded import upgrade_database
from campaigns.organizations.models import Role
from campaigns.outreach import lifecycle, runs
from campaigns.outreach.planner import plan_run
from tests.campaigns_engine.factories import make_campaign, make_place
from tests.factories import make_organization, make_user

NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=100_000)
    args = parser.parse_args()
    name = f"faro_bench_plan_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade_database(url)
        engine = make_engine(url)
        factory = make_sessionmaker(engine)
        with factory() as db, db.begin():
            org = make_organization(db)
            author = make_user(db, org=org, role=Role.manager)
            place = make_place(db, org=org, name="Tapachula", timezone="America/Mexico_City")
            db.execute(
                text(
                    """
                    INSERT INTO contact (organization_id, channel, address_hash, country,
                        language, consent, is_simulated, erased, created_at, updated_at)
                    SELECT :org, CASE WHEN g % 3 = 0 THEN 'sms' ELSE 'whatsapp' END,
                        md5(g::text), 'MX', (ARRAY['es','en','ht','fr'])[1 + g % 4],
                        CASE WHEN g % 10 = 0 THEN 'opted_out' ELSE 'opted_in' END,
                        false, false, now(), now()
                    FROM generate_series(1, :n) g
                    """
                ),
                {"org": org.id, "n": args.contacts},
            )
            db.execute(
                text(
                    "INSERT INTO contact_community (contact_id, community_id, joined_at) "
                    "SELECT id, :c, now() FROM contact WHERE organization_id = :org"
                ),
                {"c": place.id, "org": org.id},
            )
            campaign = make_campaign(db, org=org, author=author, communities=[place])
            db.execute(
                text("UPDATE campaign SET pacing_minutes = 120 WHERE id = :id"), {"id": campaign.id}
            )
            lifecycle.submit_campaign(db, campaign.id, user_id=author.id, now=NOW)
            approver = make_user(db, org=org, role=Role.manager)
            lifecycle.approve_campaign(db, campaign.id, user_id=approver.id, now=NOW)
            lifecycle.schedule_campaign(db, campaign.id, now=NOW)
            run = runs.list_runs(db, campaign.id)[0]
            run_id, due = run.id, run.due_at
        with engine.connect() as conn:
            conn.execute(text("ANALYZE"))
            conn.commit()
        with factory() as db, db.begin():
            assert runs.claim_run(db, run_id, now=due)
            started = time.perf_counter()
            count = plan_run(db, run_id, now=due)
            planning = time.perf_counter() - started
        print(f"contacts: {args.contacts:,} (10% opted out, 4 languages, 2 channels)")
        print(f"deliveries planned: {count:,}")
        print(f"plan_run: {planning:.2f} s  ({count / planning:,.0f} deliveries/s)")
        print(f"goal < 10 s: {'met' if planning < 10 else 'NOT met'}")
        engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
