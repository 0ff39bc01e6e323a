"""A task that does nothing, for ``bench.campaign_dispatch``: Celery's own ceiling on a broker.

Registered only in workers started with ``FARO_BENCH_TASKS=1`` (``workers/tasks.py`` imports
this module then); a production worker never knows the name.
"""

from __future__ import annotations

from workers.celery_app import app


@app.task(name="bench.noop", acks_late=True)
def noop() -> None:
    """Nothing: what a task costs the worker and the broker (receive, run, acknowledge)."""
