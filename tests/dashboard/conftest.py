"""Fixtures of the dashboard tests: the real app on the test transaction, seen from a chosen
client address over https (as behind TLS), and users with passwords."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from api.app import create_app
from api.deps import get_session
from campaigns.organizations.models import Organization, Role, User
from campaigns.organizations.service import create_user
from campaigns.outbox import install_publisher
from campaigns.settings import Settings
from tests.factories import make_organization

PASSWORD = "correct horse battery staple"
_seq = itertools.count(1)
_addresses = itertools.count(1)

ClientFactory = Callable[[], TestClient]


@dataclass
class Person:
    user: User
    email: str
    password: str = PASSWORD


def make_person(db: Session, *, org: Organization, role: Role = Role.viewer) -> Person:
    email = f"web{next(_seq)}@example.org"
    user = create_user(db, organization_id=org.id, email=email, role=role, password=PASSWORD)
    return Person(user=user, email=email)


@pytest.fixture
def org(db: Session) -> Organization:
    return make_organization(db)


@pytest.fixture
def web(
    settings: Settings, engine: Engine, connection: Connection
) -> Iterator[Callable[[], TestClient]]:
    """Make browsers: each a client of the real app from its own address (198.51.100.N).

    Requests run inside the test's transaction, like the ``client`` fixture's; failed bearer
    tokens are recorded in their own transaction, so each browser's own address keeps other
    tests' counts out of its way.
    """
    app = create_app(settings, engine=engine)
    install_publisher(None)

    def session_in_test_transaction() -> Iterator[Session]:
        session = Session(
            bind=connection,
            join_transaction_mode="create_savepoint",
            expire_on_commit=False,
            autoflush=False,
        )
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    app.dependency_overrides[get_session] = session_in_test_transaction
    clients: list[TestClient] = []

    def make() -> TestClient:
        client = TestClient(
            app,
            base_url="https://faro.test",
            raise_server_exceptions=False,
            follow_redirects=False,
            client=(f"198.51.100.{next(_addresses) % 250 + 1}", 50000),
        )
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def sign_in(client: TestClient, person: Person, *, password: str | None = None) -> str:
    """Submit the sign-in form as a browser would; returns the response's Location or text."""
    form = client.get("/dashboard/login")
    assert form.status_code == 200
    r = client.post(
        "/dashboard/login",
        data={
            "email": person.email,
            "password": password or person.password,
            "csrf": csrf_of(form.text),
            "next": "/dashboard/knowledge",
        },
    )
    return str(r.headers.get("location", r.text))
