"""Test fixtures: a fresh PostgreSQL database migrated once with Alembic, one rolled-back
transaction per test, the real app over it, and real Redis.

PostgreSQL and Redis must be reachable (``.ci/run`` starts them); if they are not, the run stops
at once with a message saying which one, rather than skipping tests.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator

import pytest
import redis as redis_lib
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from api.app import create_app
from api.deps import get_session
from campaigns.crypto import AddressCipher
from campaigns.db import make_engine
from campaigns.embedded import upgrade_database
from campaigns.outbox import Job, install_publisher
from campaigns.settings import Settings
from tests.factories import TWILIO_SID, TWILIO_TOKEN
from tests.fakes.twilio import FakeTwilio
from tests.stack import PrivateRedis

PG_ADMIN_URL = os.environ.get(
    "FARO_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("FARO_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            name = f"faro_test_{uuid.uuid4().hex[:10]}"
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        pytest.exit(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc}", returncode=3)
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    upgrade_database(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def engine(pg_url: str) -> Iterator[Engine]:
    eng = make_engine(pg_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def redis_url() -> str:
    client = redis_lib.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis_lib.RedisError as exc:
        pytest.exit(f"Redis is not reachable at {REDIS_URL}: {exc}", returncode=3)
    return REDIS_URL


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    conn = engine.connect()
    trans = conn.begin()
    yield conn
    trans.rollback()
    conn.close()


def _session_on(conn: Connection) -> Session:
    return Session(
        bind=conn,
        join_transaction_mode="create_savepoint",
        expire_on_commit=False,
        autoflush=False,
    )


@pytest.fixture
def db(connection: Connection) -> Iterator[Session]:
    """The test's own session: unscoped, inside the test's transaction."""
    session = _session_on(connection)
    yield session
    session.close()


@pytest.fixture
def settings(pg_url: str, redis_url: str) -> Settings:
    return Settings(
        env="test",
        database_url=pg_url,
        redis_url=redis_url,
        public_url="https://faro.test",
        log_format="json",
        twilio_account_sid=TWILIO_SID,
        twilio_auth_token=TWILIO_TOKEN,
    )


@pytest.fixture
def cipher(settings: Settings) -> AddressCipher:
    return AddressCipher.from_settings(settings)


@pytest.fixture
def client(settings: Settings, engine: Engine, connection: Connection) -> Iterator[TestClient]:
    """The real app; each request gets its own session inside the test's transaction."""
    app = create_app(settings, engine=engine)
    install_publisher(None)  # nothing reaches a broker unless a test records it (``jobs``)

    def session_in_test_transaction() -> Iterator[Session]:
        session = _session_on(connection)
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    app.dependency_overrides[get_session] = session_in_test_transaction
    # The webhooks' group commits open their own sessions: inside the test's transaction too.
    app.state.webhook_session_factory = lambda: _session_on(connection)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def jobs(client: TestClient) -> Iterator[list[Job]]:
    """Tasks published after commit, recorded instead of sent to a broker.

    Installed after the app (which installs Celery's publisher), so a test sees exactly what
    its requests asked the workers to do.
    """
    published: list[Job] = []
    install_publisher(published.append)
    yield published
    install_publisher(None)


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio(account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN) as fake:
        yield fake


@pytest.fixture
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    """A redis-server of the test's own (see ``tests.stack.PrivateRedis``)."""
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server")
    server = PrivateRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()
