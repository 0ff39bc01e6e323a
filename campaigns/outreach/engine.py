"""The beat's tick: due runs are claimed, planned and dispatched; finished ones closed.

Every step is idempotent and commits on its own, so a tick killed halfway leaves nothing that
the next tick does not pick up.  The worker runs it under a Redis lock so two beats do not
overlap, but two overlapping ticks would still plan and send nothing twice (claims are
conditional UPDATEs, deliveries have unique keys, dispatch locks rows with SKIP LOCKED).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from campaigns.db import utcnow
from campaigns.logging import get_logger
from campaigns.outreach import lifecycle, runs
from campaigns.outreach.dispatch import DISPATCHABLE, dispatch_run, sync_deliveries
from campaigns.outreach.models import CampaignRun
from campaigns.outreach.planner import plan_run

log = get_logger(__name__)


@dataclass
class TickReport:
    created_runs: int = 0
    planned_runs: int = 0
    planned: int = 0
    queued: int = 0
    completed: int = 0


def tick(
    factory: sessionmaker[Session],
    *,
    now: dt.datetime | None = None,
    public_url: str | None = None,
) -> TickReport:
    now = now or utcnow()
    report = TickReport()
    with factory() as session:
        if session.get_bind().dialect.name != "postgresql":
            log.info("campaigns.tick_skipped", reason="the engine needs PostgreSQL")
            return report
    with factory() as session, session.begin():
        report.created_runs = runs.extend_schedules(session, now=now)
        due = [r.id for r in runs.due_runs(session, now=now)]
    for run_id in due:
        with factory() as session, session.begin():
            if not runs.claim_run(session, run_id, now=now):
                continue
            run = session.get(CampaignRun, run_id)
            assert run is not None
            lifecycle.mark_running(session, run.campaign_id, now=now)
            report.planned += plan_run(session, run_id, now=now)
            report.planned_runs += 1
    with factory() as session:
        active = list(
            session.scalars(
                select(CampaignRun.id)
                .where(CampaignRun.status.in_(DISPATCHABLE))
                .order_by(CampaignRun.due_at, CampaignRun.id)
            )
        )
    for run_id in active:
        with factory() as session, session.begin():
            report.queued += dispatch_run(session, run_id, now=now, public_url=public_url).queued
    with factory() as session, session.begin():
        sync_deliveries(session, now=now)
        report.completed = len(lifecycle.complete_finished(session, now=now))
    if report.planned or report.queued or report.completed or report.created_runs:
        log.info(
            "campaigns.ticked",
            created_runs=report.created_runs,
            planned=report.planned,
            queued=report.queued,
            completed=report.completed,
        )
    return report
