"""Database plumbing: the declarative base, engines, sessions and organization scoping.

Organization scoping lives here, in one place.  A session opened for a principal carries
``session.info["organization_id"]``; every ORM query it runs gets
``organization_id = :that`` added on every organization-owned class (``OrgScoped``), and a flush
that would write a row of another organization fails.  Routes and services never filter by
organization themselves, so a forgotten filter cannot leak another organization's data.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    DateTime,
    Dialect,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    create_engine,
    event,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    ORMExecuteState,
    Session,
    declared_attr,
    mapped_column,
    sessionmaker,
    with_loader_criteria,
)
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator

from campaigns.errors import NotFound, ScopeViolation

T = TypeVar("T")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT on PostgreSQL, INTEGER on SQLite (where only INTEGER PRIMARY KEY autoincrements).
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite forgets the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC)

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UTCDateTime()}


class OrgScoped:
    """Mixin for rows that belong to one organization; the session scope filters them."""

    @declared_attr
    def organization_id(cls) -> Mapped[int]:
        return mapped_column(
            BigId, ForeignKey("organization.id", ondelete="CASCADE"), index=True, nullable=False
        )


def make_engine(url: str, **kwargs: Any) -> Engine:
    # Statement parameters carry numbers and message bodies: keep them out of error messages.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, record: ConnectionPoolEntry) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=5000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return create_engine(url, **kwargs)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)


def scope_session(session: Session, organization_id: int | None) -> None:
    """Confine every later ORM query and write of ``session`` to one organization."""
    session.info["organization_id"] = organization_id


def session_org(session: Session) -> int | None:
    value = session.info.get("organization_id")
    return value if isinstance(value, int) else None


@event.listens_for(Session, "do_orm_execute")
def _apply_org_scope(state: ORMExecuteState) -> None:
    org_id = session_org(state.session)
    if org_id is None or state.execution_options.get("skip_org_scope"):
        return
    if state.is_select or state.is_update or state.is_delete:
        from campaigns.organizations.models import Organization

        state.statement = state.statement.options(
            with_loader_criteria(
                OrgScoped,
                lambda cls: cls.organization_id == org_id,
                include_aliases=True,
            ),
            with_loader_criteria(Organization, Organization.id == org_id, include_aliases=True),
        )


@event.listens_for(Session, "before_flush")
def _guard_org_writes(session: Session, flush_context: Any, instances: Any) -> None:
    org_id = session_org(session)
    if org_id is None:
        return
    for obj in list(session.new) + list(session.dirty) + list(session.deleted):
        if isinstance(obj, OrgScoped) and obj.organization_id != org_id:
            raise ScopeViolation(f"{type(obj).__name__} belongs to another organization")


def get_or_404(session: Session, model: type[T], object_id: int, label: str) -> T:
    """Load one row by id inside the session's organization, or raise ``NotFound``."""
    obj = session.get(model, object_id)
    org_id = session_org(session)
    if obj is None or (
        org_id is not None and isinstance(obj, OrgScoped) and obj.organization_id != org_id
    ):
        raise NotFound(f"{label} {object_id} not found")
    return obj


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits when the block ends and rolls back if it raises."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def is_deadlock(exc: BaseException) -> bool:
    """PostgreSQL chose this transaction as a deadlock's or serialization conflict's victim."""
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return isinstance(exc, DBAPIError) and code in ("40P01", "40001")


def retry_on_deadlock(work: Callable[[], T], *, attempts: int = 3) -> T:
    """Run a whole transaction again when PostgreSQL aborted it as a deadlock victim.

    ``work`` must open and commit its own transaction, so a retry starts from nothing; it is for
    writers that lock rows in an order they cannot fully control (a webhook batch and a sender
    recording the same messages).
    """
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except DBAPIError as exc:
            if attempt == attempts or not is_deadlock(exc):
                raise
            time.sleep(random.uniform(0.01, 0.05) * attempt)
    raise AssertionError("unreachable")
