"""Migrations build the schema the models describe, on PostgreSQL and on SQLite."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from campaigns.db import make_engine
from campaigns.embedded import alembic_config, upgrade_database
from campaigns.models import Base


def _diff(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, Base.metadata))


def test_postgres_schema_matches_models(engine: Engine) -> None:
    assert _diff(engine) == []


def test_sqlite_upgrade_downgrade_upgrade(tmp_path: Path) -> None:
    from alembic import command

    url = f"sqlite:///{tmp_path / 'faro.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    assert _diff(engine) == []
    assert "contact" in inspect(engine).get_table_names()
    command.downgrade(alembic_config(url), "base")
    assert "contact" not in inspect(engine).get_table_names()
    upgrade_database(url)
    assert "contact" in inspect(engine).get_table_names()
    engine.dispose()
