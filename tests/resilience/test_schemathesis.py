"""schemathesis against ``/openapi.json``: generated requests to every operation, with a valid
admin token, never get a server error.

The real app runs in process (ASGI) on a migrated PostgreSQL database of its own, so writes
commit as they would in production.  ``FARO_SCHEMATHESIS_EXAMPLES`` (default 25) bounds the
examples per operation and so the run time.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Ok
from sqlalchemy import text

from api.app import create_app
from campaigns.db import make_engine, make_sessionmaker
from campaigns.organizations.models import Role
from campaigns.organizations.service import create_organization, create_user, issue_token
from campaigns.outbox import install_publisher
from campaigns.settings import Settings
from tests.conftest import REDIS_URL
from tests.factories import TWILIO_SID, TWILIO_TOKEN
from tests.production.conftest import create_database, drop_database

EXAMPLES = int(os.environ.get("FARO_SCHEMATHESIS_EXAMPLES", "25"))
TOKEN: dict[str, str] = {}


@pytest.fixture(scope="module")
def app() -> Iterator[FastAPI]:
    from campaigns.embedded import upgrade_database

    url = create_database("faro_schemathesis")
    try:
        upgrade_database(url)
        engine = make_engine(url)
        with engine.begin() as conn:
            # Generated ids are small numbers: keep this test's own admin, organization and
            # token out of their reach, so a generated DELETE cannot lock the run out.
            for (sequence,) in conn.execute(
                text("SELECT sequence_name FROM information_schema.sequences")
            ):
                conn.execute(text(f"SELECT setval('\"{sequence}\"', 900000000)"))
        with make_sessionmaker(engine)() as db, db.begin():
            org = create_organization(db, name="Schemathesis", country="MX")
            user = create_user(db, organization_id=org.id, email="st@example.org", role=Role.admin)
            _, secret = issue_token(db, user=user, name="schemathesis", days=1)
        TOKEN["Authorization"] = f"Bearer {secret}"
        application = create_app(
            Settings(
                env="test",
                database_url=url,
                redis_url=REDIS_URL,
                public_url="https://faro.test",
                log_format="json",
                twilio_account_sid=TWILIO_SID,
                twilio_auth_token=TWILIO_TOKEN,
            ),
            engine=engine,
        )
        install_publisher(None)  # generated requests publish nothing to a broker
        yield application
        engine.dispose()
    finally:
        drop_database(url)


@pytest.mark.slow
def test_no_operation_answers_with_a_server_error(app: FastAPI) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"invalid schema: {result.err()}"  # /openapi.json is valid
        operations.append(result.ok())
    server_errors: list[str] = []
    calls = Counter[str]()

    for operation in operations:
        _exercise(operation, calls, server_errors)

    statuses = {k: v for k, v in sorted(calls.items()) if k.startswith("HTTP ")}
    requests = sum(statuses.values())
    print(
        f"\n[schemathesis] {len(operations)} operations, {requests} requests, "
        f"{len(server_errors)} server errors; answers {statuses}"
    )
    for line in server_errors[:20]:
        print(line)
    assert server_errors == []


def _exercise(operation: Any, calls: Counter[str], server_errors: list[str]) -> None:
    """Up to EXAMPLES generated requests to one operation; server errors are collected."""
    label = f"{operation.method.upper()} {operation.path}"

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def call(case: Any) -> None:
        calls[label] += 1
        try:
            response = case.call(headers=TOKEN)
        except Exception as exc:  # in process, an unhandled error surfaces instead of a 500
            calls["HTTP 500"] += 1
            server_errors.append(
                f"{label} -> {type(exc).__name__}: {exc}: {case.as_curl_command(headers={})}"
            )
            return
        calls[f"HTTP {response.status_code}"] += 1
        if response.status_code >= 500:
            server_errors.append(
                f"{label} -> {response.status_code}: {case.as_curl_command(headers={})}"
            )

    call()
